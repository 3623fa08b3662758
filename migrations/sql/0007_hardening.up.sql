-- =============================================================================
-- Revision 0007: hardening (frozen)
-- No session setting switches a check off: the ootd.learning flag is gone and
-- the users validation trigger is narrowed declaratively instead (WHEN
-- pg_trigger_depth() = 0: the likes trigger's own UPDATE is not re-validated).
-- put_user merges (only what is given changes), cities match in any case with
-- suggestions, ootd.add_city.  LLM
-- requests are recorded (status sent) before they are sent.  The cache refresh
-- never evicts today's pools; rehydration works from today, writes nothing when
-- nothing is missing, and the API role may call it; ootd.check_pool_date.
-- =============================================================================
SET ROLE ootd_owner;

-- --------------------------------------------------------------- tables ----
ALTER TABLE ootd.llm_calls DROP CONSTRAINT llm_calls_status_check;
ALTER TABLE ootd.llm_calls ADD CONSTRAINT llm_calls_status_check CHECK (status IN ('sent', 'ok', 'invalid', 'error'));
ALTER TABLE ootd.llm_calls ALTER COLUMN latency_ms DROP NOT NULL;
ALTER TABLE ootd.llm_calls ADD CONSTRAINT llm_calls_finished_check CHECK (status = 'sent' OR latency_ms IS NOT NULL);
COMMENT ON TABLE ootd.llm_calls IS 'The LLM ledger: one row per request (chat or embedding), written (status sent) before it is sent, then finished.';
COMMENT ON COLUMN ootd.llm_calls.status IS 'sent: recorded before sending, outcome unknown (the run was killed); ok, invalid (answered, failed validation) or error.';
CREATE UNIQUE INDEX cities_lower_name_key ON ootd.cities (lower(name));

-- ------------------------------------------------------------ functions ----
DROP FUNCTION ootd.put_user(bigint, text, text, jsonb, jsonb);
DROP FUNCTION ootd.rehydrate_cache(integer);

-- ootd._users_validate(): statement-level trigger over the transition table
-- `new_rows`, so a COPY of a million users is validated in three set-based
-- passes instead of a million PL/pgSQL calls.  Raising aborts the statement:
-- nothing is written.  No setting skips it; the UPDATE trigger is narrowed
-- declaratively (WHEN pg_trigger_depth() = 0, below).
--   22023 invalid_parameter_value  time zone is not an IANA zone name
--   23514 check_violation          style_dna / style_rules have the wrong shape
--   23503 foreign_key_violation    an archetype, category or color is unknown
CREATE OR REPLACE FUNCTION ootd._users_validate()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    bad     record;
    v_vocab jsonb;
BEGIN
    v_vocab := ootd.vocabulary();  -- once per statement, not per row
    SELECT n.id, n.timezone INTO bad
    FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM ootd.timezones t WHERE t.name = n.timezone)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'user %: invalid time zone "%": not an IANA time zone name', bad.id, bad.timezone
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use a name such as America/Los_Angeles (see ootd.timezones); POSIX strings like UTC+5 have reversed signs and are rejected.';
    END IF;

    SELECT s.id, s.problem INTO bad
    FROM (SELECT n.id, ootd._style_shape_problem(n.style_dna, n.style_rules) AS problem
          FROM new_rows n) s
    WHERE s.problem IS NOT NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'user %: %', bad.id, bad.problem
            USING ERRCODE = 'check_violation', TABLE = 'users', SCHEMA = 'ootd';
    END IF;

    SELECT s.id, s.problem INTO bad
    FROM (SELECT n.id, ootd._style_vocabulary_problem(n.style_dna, n.style_rules, v_vocab) AS problem
          FROM new_rows n) s
    WHERE s.problem IS NOT NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'user %: %', bad.id, bad.problem
            USING ERRCODE = 'foreign_key_violation', TABLE = 'users', SCHEMA = 'ootd',
                  HINT = 'Known names are listed by SELECT ootd.vocabulary();';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._users_validate() IS
    'Private trigger: validates time zone, style_dna and style_rules of every inserted/updated user, set-based.';

-- ootd._name_similarity(a, b): Dice coefficient of the two names' distinct
-- lower-case letter pairs, 0..1 (1 = the same pairs).
CREATE FUNCTION ootd._name_similarity(p_a text, p_b text)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    WITH a AS (SELECT DISTINCT substr(lower(p_a), i, 2) AS pair FROM generate_series(1, length(p_a) - 1) i),
         b AS (SELECT DISTINCT substr(lower(p_b), i, 2) AS pair FROM generate_series(1, length(p_b) - 1) i)
    SELECT coalesce(2.0 * (SELECT count(*) FROM a JOIN b USING (pair))
                    / nullif((SELECT count(*) FROM a) + (SELECT count(*) FROM b), 0), 0)::double precision
$$;
COMMENT ON FUNCTION ootd._name_similarity(text, text) IS
    'Private: Dice coefficient of two names'' lower-case letter pairs (0 = nothing shared, 1 = same pairs).';

-- ootd._closest_cities(name): up to three known city names most like `name`
-- (Dice coefficient of letter pairs, at least 0.5), "A, B or C"; NULL if none.
CREATE FUNCTION ootd._closest_cities(p_name text)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT regexp_replace(string_agg(m.name, ', ' ORDER BY m.similarity DESC, m.name), ', ([^,]*)$', ' or \1')
    FROM (SELECT c.name, ootd._name_similarity(c.name, p_name) AS similarity
          FROM ootd.cities c
          ORDER BY 2 DESC, 1
          LIMIT 3) m
    WHERE m.similarity >= 0.5
$$;
COMMENT ON FUNCTION ootd._closest_cities(text) IS
    'Private: up to three city names closest to a misspelt one, as "A, B or C" (NULL if none is close).';

-- ootd._resolve_city(name): the city's canonical name and time zone, matched
-- whatever the case ("torrance" is Torrance).  Unknown: 23503 naming the
-- closest known names.
CREATE FUNCTION ootd._resolve_city(p_name text, OUT name text, OUT timezone text)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    SELECT c.name, c.timezone INTO name, timezone FROM ootd.cities c WHERE lower(c.name) = lower(p_name);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown city "%"%', p_name,
                        coalesce(' (did you mean ' || ootd._closest_cities(p_name) || '?)', '')
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'Known cities are listed by SELECT name FROM ootd.cities; add one with ootd.add_city(...) (ootd city add).';
    END IF;
END
$$;
COMMENT ON FUNCTION ootd._resolve_city(text) IS
    'Private: canonical name and time zone of a city given in any case; 23503 with the closest names if unknown.';

-- ootd.put_user(...): create a user, or update one.  A new user needs a city
-- (the time zone defaults to the city's).  An update changes only what is
-- given (NULL = keep): a new city moves the time zone with it unless one is
-- given; style_dna and style_rules are merged key by key, so setting
-- style_rules never touches the learned style_dna (and unlikes stay exact).
-- Cities match whatever the case.  Errors: 22023 bad id, 23502 new user
-- without a city, 23503 unknown city; the users triggers check the rest.
CREATE FUNCTION ootd.put_user(
    p_id          bigint,
    p_city        text DEFAULT NULL,
    p_timezone    text DEFAULT NULL,
    p_style_dna   jsonb DEFAULT NULL,
    p_style_rules jsonb DEFAULT NULL
)
RETURNS ootd.users
LANGUAGE plpgsql
AS $$
DECLARE
    v_city ootd.cities;
    v_user ootd.users;
BEGIN
    IF p_id IS NULL OR p_id <= 0 THEN
        RAISE EXCEPTION 'user id must be a positive integer, got %', coalesce(p_id::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_city IS NOT NULL THEN
        SELECT r.name, r.timezone INTO v_city.name, v_city.timezone FROM ootd._resolve_city(p_city) r;
    END IF;
    UPDATE ootd.users u
    SET city        = coalesce(v_city.name, u.city),
        timezone    = coalesce(p_timezone, v_city.timezone, u.timezone),
        style_dna   = u.style_dna || coalesce(p_style_dna, '{}'),
        style_rules = u.style_rules || coalesce(p_style_rules, '{}'),
        updated_at  = now()
    WHERE u.id = p_id
    RETURNING u.* INTO v_user;
    IF FOUND THEN
        RETURN v_user;
    END IF;
    IF p_city IS NULL THEN
        RAISE EXCEPTION 'user % does not exist: a new user needs a city', p_id
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Give one, e.g. ootd user ID --city Torrance.';
    END IF;
    INSERT INTO ootd.users AS u (id, city, timezone, style_dna, style_rules)
    VALUES (p_id, v_city.name, coalesce(p_timezone, v_city.timezone),
            coalesce(p_style_dna, '{}'), coalesce(p_style_rules, '{}'))
    RETURNING u.* INTO v_user;
    RETURN v_user;
END
$$;
COMMENT ON FUNCTION ootd.put_user(bigint, text, text, jsonb, jsonb) IS
    'Create a user (needs a city) or update one: only the arguments given change, style documents merge key by key.';

-- ootd.add_city(name, timezone, latitude, longitude, country, population_k):
-- a new city users may live in (weather is forecast for it from the next
-- nightly run).  Errors: 22023 empty name, unknown time zone or coordinates
-- out of range, 23505 a city of that name exists (any case).
CREATE FUNCTION ootd.add_city(p_name text, p_timezone text, p_latitude double precision,
                              p_longitude double precision, p_country text DEFAULT 'ZZ',
                              p_population_k integer DEFAULT 100)
RETURNS ootd.cities
LANGUAGE plpgsql
AS $$
DECLARE
    v_name text := btrim(p_name);
    v_city ootd.cities;
BEGIN
    IF coalesce(v_name, '') = '' THEN
        RAISE EXCEPTION 'a city needs a name' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ootd.timezones t WHERE t.name = p_timezone) THEN
        RAISE EXCEPTION 'city "%": invalid time zone "%": not an IANA time zone name', v_name, p_timezone
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use a name such as America/Los_Angeles (see ootd.timezones).';
    END IF;
    IF p_latitude IS NULL OR p_longitude IS NULL OR p_latitude NOT BETWEEN -90 AND 90
       OR p_longitude NOT BETWEEN -180 AND 180 THEN
        RAISE EXCEPTION 'city "%": latitude must be within -90..90 and longitude within -180..180, got % and %',
                        v_name, coalesce(p_latitude::text, 'NULL'), coalesce(p_longitude::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_country IS NULL OR p_country !~ '^[A-Z]{2}$' THEN
        RAISE EXCEPTION 'city "%": country must be an ISO 3166 code of two capital letters, got "%"', v_name, p_country
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_population_k IS NULL OR p_population_k <= 0 THEN
        RAISE EXCEPTION 'city "%": population_k must be a positive number of thousands', v_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.* INTO v_city FROM ootd.cities c WHERE lower(c.name) = lower(v_name);
    IF FOUND THEN
        RAISE EXCEPTION 'city "%" already exists as "%"', v_name, v_city.name USING ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO ootd.cities AS c (name, country, timezone, latitude, longitude, population_k)
    VALUES (v_name, p_country, p_timezone, p_latitude, p_longitude, p_population_k)
    RETURNING c.* INTO v_city;
    RETURN v_city;
END
$$;
COMMENT ON FUNCTION ootd.add_city(text, text, double precision, double precision, text, integer) IS
    'Add a city users may live in (ZZ = country unknown); validates time zone and coordinates, names are unique in any case.';

-- ootd.record_llm_request(day, cluster, provider, kind, model, attempt): the
-- ledger row of a request about to be sent (status 'sent'), committed before
-- it goes out, so a run killed mid-request still counts every request the
-- server may have received (and billed).  Returns its id for
-- ootd.record_llm_calls to finish.
CREATE FUNCTION ootd.record_llm_request(p_pool_date date, p_cluster_id text, p_provider text, p_kind text,
                                        p_model text, p_attempt integer)
RETURNS bigint
LANGUAGE sql
AS $$
    INSERT INTO ootd.llm_calls (pool_date, cluster_id, provider, kind, model, attempt, status)
    VALUES (p_pool_date, p_cluster_id, p_provider, p_kind, p_model, p_attempt, 'sent')
    RETURNING id
$$;
COMMENT ON FUNCTION ootd.record_llm_request(date, text, text, text, text, integer) IS
    'Ledger row (status sent) of an LLM request about to be sent; returns its id.';

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
    IF pg_is_in_recovery() OR NOT EXISTS (
           SELECT 1 FROM ootd.outfits o
           WHERE o.pool_date BETWEEN p_day - p_days AND p_day + 1
             AND NOT EXISTS (SELECT 1 FROM ootd.pool_cache c
                             WHERE c.pool_date = o.pool_date AND c.cluster_id = o.cluster_id AND c.outfit_id = o.id)) THEN
        RETURN 0;                      -- a standby, or nothing missing: no write, no cache epoch bump
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

-- ootd.refresh_pool_cache(day, keep_days): copy the day's durable pools into
-- the UNLOGGED cache and drop entries more than keep_days older than both the
-- day and the database's current date (so a far-future day never evicts the
-- pools being served today), in one transaction.  DELETE + INSERT (not
-- TRUNCATE) takes no lock a reader waits on: readers keep seeing the old rows
-- until commit, then all the new ones.
CREATE OR REPLACE FUNCTION ootd.refresh_pool_cache(p_day date, p_keep_days integer DEFAULT 3)
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

-- ootd.record_llm_calls(day, cluster, calls): the outcome of a cluster's
-- requests, one per element: an element with the "id" of its
-- ootd.record_llm_request row finishes that row, one without is appended.
-- calls = [{"id","provider","kind","model","attempt","status","http_status",
-- "prompt_tokens","completion_tokens","latency_ms","error"}].
CREATE OR REPLACE FUNCTION ootd.record_llm_calls(p_pool_date date, p_cluster_id text, p_calls jsonb)
RETURNS integer
LANGUAGE sql
AS $$
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
$$;
COMMENT ON FUNCTION ootd.record_llm_calls(date, text, jsonb) IS
    'Finish (by id) or append the LLM ledger rows of a cluster''s requests; returns rows written.';

-- ootd._forget_feeds(): statement-level trigger on UPDATE of ootd.users
-- (transition table `changed`); marks those users' memoized feeds stale
-- (epoch 0) but keeps them as the record of what was served.  A like's own
-- UPDATE of users comes through here too: this is where likes forget feeds.
CREATE OR REPLACE FUNCTION ootd._forget_feeds()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE ootd.feed_memo m SET epoch = 0 WHERE m.user_id IN (SELECT c.id FROM changed c) AND m.epoch <> 0;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._forget_feeds() IS 'Private trigger: a user''s profile changed, so their memoized feeds are stale.';

-- ootd._learn_from_likes(): statement-level trigger on ootd.likes, for INSERT
-- and for DELETE (transition table `changed`).  In the same transaction it
-- folds the statement's likes into each user's profile (or takes unliked ones
-- back out); its UPDATE of users goes through the users triggers like any
-- other (validated, memoized feeds forgotten).  One outfit at a time,
-- with n the user's likes before it and W = 1 + n observations (the stated
-- profile counts as one):
--   likes_count          n + 1 (unlike: n - 1)
--   vibe, trend, dare    running means in double precision: (W x old +
--                        outfit's) / (W + 1), and (W x old - outfit's) / (W - 1)
--                        for an unlike, which restores the old value; the
--                        outfit's value (a real) counts with 6 decimals, a
--                        missing mean starts at 0.5, means are stored rounded
--                        to 12 decimals
--   taste, taste_norm    the same running mean of unit embeddings, kept as
--                        direction (taste, unit length; cosine needs nothing
--                        else) and length (taste_norm), so an unlike subtracts
--                        exactly what the like added
--   category_affinity    [category] + 1 (unlike: - 1; a key reaching 0 goes)
--   color_affinity       [color] + 1 (unlike: - 1); the first like seeds it with
--                        ootd._seed_colors(stated preferred_colors), so stated
--                        colors are never forgotten and undoing every like
--                        restores the stated list exactly
--   preferred_colors     the strongest 8 of color_affinity: by strength, then
--                        by the latest like of that color, then by name.  A like
--                        only moves its color up: it goes in front of its
--                        strength group, behind the colors that are stronger,
--                        so the list is updated in place; an unlike recomputes
--                        it from the user's remaining likes.
-- One like (the common statement) is one UPDATE whose SET computes the new
-- profile from the row it updates; every other statement goes through the
-- loop, one user at a time.  Both compute the same values.
-- Lost updates and deadlocks: the single-like UPDATE locks its row and, if a
-- concurrent like of the same user committed first, re-reads the newest
-- version and recomputes (READ COMMITTED); the loop locks each user row FOR
-- NO KEY UPDATE, in user-id order, and computes from that read.  Statements
-- touching several users lock them in the same order, so they cannot
-- deadlock.  (Under REPEATABLE READ a concurrent like of the same user is a
-- 40001 to retry.)
-- Precision: means are float8 rounded to 12 decimals and taste is float4, so
-- undoing likes restores the earlier values up to rounding that grows with
-- the likes in between: means within 1e-11 and taste (each component, and
-- taste_norm) within 1e-5 per like, e.g. 1e-9 and 1e-3 after 100 likes and
-- their unlikes; every other field is restored exactly (tests/test_likes.py).
CREATE OR REPLACE FUNCTION ootd._learn_from_likes()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sign   integer := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
    v_rows   bigint;
    v_user   bigint;
    v_outfit bigint;
    r        record;
    o        ootd.outfits;
    u        ootd.users;
    v_dna    jsonb;
    v_cats   jsonb;
    v_colors jsonb;
    v_list   jsonb;
    v_w      double precision; -- observations behind the running means
    v_vibe   double precision;
    v_trend  double precision;
    v_dare   double precision;
    v_sum    public.vector;    -- W x the running mean of the taste
    v_taste  public.vector;
    v_norm   real;
    v_left   numeric;
BEGIN
    SELECT count(*), min(c.user_id), min(c.outfit_id) INTO v_rows, v_user, v_outfit FROM changed c;
    IF v_rows = 0 THEN
        RETURN NULL;                   -- nothing changed (a repeated like)
    END IF;

    IF v_rows = 1 AND v_sign > 0 THEN
        -- One like: the loop's arithmetic for one outfit, as one statement.
        UPDATE ootd.users p
        SET (style_dna, taste, taste_norm, likes_count, updated_at) = (
            SELECT p.style_dna || jsonb_build_object(
                       'color_affinity',
                           jsonb_set(z.seeded, ARRAY[x.color],
                                     to_jsonb(trim_scale(coalesce((z.seeded ->> x.color)::numeric, 0) + 1))),
                       'preferred_colors',
                           jsonb_insert(coalesce(p.style_dna -> 'preferred_colors', '[]') - x.color,
                                        ARRAY[jsonb_array_length(jsonb_path_query_array(z.seeded, '$.* ? (@ > $s)',
                                                  jsonb_build_object('s', coalesce((z.seeded ->> x.color)::numeric, 0) + 1)))::text],
                                        to_jsonb(x.color)) - 8,
                       'category_affinity',
                           jsonb_set(coalesce(p.style_dna -> 'category_affinity', '{}'), ARRAY[x.category],
                                     to_jsonb(coalesce((p.style_dna -> 'category_affinity' ->> x.category)::numeric, 0) + 1)),
                       'vibe',  round(least(1, greatest(0, (z.w * coalesce((p.style_dna ->> 'vibe')::float8, 0.5)
                                                            + round(x.vibe::float8 * 1e6) / 1e6) / (z.w + 1))) * 1e12) / 1e12,
                       'trend', round(least(1, greatest(0, (z.w * coalesce((p.style_dna ->> 'trend')::float8, 0.5)
                                                            + round(x.trend::float8 * 1e6) / 1e6) / (z.w + 1))) * 1e12) / 1e12,
                       'dare',  round(least(1, greatest(0, (z.w * coalesce((p.style_dna ->> 'dare')::float8, 0.5)
                                                            + round(x.dare::float8 * 1e6) / 1e6) / (z.w + 1))) * 1e12) / 1e12),
                   CASE WHEN public.vector_norm(z.total) > 1e-6 THEN public.l2_normalize(z.total) ELSE p.taste END,
                   CASE WHEN public.vector_norm(z.total) > 1e-6 THEN public.vector_norm(z.total) / (z.w + 1)
                        ELSE p.taste_norm END,
                   p.likes_count + 1,
                   now()
            FROM ootd.outfits x,
                 LATERAL (SELECT 1 + p.likes_count::float8 AS w,
                                 coalesce(p.style_dna -> 'color_affinity',
                                          ootd._seed_colors(p.style_dna -> 'preferred_colors')) AS seeded,
                                 CASE WHEN p.taste IS NULL THEN x.embedding
                                      ELSE p.taste OPERATOR(public.*)
                                           array_fill(((1 + p.likes_count::float8) * p.taste_norm)::real,
                                                      ARRAY[public.vector_dims(p.taste)])::public.vector
                                           OPERATOR(public.+) x.embedding END AS total
                          OFFSET 0) z              -- evaluated once, not once per use
            WHERE x.id = v_outfit)
        WHERE p.id = v_user;
        RETURN NULL;
    END IF;

    FOR r IN
        SELECT c.user_id, array_agg(x ORDER BY c.liked_at, c.outfit_id) AS outfits
        FROM changed c JOIN ootd.outfits x ON x.id = c.outfit_id
        GROUP BY c.user_id
        ORDER BY c.user_id
    LOOP
        SELECT * INTO u FROM ootd.users WHERE id = r.user_id FOR NO KEY UPDATE;
        CONTINUE WHEN NOT FOUND;       -- the user is being deleted (likes cascade)
        v_dna    := u.style_dna;
        v_cats   := coalesce(v_dna -> 'category_affinity', '{}');
        v_list   := coalesce(v_dna -> 'preferred_colors', '[]');
        v_colors := coalesce(v_dna -> 'color_affinity', ootd._seed_colors(v_list));
        v_w      := 1 + u.likes_count;
        v_vibe   := coalesce((v_dna ->> 'vibe')::double precision, 0.5);
        v_trend  := coalesce((v_dna ->> 'trend')::double precision, 0.5);
        v_dare   := coalesce((v_dna ->> 'dare')::double precision, 0.5);
        v_sum    := CASE WHEN u.taste IS NOT NULL THEN
                        u.taste OPERATOR(public.*)
                        array_fill((v_w * u.taste_norm)::real, ARRAY[public.vector_dims(u.taste)])::public.vector END;

        FOREACH o IN ARRAY r.outfits LOOP
            IF v_w + v_sign >= 1 THEN
                v_vibe  := (v_w * v_vibe  + v_sign * (round(o.vibe::double precision * 1e6) / 1e6))  / (v_w + v_sign);
                v_trend := (v_w * v_trend + v_sign * (round(o.trend::double precision * 1e6) / 1e6)) / (v_w + v_sign);
                v_dare  := (v_w * v_dare  + v_sign * (round(o.dare::double precision * 1e6) / 1e6))  / (v_w + v_sign);
                v_sum   := CASE WHEN v_sum IS NULL THEN CASE WHEN v_sign > 0 THEN o.embedding END
                                WHEN v_sign > 0 THEN v_sum OPERATOR(public.+) o.embedding
                                ELSE v_sum OPERATOR(public.-) o.embedding END;
                v_w := v_w + v_sign;
            END IF;
            v_left := coalesce((v_cats ->> o.category)::numeric, 0) + v_sign;
            v_cats := CASE WHEN v_left > 0 THEN jsonb_set(v_cats, ARRAY[o.category], to_jsonb(v_left))
                           ELSE v_cats - o.category END;
            v_left := coalesce((v_colors ->> o.color)::numeric, 0) + v_sign;
            v_colors := CASE WHEN v_left > 0 THEN jsonb_set(v_colors, ARRAY[o.color], to_jsonb(trim_scale(v_left)))
                             ELSE v_colors - o.color END;
            IF v_sign > 0 THEN
                -- the liked color goes behind the colors stronger than it (8 at most)
                v_list := jsonb_insert(v_list - o.color,
                                       ARRAY[jsonb_array_length(jsonb_path_query_array(v_colors, '$.* ? (@ > $s)',
                                                 jsonb_build_object('s', v_left)))::text],
                                       to_jsonb(o.color)) - 8;
            END IF;
        END LOOP;

        IF u.likes_count + v_sign * cardinality(r.outfits) <= 0 THEN
            -- no likes left: back to the stated colors, in stated order
            v_list := (SELECT coalesce(jsonb_agg(e.key ORDER BY e.value::numeric DESC, e.key), '[]')
                       FROM jsonb_each(v_colors) e);
            v_dna := v_dna - 'color_affinity';
        ELSE
            IF v_sign < 0 THEN
                v_list := (SELECT coalesce(jsonb_agg(t.key ORDER BY t.strength DESC, t.last_liked DESC NULLS LAST, t.key), '[]')
                           FROM (SELECT e.key, e.value::numeric AS strength, rl.last_liked
                                 FROM jsonb_each(v_colors) e
                                 LEFT JOIN (SELECT x.color, max(l.liked_at) AS last_liked
                                            FROM ootd.likes l JOIN ootd.outfits x ON x.id = l.outfit_id
                                            WHERE l.user_id = u.id
                                            GROUP BY x.color) rl ON rl.color = e.key
                                 ORDER BY e.value::numeric DESC, rl.last_liked DESC NULLS LAST, e.key
                                 LIMIT 8) t);
            END IF;
            v_dna := v_dna || jsonb_build_object('color_affinity', v_colors);
        END IF;
        v_dna := v_dna || jsonb_build_object(
            'preferred_colors', v_list,
            'category_affinity', v_cats,
            'vibe',  round(least(1, greatest(0, v_vibe))  * 1e12) / 1e12,
            'trend', round(least(1, greatest(0, v_trend)) * 1e12) / 1e12,
            'dare',  round(least(1, greatest(0, v_dare))  * 1e12) / 1e12);
        v_taste := u.taste;
        v_norm  := u.taste_norm;
        IF v_sum IS NOT NULL AND public.vector_norm(v_sum) > 1e-6 THEN
            v_taste := public.l2_normalize(v_sum);
            v_norm  := public.vector_norm(v_sum) / v_w;
        END IF;

        UPDATE ootd.users
        SET style_dna   = v_dna,
            taste       = v_taste,
            taste_norm  = v_norm,
            likes_count = greatest(0, likes_count + v_sign * cardinality(r.outfits)),
            updated_at  = now()
        WHERE id = u.id;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._learn_from_likes() IS
    'Private trigger: folds liked (or unliked) outfits into the user''s style_dna and taste; no lost updates, no deadlocks.';


-- ------------------------------------------------------------- triggers ----
-- An UPDATE made by another trigger (the likes trigger) is not re-validated:
-- narrowed by a WHEN clause, which no session can switch.
DROP TRIGGER users_validate_update ON ootd.users;
CREATE TRIGGER users_validate_update
    AFTER UPDATE ON ootd.users
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (pg_trigger_depth() = 0)
    EXECUTE FUNCTION ootd._users_validate();

-- ------------------------------------------------------------ privileges ----
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ootd.record_llm_request(date, text, text, text, text, integer),
                          ootd.check_pool_date(date) TO ootd_batch;
GRANT EXECUTE ON FUNCTION ootd.rehydrate_cache(date, integer) TO ootd_batch, ootd_api;

RESET ROLE;
