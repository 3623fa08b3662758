-- =============================================================================
-- Revision 0002: the nightly batch (frozen)
-- weather per city and day, SQL clustering, cluster demand, pool storage,
-- the cache refresh, the LLM ledger API, prices and the daily cost view.
-- =============================================================================
SET ROLE ootd_owner;

-- ---------------------------------------------------------------- tables ----
ALTER TABLE ootd.pools
    ADD COLUMN members  integer NOT NULL DEFAULT 0 CHECK (members >= 0),
    ADD COLUMN provider text NOT NULL DEFAULT 'offline' CHECK (provider IN ('openai', 'offline', 'plpython'));
COMMENT ON COLUMN ootd.pools.members IS 'Users in the cluster when the pool was generated.';

CREATE UNIQUE INDEX outfits_pool_title_key ON ootd.outfits (pool_date, cluster_id, lower(title));

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

-- ------------------------------------------------------------- functions ----

-- ootd.put_weather(day, source, forecasts): record one day's weather for many
-- cities at once.  forecasts = [{"city", "condition", "temp_c"}, ...].  The
-- first forecast recorded for a (day, city) wins, so a re-run of the nightly
-- batch clusters users exactly as the first run did.  Returns rows inserted.
CREATE FUNCTION ootd.put_weather(p_day date, p_source text, p_forecasts jsonb)
RETURNS integer
LANGUAGE sql
AS $$
    WITH inserted AS (
        INSERT INTO ootd.weather_daily (day, city, condition, temp_c, source)
        SELECT p_day, f.city, f.condition, f.temp_c, p_source
        FROM jsonb_to_recordset(p_forecasts) AS f(city text, condition text, temp_c real)
        ON CONFLICT (day, city) DO NOTHING
        RETURNING 1
    )
    SELECT count(*)::integer FROM inserted
$$;
COMMENT ON FUNCTION ootd.put_weather(date, text, jsonb) IS
    'Record [{city, condition, temp_c}] for a day; existing (day, city) rows are kept. Returns rows inserted.';

-- ootd.default_archetype(): the archetype of users whose style_dna has none.
-- "Casual" is the broadest, most neutral vocabulary in the taxonomy.
CREATE FUNCTION ootd.default_archetype()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 'Casual'::text $$;
COMMENT ON FUNCTION ootd.default_archetype() IS
    'Archetype assumed for users without style_dna.archetype (Casual).';

-- ootd.user_clusters(day): every user's cluster for a day, deterministically:
-- cluster_id = YYYYMMDD_<archetype>_<weather in the user's city>.  Users whose
-- city has no weather for the day are not clustered (the batch records
-- weather for every city first).  A single inlinable SELECT: callers'
-- aggregates run as one plan over ootd.users.
CREATE FUNCTION ootd.user_clusters(p_day date)
RETURNS TABLE (user_id bigint, cluster_id text, archetype text, weather text, city text, temp_c real,
               style_dna jsonb, style_rules jsonb)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT u.id,
           to_char(p_day, 'YYYYMMDD') || '_' || coalesce(u.style_dna ->> 'archetype', ootd.default_archetype())
                                      || '_' || w.condition,
           coalesce(u.style_dna ->> 'archetype', ootd.default_archetype()),
           w.condition, u.city, w.temp_c, u.style_dna, u.style_rules
    FROM ootd.users u
    JOIN ootd.weather_daily w ON w.day = p_day AND w.city = u.city
$$;
COMMENT ON FUNCTION ootd.user_clusters(date) IS
    'Each user''s style cluster for a day: YYYYMMDD_<archetype>_<weather>; users without an archetype get ootd.default_archetype().';

-- ootd.cluster_demand(day): one row per cluster (K rows, never N users) with
-- what the prompt needs: members, popular colors and categories, common
-- vetoes, mean traits, main cities, and whether the pool already exists.
CREATE FUNCTION ootd.cluster_demand(p_day date)
RETURNS TABLE (cluster_id text, archetype text, archetype_adjective text, archetype_keywords text[],
               weather text, weather_adjective text, weather_keywords text[], members integer,
               top_colors text[], top_liked_categories text[], common_vetoes text[], common_color_vetoes text[],
               mean_vibe double precision, mean_trend double precision, mean_dare double precision,
               cities text[], mean_temp_c double precision, has_pool boolean)
LANGUAGE sql STABLE
AS $$
    WITH members AS NOT MATERIALIZED (
        SELECT * FROM ootd.user_clusters(p_day)
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
    ORDER BY t.members DESC, t.cluster_id
$$;
COMMENT ON FUNCTION ootd.cluster_demand(date) IS
    'One row per style cluster for a day: members, popular colors/categories, common vetoes, mean traits, has_pool.';

-- ootd.store_pool(...): store one validated pool durably, atomically.
-- outfits = [{"title","daypart","category","color","pieces","vibe","trend",
-- "dare","reason","embedding":[32 numbers]}, ...], exactly 10 Daytime + 10
-- NightOut.  A pool that already exists is never overwritten (SQLSTATE 23505):
-- re-runs skip finished clusters before calling the LLM.
CREATE FUNCTION ootd.store_pool(p_pool_date date, p_cluster_id text, p_provider text, p_model text,
                                p_members integer, p_outfits jsonb)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_parts  text[] := regexp_match(p_cluster_id, '^(\d{8})_([A-Z][A-Za-z]+)_([A-Z][A-Za-z]+)$');
    v_count  integer;
    v_day    integer;
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

    INSERT INTO ootd.pools (pool_date, cluster_id, archetype, weather, model, members, provider)
    VALUES (p_pool_date, p_cluster_id, v_parts[2], v_parts[3], p_model, p_members, p_provider)
    ON CONFLICT (pool_date, cluster_id) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pool % already exists', p_cluster_id
            USING ERRCODE = 'unique_violation';
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
    'Store one pool of 20 outfits (10 Daytime, 10 NightOut) with embeddings, atomically; never overwrites.';

-- ootd.refresh_pool_cache(day, keep_days): copy the day's durable pools into
-- the UNLOGGED cache and drop entries older than keep_days, in one
-- transaction.  DELETE + INSERT (not TRUNCATE) takes no lock a reader waits
-- on: readers keep seeing the old rows until commit, then all the new ones.
CREATE FUNCTION ootd.refresh_pool_cache(p_day date, p_keep_days integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows integer;
BEGIN
    DELETE FROM ootd.pool_cache c WHERE c.pool_date = p_day OR c.pool_date < p_day - p_keep_days;
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

-- ootd.record_llm_calls(day, cluster, calls): append ledger rows, one per
-- request.  calls = [{"provider","kind","model","attempt","status",
-- "http_status","prompt_tokens","completion_tokens","latency_ms","error"}].
CREATE FUNCTION ootd.record_llm_calls(p_pool_date date, p_cluster_id text, p_calls jsonb)
RETURNS integer
LANGUAGE sql
AS $$
    WITH inserted AS (
        INSERT INTO ootd.llm_calls (pool_date, cluster_id, provider, kind, model, attempt, status, http_status,
                                    prompt_tokens, completion_tokens, latency_ms, error)
        SELECT p_pool_date, p_cluster_id, c.provider, c.kind, c.model, c.attempt, c.status, c.http_status,
               coalesce(c.prompt_tokens, 0), coalesce(c.completion_tokens, 0), c.latency_ms, c.error
        FROM jsonb_to_recordset(p_calls) AS c(provider text, kind text, model text, attempt smallint, status text,
                                              http_status integer, prompt_tokens integer, completion_tokens integer,
                                              latency_ms double precision, error text)
        RETURNING 1
    )
    SELECT count(*)::integer FROM inserted
$$;
COMMENT ON FUNCTION ootd.record_llm_calls(date, text, jsonb) IS
    'Append LLM ledger rows (one per request) for a cluster.';

-- ----------------------------------------------------------------- views ----

-- ootd.llm_cost_daily: what each day's pools cost, and what one LLM call per
-- user would have cost.  est_cost_usd prices each call at its own model's
-- price (unknown models cost NULL); *_at_reference prices every token at the
-- reference model's price, which makes offline runs comparable.  The naive
-- design makes one generation per user, so its cost is users_served x the
-- mean cost of a generated pool (chat and embedding requests, retries
-- included).
CREATE VIEW ootd.llm_cost_daily AS
WITH ref AS (
    SELECT prompt_usd_per_1m, completion_usd_per_1m FROM ootd.llm_prices WHERE is_reference
), calls AS (
    SELECT c.pool_date,
           count(*) FILTER (WHERE c.kind = 'chat')                     AS chat_calls,
           count(*) FILTER (WHERE c.kind = 'embedding')                AS embedding_calls,
           count(*) FILTER (WHERE c.status <> 'ok')                    AS failed_calls,
           sum(c.prompt_tokens)                                        AS prompt_tokens,
           sum(c.completion_tokens)                                    AS completion_tokens,
           sum((c.prompt_tokens * p.prompt_usd_per_1m + c.completion_tokens * p.completion_usd_per_1m) / 1e6)
                                                                       AS est_cost_usd,
           sum((c.prompt_tokens * r.prompt_usd_per_1m + c.completion_tokens * r.completion_usd_per_1m) / 1e6)
                                                                       AS cost_at_reference_usd
    FROM ootd.llm_calls c
    LEFT JOIN ootd.llm_prices p ON p.model = c.model
    LEFT JOIN ref r ON true
    GROUP BY c.pool_date
), pools AS (
    SELECT pool_date, count(*) AS clusters, sum(members) AS users_served
    FROM ootd.pools
    GROUP BY pool_date
)
SELECT c.pool_date,
       coalesce(p.clusters, 0)                                     AS clusters,
       c.chat_calls,
       c.embedding_calls,
       c.failed_calls,
       c.prompt_tokens,
       c.completion_tokens,
       round(c.est_cost_usd::numeric, 6)                           AS est_cost_usd,
       round(c.cost_at_reference_usd::numeric, 6)                  AS cost_at_reference_usd,
       coalesce(p.users_served, 0)                                 AS users_served,
       coalesce(p.users_served, 0)                                 AS naive_calls,
       round((c.est_cost_usd / nullif(p.clusters, 0) * p.users_served)::numeric, 2)          AS naive_cost_usd,
       round((c.cost_at_reference_usd / nullif(p.clusters, 0) * p.users_served)::numeric, 2) AS naive_cost_at_reference_usd
FROM calls c
LEFT JOIN pools p ON p.pool_date = c.pool_date;
COMMENT ON VIEW ootd.llm_cost_daily IS
    'Per day: LLM calls, failures, tokens, estimated cost, users served, and the cost of one call per user.';

-- ------------------------------------------------------------ privileges ----
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;
GRANT SELECT ON ootd.weather_daily, ootd.llm_prices TO ootd_batch;
GRANT INSERT ON ootd.weather_daily TO ootd_batch;
GRANT SELECT ON ootd.weather_daily, ootd.llm_prices, ootd.llm_cost_daily TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.put_weather(date, text, jsonb), ootd.default_archetype(),
                          ootd.user_clusters(date), ootd.cluster_demand(date),
                          ootd.store_pool(date, text, text, text, integer, jsonb),
                          ootd.refresh_pool_cache(date, integer),
                          ootd.record_llm_calls(date, text, jsonb) TO ootd_batch;
GRANT EXECUTE ON FUNCTION ootd.default_archetype(), ootd.user_clusters(date), ootd.cluster_demand(date)
    TO ootd_analyst;

RESET ROLE;
