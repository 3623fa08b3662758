-- =============================================================================
-- Revision 0013 down: back to 0012 (frozen).  The feed serves the user's pool
-- only again; the simulator's functions go; the weights' column CHECKs
-- return.  A scoring_weights.neighbour_pools set to false is lost (the
-- downgrade guard asks first).
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd.simulate(jsonb, timestamptz, jsonb, text, integer);
DROP FUNCTION ootd.user_profile(bigint);
DROP FUNCTION ootd._profile_problem(jsonb);
DROP FUNCTION ootd.pool_catalog(date);
DROP FUNCTION ootd.weight_catalog();
DROP FUNCTION ootd.city_catalog();
DROP FUNCTION ootd.llm_calls_since(timestamptz);
DROP FUNCTION ootd.feed_explain(bigint, timestamptz, integer);
DROP FUNCTION ootd._ranked(bigint, timestamptz, integer);
DROP FUNCTION ootd._rank(bigint, jsonb, jsonb, public.vector, bigint[], timestamp, date, text, date, text, text, text,
                         ootd.scoring_weights, integer);
DROP FUNCTION ootd._serving_context(bigint, timestamptz);
DROP FUNCTION ootd._context(bigint, text, text, jsonb, jsonb, public.vector, bigint[], timestamptz, text);
DROP FUNCTION ootd._pool_rows(date, text, text, boolean);
DROP FUNCTION ootd._sweep_feeds(date, bigint[], time[], integer[], text, integer, boolean, boolean, integer, integer);
DROP FUNCTION ootd._weights_with(jsonb);
DROP TYPE ootd.serving_context;
ALTER TYPE ootd._candidate DROP ATTRIBUTE drawn_from;
COMMENT ON TYPE ootd._candidate IS 'Private: one outfit of the pool being served; source is cache or durable.';

ALTER TABLE ootd.scoring_weights
    DROP CONSTRAINT scoring_weights_in_range,
    DROP COLUMN neighbour_pools,
    ADD CONSTRAINT scoring_weights_preferred_color_check CHECK (preferred_color > 0),
    ADD CONSTRAINT scoring_weights_liked_category_check CHECK (liked_category > 0),
    ADD CONSTRAINT scoring_weights_category_affinity_check CHECK (category_affinity >= 0),
    ADD CONSTRAINT scoring_weights_cosine_check CHECK (cosine >= 0),
    ADD CONSTRAINT scoring_weights_daypart_priority_check CHECK (daypart_priority >= 0),
    ADD CONSTRAINT scoring_weights_liked_decay_check CHECK (liked_decay BETWEEN 0 AND 1),
    ADD CONSTRAINT scoring_weights_jitter_check CHECK (jitter BETWEEN 0 AND 1e-6);
DROP FUNCTION ootd._weights_problem(ootd.scoring_weights);
DROP FUNCTION ootd._weight_ranges();

ALTER FUNCTION ootd.vocabulary() SECURITY INVOKER RESET search_path;
REVOKE EXECUTE ON FUNCTION ootd.vocabulary() FROM ootd_api;

-- ootd._pool_rows(pool date, cluster): the pool's 20 candidates, from the
-- UNLOGGED cache when it holds them, else from durable ootd.outfits (after a
-- crash; always on a hot standby, which cannot read UNLOGGED tables: this is
-- PL/pgSQL so that a standby never even plans the cache query).
CREATE FUNCTION ootd._pool_rows(p_pool_date date, p_cluster_id text)
RETURNS SETOF ootd._candidate
LANGUAGE plpgsql STABLE ROWS 20
AS $$
BEGIN
    IF NOT pg_is_in_recovery() THEN
        RETURN QUERY SELECT c.outfit_id, c.daypart, c.title, c.category, c.color, c.embedding, 'cache'
                     FROM ootd.pool_cache c WHERE c.pool_date = p_pool_date AND c.cluster_id = p_cluster_id;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT o.id, o.daypart, o.title, o.category, o.color, o.embedding, 'durable'
                 FROM ootd.outfits o WHERE o.pool_date = p_pool_date AND o.cluster_id = p_cluster_id;
END
$$;
COMMENT ON FUNCTION ootd._pool_rows(date, text) IS
    'Private: a pool''s candidates from the cache, else (after a crash, on a standby) from durable ootd.outfits.';

-- ootd._serving_context(user, at): what the ranking needs to know about the
-- user at an instant, as one row: profile, local time, priority daypart, the
-- pool to serve and what its headline names (the pool's weather and archetype
-- adjectives, the city).  Pool: the user's cluster (archetype x the
-- city's weather on the local date); else the latest earlier pool of the
-- same archetype and weather; else the same archetype, any weather; else any
-- pool (latest up to the local date, then the earliest after it); each branch
-- is one index probe and the first that finds wins.  No row: unknown user or
-- no pool at all.
CREATE FUNCTION ootd._serving_context(p_user_id bigint, p_at timestamptz)
RETURNS TABLE (user_id bigint, dna jsonb, rules jsonb, taste public.vector, local timestamp, local_date date,
               priority_daypart text, pool_date date, cluster_id text, city text, weather_adjective text,
               archetype_adjective text)
LANGUAGE sql STABLE
AS $$
    SELECT u.id, u.style_dna, u.style_rules, u.taste, t.local, t.local::date, ootd._priority_daypart(t.local),
           p.pool_date, p.cluster_id, u.city, wc.adjective, ar.adjective
    FROM ootd.users u
    CROSS JOIN LATERAL (SELECT p_at AT TIME ZONE u.timezone AS local,
                               coalesce(u.style_dna ->> 'archetype', ootd.default_archetype()) AS archetype) t
    LEFT JOIN LATERAL (SELECT w.condition FROM ootd.weather_daily w
                       WHERE w.city = u.city AND w.day <= t.local::date
                       ORDER BY w.day DESC LIMIT 1) wx ON true
    CROSS JOIN LATERAL (
        SELECT s.pool_date, s.cluster_id, s.archetype, s.weather
        FROM ((SELECT p.pool_date, p.cluster_id, p.archetype, p.weather FROM ootd.pools p
               WHERE p.archetype = t.archetype AND p.weather = wx.condition AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.archetype, p.weather FROM ootd.pools p
               WHERE p.archetype = t.archetype AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.archetype, p.weather FROM ootd.pools p
               WHERE p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.archetype, p.weather FROM ootd.pools p
               ORDER BY p.pool_date, p.members DESC, p.cluster_id LIMIT 1)) s
        LIMIT 1) p
    LEFT JOIN ootd.weather_conditions wc ON wc.name = p.weather      -- the served pool's, not the user's
    LEFT JOIN ootd.archetypes ar ON ar.name = p.archetype
    WHERE u.id = p_user_id
$$;
COMMENT ON FUNCTION ootd._serving_context(bigint, timestamptz) IS
    'Private: the user at an instant: profile, local time, priority daypart, pool to serve, headline parts (inlined into ootd._ranked).';

-- ootd._ranked(user, at, limit): the whole last mile as one set-based query
-- (inlined into ootd.feed and ootd.feed_explain, so each caches one plan):
-- every candidate of the user's pool with each score component and its rank.
--  1. local time from the user's IANA zone; the priority daypart;
--  2. the pool (ootd._serving_context), read by ootd._pool_rows;
--  3. hard veto: an outfit in a disliked category or color is not served,
--     unless fewer than p_limit survive: then ootd._relax_vetoes relaxes
--     entries, strictest first, until p_limit outfits (or the whole pool) are
--     served;
--  4. score: ootd._score (each component and the total);
--  5. order: outfits that break no veto first, then the relaxed ones; then
--     the priority daypart first; within it one outfit of each category
--     before any category's second, and one of each color before any
--     color's second (diversity); then score; then outfit id;
--  6. headline: the served pool's weather and archetype, the occasion of the
--     first p_limit served outfits (ootd._occasion) and the city.
-- Vetoed candidates have a NULL rank.
CREATE FUNCTION ootd._ranked(p_user_id bigint, p_at timestamptz, p_limit integer)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[])
LANGUAGE sql STABLE
AS $$
    WITH x AS (
        SELECT * FROM ootd._serving_context(p_user_id, p_at)
    ), c AS (
        SELECT c.*, array_remove(ARRAY[
                   CASE WHEN x.rules -> 'disliked_categories' ? c.category THEN 'disliked_categories:' || c.category END,
                   CASE WHEN x.rules -> 'disliked_colors' ? c.color THEN 'disliked_colors:' || c.color END],
                   NULL) AS violations,
               c.outfit_id IN (SELECT k.outfit_id FROM ootd.likes k WHERE k.user_id = x.user_id) AS liked
        FROM x CROSS JOIN LATERAL ootd._pool_rows(x.pool_date, x.cluster_id) c
    ), relaxed AS (
        SELECT CASE WHEN count(*) FILTER (WHERE cardinality(c.violations) = 0) >= least(p_limit, count(*))
                    THEN '{}'::text[]
                    ELSE ootd._relax_vetoes(jsonb_agg(to_jsonb(c.violations)), p_limit) END AS rules
        FROM c
    ), scored AS (
        SELECT c.outfit_id, c.title, c.category, c.color, c.daypart, c.violations, c.source,
               c.violations <@ r.rules AS served, cardinality(c.violations) = 0 AS clean,
               c.daypart = x.priority_daypart AS priority, p.*, r.rules AS relaxed_rules
        FROM c CROSS JOIN x CROSS JOIN relaxed r CROSS JOIN ootd.scoring_weights w
        CROSS JOIN LATERAL ootd._score(w, x.user_id, x.dna, x.rules, x.taste, x.local_date, x.priority_daypart,
                                       c.liked, c.outfit_id, c.category, c.color, c.daypart, c.embedding) p
    ), ordered AS (
        SELECT s.*, row_number() OVER (PARTITION BY s.served, s.clean, s.priority, s.category
                                       ORDER BY s.score DESC, s.outfit_id) AS nth_of_category,
                    row_number() OVER (PARTITION BY s.served, s.clean, s.priority, s.color
                                       ORDER BY s.score DESC, s.outfit_id) AS nth_of_color
        FROM scored s
    )
    SELECT CASE WHEN o.served THEN row_number() OVER served_order::integer END,
           o.outfit_id, o.title, o.category, o.color, o.daypart, o.violations, o.priority,
           o.color_boost, o.category_boost, o.affinity_boost, o.liked_penalty, o.cosine, o.daypart_bonus,
           o.jitter, o.score,
           ootd._headline(x.weather_adjective, x.archetype_adjective,
                          ootd._occasion(x.local, (array_agg(o.daypart) OVER served_all)[1:p_limit]), x.city),
           x.cluster_id, x.pool_date, o.source, o.relaxed_rules
    FROM ordered o CROSS JOIN x
    WINDOW served_order AS (ORDER BY o.served DESC, o.clean DESC, o.priority DESC, (o.nth_of_category > 1),
                            (o.nth_of_color > 1), o.score DESC, o.outfit_id),
           served_all AS (served_order ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
$$;
COMMENT ON FUNCTION ootd._ranked(bigint, timestamptz, integer) IS
    'Private: every candidate of the user''s pool with each score component and its rank (NULL = vetoed); the ranking''s one home.';

-- ootd.feed_explain(user, at, limit): every candidate of the user's pool with
-- each score component, veto and rank (NULL = vetoed), the pool and where it
-- was read; ootd.feed returns the rows with a rank <= p_limit.
CREATE FUNCTION ootd.feed_explain(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[])
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_limit(p_limit), ootd._check_user(p_user_id);
    RETURN QUERY
    SELECT r.* FROM ootd._ranked(p_user_id, coalesce(p_at, now()), p_limit) r
    ORDER BY r.rank NULLS LAST, r.score DESC, r.outfit_id;
END
$$;
COMMENT ON FUNCTION ootd.feed_explain(bigint, timestamptz, integer) IS
    'Every candidate of the user''s pool with each score component, veto and rank (NULL rank = vetoed); for analysts.';

-- ootd._sweep_feeds(date, users, local times, ks, clustering, half,
-- progress, done, total): the users' measured feeds when every pool of the
-- date holds what ootd._sweep_pools puts in its place, each feed's
-- cluster_id replaced by the stand-in's label.  The stand-ins are written
-- into ootd.pool_cache in a subtransaction that is always rolled back (so
-- the cache, and what concurrent feeds read, never changes; a concurrent
-- cache refresh of the date waits for the pass).
CREATE FUNCTION ootd._sweep_feeds(p_date date, p_users bigint[], p_times time[], p_ks integer[],
                                  p_clustering text, p_half integer, p_progress boolean, p_done integer,
                                  p_total integer)
RETURNS ootd.evaluation_feed[]
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_feeds ootd.evaluation_feed[];
BEGIN
    BEGIN
        DELETE FROM ootd.pool_cache c WHERE c.pool_date = p_date;
        INSERT INTO ootd.pool_cache (pool_date, cluster_id, outfit_id, slot, daypart, title, category, color,
                                     vibe, trend, dare, embedding)
        SELECT p_date, s.cluster_id, o.id, o.slot, o.daypart, o.title, o.category, o.color,
               o.vibe, o.trend, o.dare, o.embedding
        FROM ootd._sweep_pools(p_date, p_clustering, p_half) s
        JOIN ootd.outfits o ON o.id = s.outfit_id;
        v_feeds := ARRAY(
            SELECT jsonb_populate_record(f, jsonb_build_object('cluster_id', coalesce(l.label, f.cluster_id)))
            FROM unnest(ootd._collect_feeds(p_date, p_users, p_times, p_ks, p_progress, p_done, p_total)) f
            LEFT JOIN (SELECT DISTINCT s.cluster_id, s.label FROM ootd._sweep_pools(p_date, p_clustering, p_half) s) l
                ON l.cluster_id = f.cluster_id);
        RAISE EXCEPTION 'sweep pass done' USING ERRCODE = 'OOTDS';
    EXCEPTION WHEN SQLSTATE 'OOTDS' THEN
        NULL;                            -- the stand-ins are gone; v_feeds stays
    END;
    RETURN v_feeds;
END
$$;
COMMENT ON FUNCTION ootd._sweep_feeds(date, bigint[], time[], integer[], text, integer, boolean, integer, integer) IS
    'Private: users'' measured feeds with stand-in pools (ootd._sweep_pools) written into the cache in a rolled-back subtransaction.';

-- ootd.evaluate_sweep(date, users, local times, limit, progress): the
-- metrics of ootd.evaluate for three clusterings, against K, the LLM calls
-- each costs a night, computed without any LLM call; stores one row in
-- ootd.evaluations (params.sweep = true; metrics: clusterings, the names from
-- coarse to fine, and per name the metrics of ootd.evaluate plus clusters,
-- llm_calls, users_per_call and weather_mismatch_share@k):
--   archetype                : every user of an archetype is served that
--                              archetype's largest pool of the day;
--   archetype_weather        : the pools as served (equals ootd.evaluate);
--   archetype_weather_taste  : each cluster split in two by taste
--                              (ootd._taste_halves), each half served the
--                              day's same-weather outfits nearest its mean
--                              taste (ootd._sweep_pools).
-- The oracle is ootd.evaluate's for every clustering.  progress: NOTICEs as
-- ootd.evaluate's, over 3 x users.  Errors: as ootd.evaluate.
CREATE OR REPLACE FUNCTION ootd.evaluate_sweep(p_date date DEFAULT NULL, p_users integer DEFAULT 600,
                                    p_times time[] DEFAULT '{09:00,15:00,21:00}', p_limit integer DEFAULT 5,
                                    p_progress boolean DEFAULT false)
RETURNS ootd.evaluations
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_date      date := coalesce(p_date, (SELECT max(p.pool_date) FROM ootd.pools p));
    v_names     constant text[] := '{archetype,archetype_weather,archetype_weather_taste}';
    v_ks        integer[] := ARRAY(SELECT DISTINCT k FROM unnest(ARRAY[3, p_limit]) k ORDER BY k);
    v_users     bigint[];
    v_n         integer;
    v_generated bigint;
    v_clusters  jsonb;
    v_feeds     ootd.evaluation_feed[];
    v_metrics   jsonb;
    v_row       ootd.evaluations;
BEGIN
    PERFORM ootd._check_evaluation(p_users, p_times, p_limit, v_date);
    v_users := ootd._evaluation_sample(p_users);
    v_n := cardinality(v_users);
    v_generated := (SELECT count(*) FROM ootd.outfits o WHERE o.pool_date = v_date);
    v_clusters := ootd._sweep_clusters(v_date);
    v_metrics := jsonb_build_object('clusterings', to_jsonb(v_names));

    FOR c IN 1 .. 3 LOOP
        IF c = 1 THEN
            v_feeds := ootd._sweep_feeds(v_date, v_users, p_times, v_ks, 'archetype', 0, p_progress, 0, 3 * v_n);
        ELSIF c = 2 THEN
            v_feeds := ootd._collect_feeds(v_date, v_users, p_times, v_ks, p_progress, v_n, 3 * v_n);
        ELSE
            v_feeds := '{}';
            FOR h IN 0 .. 1 LOOP
                v_users := ARRAY(SELECT s.id
                                 FROM unnest(ootd._evaluation_sample(p_users)) WITH ORDINALITY AS s(id, n)
                                 LEFT JOIN ootd._taste_halves(v_date) t ON t.user_id = s.id
                                 WHERE coalesce(t.half, 0) = h ORDER BY s.n);
                v_feeds := v_feeds || ootd._sweep_feeds(v_date, v_users, p_times, v_ks, 'taste', h, p_progress,
                                                        2 * v_n + h * (v_n - cardinality(v_users)), 3 * v_n);
            END LOOP;
        END IF;
        v_metrics := v_metrics || jsonb_build_object(v_names[c],
            ootd._evaluation_metrics(v_feeds, v_generated)
            || ootd._weather_mismatch(v_feeds, v_date)
            || jsonb_build_object('clusters', v_clusters -> v_names[c], 'llm_calls', v_clusters -> v_names[c],
                                  'users_per_call', (v_clusters ->> 'clustered_users')::double precision
                                                    / nullif((v_clusters ->> v_names[c])::double precision, 0)));
    END LOOP;

    INSERT INTO ootd.evaluations (pool_date, params, metrics)
    SELECT v_date,
           jsonb_build_object('sweep', true, 'users', p_users, 'sampled', v_n,
                              'at_times', ARRAY(SELECT to_char(t, 'HH24:MI') FROM unnest(p_times) t),
                              'k', v_ks, 'limit', p_limit, 'weights', to_jsonb(w) - 'singleton'),
           v_metrics
    FROM ootd.scoring_weights w
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION ootd.evaluate_sweep(date, integer, time[], integer, boolean) IS
    'The evaluation for clusterings by archetype, archetype x weather and x taste half, against the LLM calls each costs; no LLM call; stores one ootd.evaluations row.';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ootd.feed_explain(bigint, timestamptz, integer) TO ootd_analyst;

RESET ROLE;
