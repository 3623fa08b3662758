-- =============================================================================
-- ootd: the nightly batch
-- Weather, clustering (K demand rows), durable pools, the UNLOGGED cache (the
-- Redis stand-in) and the LLM ledger: what `ootd nightly` reads and writes.
-- =============================================================================

-- ------------------------------------------------------------------- tables --
-- One pool per (date, cluster): the unit the LLM generates and the feed serves.
CREATE TABLE ootd.pools (
    pool_date    date NOT NULL,
    cluster_id   text NOT NULL,
    archetype    text NOT NULL REFERENCES ootd.archetypes (name),
    weather      text NOT NULL REFERENCES ootd.weather_conditions (name),
    model        text NOT NULL,
    generated_at timestamptz NOT NULL DEFAULT now(),
    members      integer NOT NULL DEFAULT 0 CHECK (members >= 0),
    provider     text NOT NULL DEFAULT 'offline' CHECK (provider IN ('openai', 'offline', 'plpython')),
    PRIMARY KEY (pool_date, cluster_id),
    CHECK (cluster_id = to_char(pool_date, 'YYYYMMDD') || '_' || archetype || '_' || weather)
);
COMMENT ON TABLE ootd.pools IS 'One generated pool per date and style cluster (cluster id: YYYYMMDD_Archetype_Weather).';
COMMENT ON COLUMN ootd.pools.members IS 'Users in the cluster when the pool was generated.';

CREATE TABLE ootd.outfits (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pool_date   date NOT NULL,
    cluster_id  text NOT NULL,
    slot        smallint NOT NULL CHECK (slot BETWEEN 1 AND 20),
    daypart     text NOT NULL CHECK (daypart IN ('Daytime', 'NightOut')),
    title       text NOT NULL CHECK (length(title) BETWEEN 3 AND 120),
    category    text NOT NULL REFERENCES ootd.categories (name),
    color       text NOT NULL REFERENCES ootd.colors (name),
    pieces      text[] NOT NULL CHECK (cardinality(pieces) BETWEEN 1 AND 8),
    vibe        real NOT NULL CHECK (vibe BETWEEN 0 AND 1),
    trend       real NOT NULL CHECK (trend BETWEEN 0 AND 1),
    dare        real NOT NULL CHECK (dare BETWEEN 0 AND 1),
    reason      text NOT NULL,
    embedding   public.vector(32) NOT NULL,
    FOREIGN KEY (pool_date, cluster_id) REFERENCES ootd.pools (pool_date, cluster_id) ON DELETE CASCADE,
    UNIQUE (pool_date, cluster_id, slot)
);
CREATE UNIQUE INDEX outfits_pool_title_key ON ootd.outfits (pool_date, cluster_id, lower(title));
COMMENT ON TABLE ootd.outfits IS 'Durable outfit pools: 20 per pool (10 Daytime, 10 NightOut).';

-- The stand-in for Redis: rebuilt from ootd.outfits, lost on a crash (UNLOGGED
-- tables are truncated by crash recovery), never the source of truth.
CREATE UNLOGGED TABLE ootd.pool_cache (
    pool_date   date NOT NULL,
    cluster_id  text NOT NULL,
    outfit_id   bigint NOT NULL,
    slot        smallint NOT NULL,
    daypart     text NOT NULL,
    title       text NOT NULL,
    category    text NOT NULL,
    color       text NOT NULL,
    vibe        real NOT NULL,
    trend       real NOT NULL,
    dare        real NOT NULL,
    embedding   public.vector(32) NOT NULL,
    cached_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pool_date, cluster_id, outfit_id)
);
COMMENT ON TABLE ootd.pool_cache IS 'UNLOGGED serving copy of ootd.outfits (the Redis stand-in); emptied by crash recovery.';

CREATE TABLE ootd.llm_calls (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    called_at         timestamptz NOT NULL DEFAULT now(),
    pool_date         date NOT NULL,
    cluster_id        text NOT NULL,
    provider          text NOT NULL CHECK (provider IN ('openai', 'offline', 'plpython')),
    kind              text NOT NULL CHECK (kind IN ('chat', 'embedding')),
    model             text NOT NULL,
    attempt           smallint NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    status            text NOT NULL CHECK (status IN ('sent', 'ok', 'invalid', 'error')),
    http_status       integer,
    prompt_tokens     integer NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens integer NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    latency_ms        double precision CHECK (latency_ms >= 0),
    error             text,
    CONSTRAINT llm_calls_finished_check CHECK (status = 'sent' OR latency_ms IS NOT NULL)
);
CREATE INDEX llm_calls_pool_idx ON ootd.llm_calls (pool_date, cluster_id);
COMMENT ON TABLE ootd.llm_calls IS 'The LLM ledger: one row per request (chat or embedding), written (status sent) before it is sent, then finished.';
COMMENT ON COLUMN ootd.llm_calls.status IS 'sent: recorded before sending, outcome unknown (the run was killed); ok, invalid (answered, failed validation) or error.';

CREATE TABLE ootd.weather_daily (
    day         date NOT NULL,
    city        text NOT NULL REFERENCES ootd.cities (name),
    condition   text NOT NULL REFERENCES ootd.weather_conditions (name),
    temp_c      real NOT NULL CHECK (temp_c BETWEEN -80 AND 60),
    source      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, city)
);
COMMENT ON TABLE ootd.weather_daily IS 'Weather per city and day, written by the nightly batch; the first forecast for a day wins.';

CREATE TABLE ootd.llm_prices (
    model                 text PRIMARY KEY,
    prompt_usd_per_1m     double precision NOT NULL CHECK (prompt_usd_per_1m >= 0),
    completion_usd_per_1m double precision NOT NULL CHECK (completion_usd_per_1m >= 0),
    is_reference          boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX llm_prices_one_reference ON ootd.llm_prices (is_reference) WHERE is_reference;
COMMENT ON TABLE ootd.llm_prices IS 'USD per million tokens by model (edit freely); the reference model prices every call in llm_cost_daily''s *_at_reference columns.';

INSERT INTO ootd.llm_prices (model, prompt_usd_per_1m, completion_usd_per_1m, is_reference) VALUES
    ('gpt-4o-mini',            0.15,  0.60, true),
    ('gpt-4o',                 2.50, 10.00, false),
    ('gpt-4.1-mini',           0.40,  1.60, false),
    ('qwen2.5-72b-instruct',   0.40,  1.20, false),
    ('text-embedding-3-small', 0.02,  0.00, false),
    ('ootd-offline-stylist-1', 0.00,  0.00, false);

CREATE INDEX pools_archetype_weather_date_idx ON ootd.pools (archetype, weather, pool_date);
CREATE INDEX pools_archetype_date_idx ON ootd.pools (archetype, pool_date);
CREATE INDEX pools_date_idx ON ootd.pools (pool_date);
CREATE INDEX weather_daily_city_day_idx ON ootd.weather_daily (city, day);

-- ---------------------------------------------------------------- functions --
-- ootd.put_weather(day, source, forecasts): record one day's weather for many
-- cities at once.  forecasts = [{"city", "condition", "temp_c"}, ...].  The
-- first forecast recorded for a (day, city) wins, so a re-run of the nightly
-- batch clusters users exactly as the first run did.  Returns rows inserted.
-- PL/pgSQL so that Citus plans its query on a coordinator (a SQL function
-- with a parameter over a Citus table is refused there).
CREATE FUNCTION ootd.put_weather(p_day date, p_source text, p_forecasts jsonb)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_result integer;
BEGIN
    WITH inserted AS (
        INSERT INTO ootd.weather_daily (day, city, condition, temp_c, source)
        SELECT p_day, f.city, f.condition, f.temp_c, p_source
        FROM jsonb_to_recordset(p_forecasts) AS f(city text, condition text, temp_c real)
        ON CONFLICT (day, city) DO NOTHING
        RETURNING 1
    )
    SELECT count(*)::integer FROM inserted
    INTO v_result;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION ootd.put_weather(date, text, jsonb) IS
    'Record [{city, condition, temp_c}] for a day; existing (day, city) rows are kept. Returns rows inserted.';

-- ootd._cluster_id(day, archetype, weather): YYYYMMDD_<archetype>_<weather>,
-- the one home of the cluster-id rule (ootd.pools checks the same shape).
CREATE FUNCTION ootd._cluster_id(p_day date, p_archetype text, p_weather text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT to_char(p_day, 'YYYYMMDD') || '_' || p_archetype || '_' || p_weather
$$;
COMMENT ON FUNCTION ootd._cluster_id(date, text, text) IS 'Private: a cluster id, YYYYMMDD_<archetype>_<weather>.';

-- ootd._archetype_of(style_dna): the user's archetype, ootd.default_archetype()
-- when style_dna names none.
CREATE FUNCTION ootd._archetype_of(p_dna jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(p_dna ->> 'archetype', ootd.default_archetype())
$$;
COMMENT ON FUNCTION ootd._archetype_of(jsonb) IS 'Private: style_dna''s archetype, else ootd.default_archetype().';

-- ootd.user_clusters(day): every user's cluster for a day, deterministically:
-- cluster_id = YYYYMMDD_<archetype>_<weather in the user's city>.  Users whose
-- city has no weather for the day are not clustered (the batch records
-- weather for every city first).  PL/pgSQL, one query: Citus plans it on a
-- coordinator, where a SQL function with a parameter over a distributed table
-- is refused (even one the planner would inline on a single node).
CREATE FUNCTION ootd.user_clusters(p_day date)
RETURNS TABLE (user_id bigint, cluster_id text, archetype text, weather text, city text, temp_c real,
               style_dna jsonb, style_rules jsonb)
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN QUERY
    SELECT u.id, ootd._cluster_id(p_day, ootd._archetype_of(u.style_dna), w.condition),
           ootd._archetype_of(u.style_dna), w.condition, u.city, w.temp_c, u.style_dna, u.style_rules
    FROM ootd.users u
    JOIN ootd.weather_daily w ON w.day = p_day AND w.city = u.city;
END
$$;
COMMENT ON FUNCTION ootd.user_clusters(date) IS
    'Each user''s style cluster for a day: YYYYMMDD_<archetype>_<weather>; users without an archetype get ootd.default_archetype().';

-- ootd.cluster_demand(day): one row per cluster (K rows, never N users) with
-- what the prompt needs: members, popular colors and categories, common
-- vetoes, mean traits, main cities, and whether the pool already exists.
-- PL/pgSQL, one query (ootd.user_clusters' inlined), so that Citus plans it
-- on a coordinator: a SQL function with a parameter over a distributed table
-- is refused there.
CREATE FUNCTION ootd.cluster_demand(p_day date)
RETURNS TABLE (cluster_id text, archetype text, archetype_adjective text, archetype_keywords text[],
               weather text, weather_adjective text, weather_keywords text[], members integer,
               top_colors text[], top_liked_categories text[], common_vetoes text[], common_color_vetoes text[],
               mean_vibe double precision, mean_trend double precision, mean_dare double precision,
               cities text[], mean_temp_c double precision, has_pool boolean)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH members AS NOT MATERIALIZED (     -- ootd.user_clusters' query, inlined
        SELECT u.id AS user_id, ootd._cluster_id(p_day, ootd._archetype_of(u.style_dna), w.condition) AS cluster_id,
               ootd._archetype_of(u.style_dna) AS archetype, w.condition AS weather, u.city, w.temp_c,
               u.style_dna, u.style_rules
        FROM ootd.users u
        JOIN ootd.weather_daily w ON w.day = p_day AND w.city = u.city
    ), totals AS (
        SELECT m.cluster_id, min(m.archetype) AS archetype, min(m.weather) AS weather,
               count(*)::integer AS members,
               avg((m.style_dna ->> 'vibe')::double precision)  AS mean_vibe,
               avg((m.style_dna ->> 'trend')::double precision) AS mean_trend,
               avg((m.style_dna ->> 'dare')::double precision)  AS mean_dare,
               avg(m.temp_c)::double precision AS mean_temp_c
        FROM members m
        GROUP BY m.cluster_id
    ), names AS (
        SELECT m.cluster_id, t.kind, t.name, count(*) AS n
        FROM members m
        CROSS JOIN LATERAL (
            SELECT 'color', jsonb_array_elements_text(m.style_dna -> 'preferred_colors')
            UNION ALL SELECT 'liked', jsonb_array_elements_text(m.style_rules -> 'liked_categories')
            UNION ALL SELECT 'veto', jsonb_array_elements_text(m.style_rules -> 'disliked_categories')
            UNION ALL SELECT 'color_veto', jsonb_array_elements_text(m.style_rules -> 'disliked_colors')
            UNION ALL SELECT 'city', m.city
        ) AS t(kind, name)
        GROUP BY m.cluster_id, t.kind, t.name
    ), ranked AS (
        SELECT n.*, row_number() OVER (PARTITION BY n.cluster_id, n.kind ORDER BY n.n DESC, n.name) AS r
        FROM names n
    ), tops AS (
        SELECT r.cluster_id,
               array_agg(r.name ORDER BY r.r) FILTER (WHERE r.kind = 'color' AND r.r <= 5)      AS top_colors,
               array_agg(r.name ORDER BY r.r) FILTER (WHERE r.kind = 'liked' AND r.r <= 4)      AS top_liked,
               array_agg(r.name ORDER BY r.r) FILTER (WHERE r.kind = 'veto' AND r.r <= 4)       AS vetoes,
               array_agg(r.name ORDER BY r.r) FILTER (WHERE r.kind = 'color_veto' AND r.r <= 3) AS color_vetoes,
               array_agg(r.name ORDER BY r.r) FILTER (WHERE r.kind = 'city' AND r.r <= 3)       AS cities
        FROM ranked r
        WHERE r.r <= 5
        GROUP BY r.cluster_id
    )
    SELECT t.cluster_id, t.archetype, a.adjective, a.keywords, t.weather, w.adjective, w.keywords, t.members,
           coalesce(x.top_colors, '{}'), coalesce(x.top_liked, '{}'), coalesce(x.vetoes, '{}'),
           coalesce(x.color_vetoes, '{}'),
           coalesce(t.mean_vibe, 0.5), coalesce(t.mean_trend, 0.5), coalesce(t.mean_dare, 0.5),
           coalesce(x.cities, '{}'), t.mean_temp_c,
           EXISTS (SELECT 1 FROM ootd.pools p WHERE p.pool_date = p_day AND p.cluster_id = t.cluster_id)
    FROM totals t
    JOIN ootd.archetypes a ON a.name = t.archetype
    JOIN ootd.weather_conditions w ON w.name = t.weather
    LEFT JOIN tops x ON x.cluster_id = t.cluster_id
    ORDER BY t.members DESC, t.cluster_id;
END
$$;
COMMENT ON FUNCTION ootd.cluster_demand(date) IS
    'One row per style cluster for a day: members, popular colors/categories, common vetoes, mean traits, has_pool.';

-- ootd._title_key(title): what makes two titles the same title: their words,
-- whatever the spacing and case ("  grey fleece  zip-up track set" is "Grey
-- Fleece Zip-Up Track Set").  batch/titles.py's title_key compares the same way.
CREATE FUNCTION ootd._title_key(p_title text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT lower(btrim(regexp_replace(p_title, '\s+', ' ', 'g')))
$$;
COMMENT ON FUNCTION ootd._title_key(text) IS 'Private: a title''s words in lower case, single-spaced: equal keys are the same title.';

-- ootd.taken_titles(day): the titles a new pool of `day` must not use, the
-- one home of the rule "no repeats across pools": every title of every pool
-- (any cluster) dated within 3 days of `day`, the day itself included
-- ([day - 3, day + 3]).  The feed serves a user their cluster's pool plus the
-- same-weather neighbour pools of their local date, so a title shared by two
-- pools of one date, or by pools of nearby dates, could reach one user twice
-- on one day or on consecutive days.  The window is symmetric so that the
-- rule holds whatever order pools are stored in (a failed cluster retried by
-- ootd.generate_pool after the next day's nightly ran).  One row per title
-- and pool, nearest date first; ootd.store_pool refuses a pool that uses one,
-- and the nightly reads them once per run for its prompts, its validation and
-- the offline stylist.  At most 7 days of pools (a few thousand rows).
-- PL/pgSQL so that Citus plans its query on a coordinator (a SQL function
-- with a parameter over a Citus table is refused there).
CREATE FUNCTION ootd.taken_titles(p_day date)
RETURNS TABLE (title text, pool_date date, cluster_id text, archetype text, weather text)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT o.title, p.pool_date, p.cluster_id, p.archetype, p.weather
    FROM ootd.pools p
    JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id
    WHERE p.pool_date BETWEEN p_day - 3 AND p_day + 3
    ORDER BY abs(p.pool_date - p_day), p.pool_date DESC, p.cluster_id, o.slot;
END
$$;
COMMENT ON FUNCTION ootd.taken_titles(date) IS
    'Every title of every pool dated within 3 days of a day (the day included), nearest first: what a new pool of that day must not use.';

-- ootd.store_pool(...): store one validated pool durably, atomically.
-- outfits = [{"title","daypart","category","color","pieces","vibe","trend",
-- "dare","reason","embedding":[32 numbers]}, ...], exactly 10 Daytime + 10
-- NightOut.  A pool that already exists is never overwritten (SQLSTATE 23505):
-- re-runs skip finished clusters before calling the LLM.  A pool using a title
-- of ootd.taken_titles(day) (another pool of the day, or of the 3 days before
-- or after) is refused (SQLSTATE 23P01, naming each title, its outfit number
-- and the pool that has it).  Stores take one transaction-scoped advisory lock,
-- so two concurrent stores (the nightly, ootd.generate_pool, a DBA) never both
-- pass the check with the same title: the second waits for the first to end,
-- then (READ COMMITTED: each statement a new snapshot) sees its pool.  Under
-- REPEATABLE READ the transaction's snapshot predates the wait, so it is
-- refused (25000); SERIALIZABLE is safe (a conflicting pair fails with 40001).
CREATE FUNCTION ootd.store_pool(p_pool_date date, p_cluster_id text, p_provider text, p_model text,
                                p_members integer, p_outfits jsonb)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_parts  text[] := regexp_match(p_cluster_id, '^(\d{8})_([A-Z][A-Za-z]+)_([A-Z][A-Za-z]+)$');
    v_count   integer;
    v_day     integer;
    v_repeats text;
BEGIN
    IF v_parts IS NULL OR v_parts[1] <> to_char(p_pool_date, 'YYYYMMDD') THEN
        RAISE EXCEPTION 'cluster id "%" does not match YYYYMMDD_Archetype_Weather for %', p_cluster_id, p_pool_date
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(p_outfits) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'pool % must be a JSON array of outfits', p_cluster_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_count := jsonb_array_length(p_outfits);
    SELECT count(*) INTO v_day FROM jsonb_array_elements(p_outfits) o WHERE o ->> 'daypart' = 'Daytime';
    IF v_count <> 20 OR v_day <> 10 THEN
        RAISE EXCEPTION 'pool % must hold 10 Daytime and 10 NightOut outfits, got % and %',
                        p_cluster_id, v_day, v_count - v_day
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF current_setting('transaction_isolation') = 'repeatable read' THEN
        RAISE EXCEPTION 'ootd.store_pool cannot check pool %''s titles under REPEATABLE READ: its snapshot would miss a pool stored while it waited',
                        p_cluster_id
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Store pools under READ COMMITTED (the default) or SERIALIZABLE.';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ootd.store_pool'));

    INSERT INTO ootd.pools (pool_date, cluster_id, archetype, weather, model, members, provider)
    VALUES (p_pool_date, p_cluster_id, v_parts[2], v_parts[3], p_model, p_members, p_provider)
    ON CONFLICT (pool_date, cluster_id) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pool % already exists', p_cluster_id
            USING ERRCODE = 'unique_violation';
    END IF;

    -- The pool row is new, so no outfit of its own is among the taken titles.
    -- A hash join of the 20 new keys with the taken ones; only the matches are sorted.
    WITH taken AS MATERIALIZED (
        SELECT ootd._title_key(t.title) AS title_key, t.pool_date, t.cluster_id
        FROM ootd.taken_titles(p_pool_date) t
    ), repeats AS (
        SELECT DISTINCT ON (o.ordinality) o.ordinality, o.value ->> 'title' AS title, t.cluster_id
        FROM jsonb_array_elements(p_outfits) WITH ORDINALITY AS o(value, ordinality)
        JOIN taken t ON t.title_key = ootd._title_key(o.value ->> 'title')
        ORDER BY o.ordinality, abs(t.pool_date - p_pool_date), t.pool_date DESC, t.cluster_id
    )
    SELECT string_agg(format('"%s" (outfit %s, in %s)', r.title, r.ordinality, r.cluster_id), ', '
                      ORDER BY r.ordinality)
    INTO v_repeats
    FROM repeats r;
    IF v_repeats IS NOT NULL THEN
        RAISE EXCEPTION 'pool % uses titles already taken by pools within 3 days: %', p_cluster_id, v_repeats
            USING ERRCODE = 'exclusion_violation',
                  HINT = 'Titles are unique across all pools dated within 3 days of each other; ootd.taken_titles(date) lists them.';
    END IF;

    INSERT INTO ootd.outfits (pool_date, cluster_id, slot, daypart, title, category, color, pieces,
                              vibe, trend, dare, reason, embedding)
    SELECT p_pool_date, p_cluster_id, o.ordinality::smallint, o.value ->> 'daypart', o.value ->> 'title',
           o.value ->> 'category', o.value ->> 'color',
           ARRAY(SELECT jsonb_array_elements_text(o.value -> 'pieces')),
           (o.value ->> 'vibe')::real, (o.value ->> 'trend')::real, (o.value ->> 'dare')::real,
           o.value ->> 'reason', (o.value ->> 'embedding')::public.vector(32)
    FROM jsonb_array_elements(p_outfits) WITH ORDINALITY AS o(value, ordinality);
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION ootd.store_pool(date, text, text, text, integer, jsonb) IS
    'Store one pool of 20 outfits (10 Daytime, 10 NightOut) with embeddings, atomically; never overwrites; refuses (23P01) a title of ootd.taken_titles(date).';

-- ootd.refresh_pool_cache(day, keep_days): copy the day's durable pools into
-- the UNLOGGED cache and drop entries more than keep_days older than both the
-- day and the database's current date (so a far-future day never evicts the
-- pools being served today), in one transaction.  DELETE + INSERT (not
-- TRUNCATE) takes no lock a reader waits on: readers keep seeing the old rows
-- until commit, then all the new ones.
CREATE FUNCTION ootd.refresh_pool_cache(p_day date, p_keep_days integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows integer;
BEGIN
    DELETE FROM ootd.pool_cache c
    WHERE c.pool_date = p_day OR c.pool_date < least(p_day, current_date) - p_keep_days;
    INSERT INTO ootd.pool_cache (pool_date, cluster_id, outfit_id, slot, daypart, title, category, color,
                                 vibe, trend, dare, embedding)
    SELECT o.pool_date, o.cluster_id, o.id, o.slot, o.daypart, o.title, o.category, o.color,
           o.vibe, o.trend, o.dare, o.embedding
    FROM ootd.outfits o
    WHERE o.pool_date = p_day;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION ootd.refresh_pool_cache(date, integer) IS
    'Replace the cache rows of a day with its durable pools and prune days older than keep_days; one transaction.';

-- ootd.rehydrate_cache(day, days): after an unclean shutdown (crash recovery
-- empties UNLOGGED tables) copy the durable pools of the local dates being
-- served around `day` (day - days .. day + 1) back into the cache.
-- Idempotent, and writes nothing when the cache already holds them (or on a
-- hot standby, which cannot write), so `ootd db start`, `ootd serve` and `ootd nightly` call it every time.
-- Returns rows added.  Feeds never need it to be correct, only to be served
-- from the cache.
CREATE FUNCTION ootd.rehydrate_cache(p_day date DEFAULT current_date, p_days integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rows integer;
BEGIN
    IF pg_is_in_recovery() THEN
        RETURN 0;                      -- a standby can neither read nor write UNLOGGED tables
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ootd.outfits o
                   WHERE o.pool_date BETWEEN p_day - p_days AND p_day + 1
                     AND NOT EXISTS (SELECT 1 FROM ootd.pool_cache c
                                     WHERE c.pool_date = o.pool_date AND c.cluster_id = o.cluster_id
                                       AND c.outfit_id = o.id)) THEN
        RETURN 0;                      -- nothing missing: no write
    END IF;
    INSERT INTO ootd.pool_cache (pool_date, cluster_id, outfit_id, slot, daypart, title, category, color,
                                 vibe, trend, dare, embedding)
    SELECT o.pool_date, o.cluster_id, o.id, o.slot, o.daypart, o.title, o.category, o.color,
           o.vibe, o.trend, o.dare, o.embedding
    FROM ootd.outfits o
    WHERE o.pool_date BETWEEN p_day - p_days AND p_day + 1
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION ootd.rehydrate_cache(date, integer) IS
    'Refill ootd.pool_cache with the durable pools of day - days .. day + 1 (after a crash emptied it); returns rows added, 0 without writing when none is missing.';

-- ootd.record_llm_request(day, cluster, provider, kind, model, attempt): the
-- ledger row of a request about to be sent (status 'sent'), committed before
-- it goes out, so a run killed mid-request still counts every request the
-- server may have received (and billed).  Returns its id for
-- ootd.record_llm_calls to finish.
-- PL/pgSQL so that Citus plans its query on a coordinator (a SQL function
-- with a parameter over a Citus table is refused there).
CREATE FUNCTION ootd.record_llm_request(p_pool_date date, p_cluster_id text, p_provider text, p_kind text,
                                        p_model text, p_attempt integer)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_result bigint;
BEGIN
    INSERT INTO ootd.llm_calls (pool_date, cluster_id, provider, kind, model, attempt, status)
    VALUES (p_pool_date, p_cluster_id, p_provider, p_kind, p_model, p_attempt, 'sent')
    RETURNING id
    INTO v_result;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION ootd.record_llm_request(date, text, text, text, text, integer) IS
    'Ledger row (status sent) of an LLM request about to be sent; returns its id.';

-- ootd.record_llm_calls(day, cluster, calls): the outcome of a cluster's
-- requests, one per element: an element with the "id" of its
-- ootd.record_llm_request row finishes that row, one without is appended.
-- calls = [{"id","provider","kind","model","attempt","status","http_status",
-- "prompt_tokens","completion_tokens","latency_ms","error"}].
-- PL/pgSQL so that Citus plans its query on a coordinator (a SQL function
-- with a parameter over a Citus table is refused there).
CREATE FUNCTION ootd.record_llm_calls(p_pool_date date, p_cluster_id text, p_calls jsonb)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_result integer;
BEGIN
    WITH calls AS (
        SELECT c.*
        FROM jsonb_to_recordset(p_calls) AS c(id bigint, provider text, kind text, model text, attempt smallint,
                                              status text, http_status integer, prompt_tokens integer,
                                              completion_tokens integer, latency_ms double precision, error text)
    ), finished AS (
        UPDATE ootd.llm_calls l
        SET status = c.status, http_status = c.http_status, prompt_tokens = coalesce(c.prompt_tokens, 0),
            completion_tokens = coalesce(c.completion_tokens, 0), latency_ms = c.latency_ms, error = c.error
        FROM calls c
        WHERE l.id = c.id AND l.pool_date = p_pool_date AND l.cluster_id = p_cluster_id
        RETURNING 1
    ), inserted AS (
        INSERT INTO ootd.llm_calls (pool_date, cluster_id, provider, kind, model, attempt, status, http_status,
                                    prompt_tokens, completion_tokens, latency_ms, error)
        SELECT p_pool_date, p_cluster_id, c.provider, c.kind, c.model, c.attempt, c.status, c.http_status,
               coalesce(c.prompt_tokens, 0), coalesce(c.completion_tokens, 0), c.latency_ms, c.error
        FROM calls c
        WHERE c.id IS NULL
        RETURNING 1
    )
    SELECT ((SELECT count(*) FROM finished) + (SELECT count(*) FROM inserted))::integer
    INTO v_result;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION ootd.record_llm_calls(date, text, jsonb) IS
    'Finish (by id) or append the LLM ledger rows of a cluster''s requests; returns rows written.';

-- ootd.check_pool_date(day): raises 22023 when a pool date lies more than one
-- day after the database's current date (the latest local date anywhere): a
-- typo such as 9999-12-31 would spend a night of LLM calls on nobody.
-- `ootd nightly --force` skips the check.
CREATE FUNCTION ootd.check_pool_date(p_day date)
RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF p_day IS NULL OR p_day > current_date + 1 THEN
        RAISE EXCEPTION 'pool date % is more than one day after the database''s current date %',
                        coalesce(p_day::text, 'NULL'), current_date
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Generate it anyway with ootd nightly --force.';
    END IF;
END
$$;
COMMENT ON FUNCTION ootd.check_pool_date(date) IS
    'Raises 22023 if a pool date is more than one day after current_date (ootd nightly refuses it unless --force).';

-- ootd.generate_pool(cluster_id): one cluster's pool generated from inside the
-- database, for DBAs who live in psql or schedule with pg_cron.  Where the
-- server has plpython3u, migration 0005 installs a PL/Python function whose
-- body is batch/plpython_body.py: the batch's own generation, validation and
-- storage (status stored | exists | failed; see docs/generate_pool.md).  This
-- is the version for servers without it (the embedded default, most managed
-- services): same signature, SQLSTATE 0A000, and the way that works instead.
CREATE FUNCTION ootd.generate_pool(p_cluster_id text)
RETURNS TABLE (cluster_id text, status text, provider text, model text, outfits integer, requests integer,
               error text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'ootd.generate_pool(%) needs plpython3u, which this server does not have; generate pools with `ootd nightly` instead',
                    quote_literal(p_cluster_id)
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Run `ootd nightly --date YYYY-MM-DD` (from cron, with DATABASE_URL set) on a machine with ootd installed; see docs/generate_pool.md.';
END
$$;
COMMENT ON FUNCTION ootd.generate_pool(text) IS
    'Generate one cluster''s pool in the database (PL/Python). This server has no plpython3u: raises 0A000; use `ootd nightly`.';
