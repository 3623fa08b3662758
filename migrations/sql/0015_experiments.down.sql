-- =============================================================================
-- Revision 0015 down: back to 0014 (frozen).  Experiments, their variants
-- and their log are dropped (the downgrade guard asks first when they hold
-- rows); the feed loses its variant column and serves the weights in force.
-- =============================================================================
SET ROLE ootd_owner;

DROP VIEW ootd.experiment_results;
DROP FUNCTION ootd.evaluate_variants(text, date, integer, time[], integer, boolean);
DROP FUNCTION ootd._variant_feeds(date, bigint[], time[], integer[], text, text, boolean, integer, integer);
DROP FUNCTION ootd._evaluation_params(integer, integer, time[], integer[], integer);
DROP FUNCTION ootd._experiment_results(text);
DROP FUNCTION ootd.experiment_of(bigint);
DROP FUNCTION ootd.end_experiment(text);
DROP FUNCTION ootd.set_experiment_shares(text, jsonb);
DROP FUNCTION ootd.start_experiment(text, jsonb, text);
DROP FUNCTION ootd._running(text);
DROP FUNCTION ootd._allocation_problem(jsonb, text);
DROP FUNCTION ootd._shares(text);
DROP FUNCTION ootd.feed(bigint, timestamptz, integer);
DROP FUNCTION ootd.feed_explain(bigint, timestamptz, integer);
DROP FUNCTION ootd.simulate(jsonb, timestamptz, jsonb, text, integer);
DROP FUNCTION ootd._ranked(bigint, timestamptz, integer);
DROP FUNCTION ootd._rank(bigint, jsonb, jsonb, public.vector, bigint[], timestamp, date, text, date, text, text, text,
                         ootd.scoring_weights, integer, text);
DROP TYPE ootd.ranked_outfit;
DROP FUNCTION ootd._assignment(bigint);
DROP FUNCTION ootd._allocation(text);
DROP FUNCTION ootd._variant_at(text, bigint, text[], numeric[]);
DROP FUNCTION ootd._bucket(text, bigint);
DROP FUNCTION ootd._weights_with(jsonb, ootd.scoring_weights);
DROP TABLE ootd.experiment_changes;
DROP TABLE ootd.experiment_variants;
DROP TABLE ootd.experiments;
DROP FUNCTION ootd._is_name(text);

-- ootd._weights_with(overrides): the current weights with some replaced, for
-- one call (what-if, never written): keys are ootd.scoring_weights columns.
-- Errors 22023: not an object, an unknown or non-weight key, a value of the
-- wrong type or out of range.
CREATE FUNCTION ootd._weights_with(p_overrides jsonb)
RETURNS ootd.scoring_weights
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    w       ootd.scoring_weights;
    v_key   text;
    v_error text;
BEGIN
    SELECT * INTO w FROM ootd.scoring_weights;
    IF p_overrides IS NULL OR p_overrides = '{}' THEN
        RETURN w;
    END IF;
    IF jsonb_typeof(p_overrides) <> 'object' THEN
        RAISE EXCEPTION 'weights must be a JSON object, got %', p_overrides USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT k INTO v_key FROM jsonb_object_keys(p_overrides) k
    WHERE k IN ('singleton', 'updated_at') OR k NOT IN (SELECT a.attname FROM pg_attribute a
                                                        WHERE a.attrelid = 'ootd.scoring_weights'::regclass
                                                          AND a.attnum > 0 AND NOT a.attisdropped)
    ORDER BY k LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown weight "%" (known: %)', v_key,
            (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a
             WHERE a.attrelid = 'ootd.scoring_weights'::regclass AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attname NOT IN ('singleton', 'updated_at'))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        w := jsonb_populate_record(w, p_overrides);
    EXCEPTION WHEN data_exception THEN
        GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT;
        RAISE EXCEPTION 'bad weight value in %: %', p_overrides, v_error USING ERRCODE = 'invalid_parameter_value';
    END;
    v_error := ootd._weights_problem(w);
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION 'bad weights: %', v_error USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN w;
END
$$;
COMMENT ON FUNCTION ootd._weights_with(jsonb) IS
    'Private: the current scoring weights with the given keys replaced, validated (22023), never written.';

-- ootd._rank(context..., weights, limit): the whole last mile as one
-- set-based query: every candidate with each score component and its rank.
-- The context comes as the fields of an ootd.serving_context (liked: the
-- profile's liked outfit ids), so each candidate reads plain values.
--  1. the candidates (ootd._pool_rows): the served pool, and the priority
--     daypart's outfits of its same-weather neighbours (weights.neighbour_pools);
--  2. hard veto: an outfit in a disliked category or color is not served,
--     unless fewer than p_limit survive: then ootd._relax_vetoes relaxes
--     entries, strictest first, until p_limit outfits (or all candidates)
--     are served;
--  3. score: ootd._score (each component and the total);
--  4. order: outfits that break no veto first, then the relaxed ones; then
--     the priority daypart first; within it each category's best outfit
--     before any category's second, and among those, each color's best
--     before its second (diversity: three categories and three colors in a
--     top-3 whenever the candidates' best per category span three colors);
--     then score; then outfit id;
--  5. headline, computed once: the served pool's weather, the archetype of
--     the pool the first item was drawn from, the occasion of the first
--     p_limit served outfits (ootd._occasion) and the city.
-- Vetoed candidates have a NULL rank.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._rank(p_user_id bigint, p_dna jsonb, p_rules jsonb, p_taste public.vector, p_liked bigint[],
                           p_local timestamp, p_local_date date, p_priority text, p_pool_date date,
                           p_cluster_id text, p_city text, p_weather_adjective text, w ootd.scoring_weights,
                           p_limit integer)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[], drawn_from text)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH c AS (
        SELECT c.*, array_remove(ARRAY[
                   CASE WHEN p_rules -> 'disliked_categories' ? c.category THEN 'disliked_categories:' || c.category END,
                   CASE WHEN p_rules -> 'disliked_colors' ? c.color THEN 'disliked_colors:' || c.color END],
                   NULL) AS violations,
               c.outfit_id = ANY (p_liked) AS liked
        FROM ootd._pool_rows(p_pool_date, p_cluster_id, p_priority, w.neighbour_pools) c
    ), relaxed AS (
        SELECT CASE WHEN count(*) FILTER (WHERE cardinality(c.violations) = 0) >= least(p_limit, count(*))
                    THEN '{}'::text[]
                    ELSE ootd._relax_vetoes((SELECT jsonb_agg(to_jsonb(v.violations)) FROM c v), p_limit) END AS rules
        FROM c                 -- (the sub-select runs only when some rule must be relaxed)
    ), scored AS (             -- fixed-width sort keys first: the sorts below deform them for every comparison
        SELECT c.violations <@ r.rules AS served, cardinality(c.violations) = 0 AS clean,
               c.daypart = p_priority AS priority, p.score, c.outfit_id, p.color_boost, p.category_boost,
               p.affinity_boost, p.liked_penalty, p.cosine, p.daypart_bonus, p.jitter, c.category, c.color,
               c.title, c.daypart, c.violations, c.source, c.drawn_from, r.rules AS relaxed_rules
        FROM c CROSS JOIN relaxed r
        CROSS JOIN LATERAL ootd._score(w, p_user_id, p_dna, p_rules, p_taste, p_local_date, p_priority,
                                       c.liked, c.outfit_id, c.category, c.color, c.daypart, c.embedding) p
    ), by_category AS (
        SELECT row_number() OVER (PARTITION BY s.served, s.clean, s.priority, s.category
                                  ORDER BY s.score DESC, s.outfit_id) > 1 AS second_of_category,
               s.*
        FROM scored s
    ), ordered AS (            -- colors repeat among each category's best, or among the rest
        SELECT row_number() OVER (PARTITION BY s.served, s.clean, s.priority, s.second_of_category, s.color
                                  ORDER BY s.score DESC, s.outfit_id) > 1 AS second_of_color,
               s.*
        FROM by_category s
    ), ranked AS (
        SELECT CASE WHEN o.served THEN row_number() OVER (
                   ORDER BY o.served DESC, o.clean DESC, o.priority DESC, o.second_of_category, o.second_of_color,
                            o.score DESC, o.outfit_id)::integer END AS rank,
               o.*
        FROM ordered o
    ), head AS (
        SELECT (array_agg(r.drawn_from ORDER BY r.rank))[1] AS first_pool,
               ootd._occasion(p_local, array_agg(r.daypart ORDER BY r.rank)) AS occasion
        FROM ranked r
        WHERE r.rank <= p_limit
    ), headline AS (
        SELECT ootd._headline(p_weather_adjective, a.adjective, h.occasion, p_city) AS text
        FROM head h
        LEFT JOIN ootd.pools p ON p.pool_date = p_pool_date AND p.cluster_id = h.first_pool
        LEFT JOIN ootd.archetypes a ON a.name = p.archetype
    )
    SELECT r.rank, r.outfit_id, r.title, r.category, r.color, r.daypart, r.violations, r.priority,
           r.color_boost, r.category_boost, r.affinity_boost, r.liked_penalty, r.cosine, r.daypart_bonus,
           r.jitter, r.score, h.text, p_cluster_id, p_pool_date, r.source, r.relaxed_rules, r.drawn_from
    FROM ranked r CROSS JOIN headline h;
END
$$;
COMMENT ON FUNCTION ootd._rank(bigint, jsonb, jsonb, public.vector, bigint[], timestamp, date, text, date, text, text, text,
                               ootd.scoring_weights, integer) IS
    'Private: every candidate with each score component and its rank (NULL = vetoed), and the headline; the ranking''s one home.';

-- ootd._ranked(user, at, limit): ootd._rank of a stored user with the
-- weights in force (what ootd.feed and ootd.feed_explain read).
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._ranked(p_user_id bigint, p_at timestamptz, p_limit integer)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[], drawn_from text)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    w ootd.scoring_weights;    -- read into a variable: on a Citus worker a row read from a shard has the shard's type
    x ootd.serving_context;
BEGIN
    SELECT * INTO w FROM ootd.scoring_weights;
    SELECT * INTO x FROM ootd._serving_context(p_user_id, p_at);
    IF NOT FOUND THEN          -- unknown user, or no pool at all
        RETURN;
    END IF;
    RETURN QUERY
    SELECT * FROM ootd._rank(x.user_id, x.dna, x.rules, x.taste, x.liked, x.local, x.local_date, x.priority_daypart,
                             x.pool_date, x.cluster_id, x.city, x.weather_adjective, w, p_limit);
END
$$;
COMMENT ON FUNCTION ootd._ranked(bigint, timestamptz, integer) IS
    'Private: ootd._rank of a stored user at an instant with the weights in force (what ootd.feed serves).';

-- ootd.feed(user, at, limit): the user's feed, p_limit outfits (1..20), zero
-- LLM calls: the served rows of ootd._ranked (see its header for the steps).
-- A pure read, computed on every call.  Errors: unknown user P0002; p_limit
-- outside 1..20 22023.  With no pools at all the result is empty.
CREATE FUNCTION ootd.feed(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               score double precision, headline text, cluster_id text, relaxed_rules text[])
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_limit(p_limit);
    RETURN QUERY
    SELECT r.rank, r.outfit_id, r.title, r.category, r.color, r.daypart, r.score, r.headline, r.cluster_id,
           r.relaxed_rules
    FROM ootd._ranked(p_user_id, coalesce(p_at, now()), p_limit) r
    WHERE r.rank <= p_limit
    ORDER BY r.rank;
    IF NOT FOUND THEN
        PERFORM ootd._check_user(p_user_id);   -- no rows: an unknown user (P0002), or no pool at all
    END IF;
END
$$;
COMMENT ON FUNCTION ootd.feed(bigint, timestamptz, integer) IS
    'The user''s Outfit-of-the-Day feed at a moment: ranked outfits, headline, cluster, relaxed veto rules; a pure read.';

-- ootd.feed_explain(user, at, limit): every candidate with each score
-- component, veto and rank (NULL = vetoed), the pool served, where each row
-- was read and the pool it was drawn from; ootd.feed returns the rows with a
-- rank <= p_limit.
CREATE FUNCTION ootd.feed_explain(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[], drawn_from text)
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
    'Every candidate with each score component, veto, rank (NULL rank = vetoed) and the pool it was drawn from; for analysts.';

-- ootd.simulate(profile, at, weights, cluster, limit): what ootd.feed_explain
-- would show for a what-if profile (ootd._profile_problem says which), with
-- some weights replaced for this call (ootd._weights_with; never written) and
-- optionally another pool: the ranking is ootd._rank, the feed's own, so a
-- stored user's ootd.user_profile with no weights and no cluster gives that
-- user's feed exactly.  Reads no ootd.users or ootd.likes row: a profile
-- carries its own likes.  Errors: a bad profile, weights or limit 22023; an
-- unknown cluster P0002.  No pool at all: no rows.
CREATE FUNCTION ootd.simulate(p_profile jsonb, p_at timestamptz DEFAULT now(), p_weights jsonb DEFAULT '{}',
                              p_cluster_id text DEFAULT NULL, p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[], drawn_from text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_problem text := ootd._profile_problem(p_profile);
    w         ootd.scoring_weights;
BEGIN
    PERFORM ootd._check_limit(p_limit);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION '%', v_problem USING ERRCODE = 'invalid_parameter_value';
    END IF;
    w := ootd._weights_with(p_weights);
    IF p_cluster_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ootd.pools p WHERE p.cluster_id = p_cluster_id) THEN
        RAISE EXCEPTION 'unknown pool %', p_cluster_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN QUERY
    SELECT r.*
    FROM ootd.cities c
    CROSS JOIN LATERAL ootd._context(
        coalesce((p_profile ->> 'user_id')::bigint, 0), c.name, c.timezone, coalesce(p_profile -> 'style_dna', '{}'),
        coalesce(p_profile -> 'style_rules', '{}'),
        CASE WHEN jsonb_typeof(p_profile -> 'taste') = 'array' THEN (p_profile ->> 'taste')::public.vector END,
        ARRAY(SELECT i::bigint FROM jsonb_array_elements_text(coalesce(p_profile -> 'liked_outfits', '[]')) i),
        coalesce(p_at, now()), p_cluster_id) x
    CROSS JOIN LATERAL ootd._rank(x.user_id, x.dna, x.rules, x.taste, x.liked, x.local, x.local_date, x.priority_daypart,
                                  x.pool_date, x.cluster_id, x.city, x.weather_adjective, w, p_limit) r
    WHERE lower(c.name) = lower(p_profile ->> 'city')
    ORDER BY r.rank NULLS LAST, r.score DESC, r.outfit_id;
END
$$;
COMMENT ON FUNCTION ootd.simulate(jsonb, timestamptz, jsonb, text, integer) IS
    'What-if ranking (the feed''s own) for a profile, weights and pool: every candidate with its components; writes nothing.';

-- ootd._evaluate_feed(user, at, k): one served feed, measured.  The oracle's
-- candidates are every outfit of the local day's pools whose weather is the
-- user's (the city's latest forecast up to that day, as ootd.feed reads it)
-- plus the served pool and the candidates ootd._ranked read for it (the same
-- outfits, except in a sweep, where other outfits stand in for the pool),
-- minus those breaking a veto the feed did not relax; gain = max(0, the
-- feed's score) (ootd._outfit_score).  ndcg = DCG(served) / DCG(best k of the
-- oracle); pool_ceiling = DCG(best k of the candidates read) / the same.  No
-- row without a pool.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE OR REPLACE FUNCTION ootd._evaluate_feed(p_user_id bigint, p_at timestamptz, p_k integer)
RETURNS SETOF ootd.evaluation_feed
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH r AS (
        SELECT * FROM ootd._ranked(p_user_id, p_at, p_k)
    ), f AS (
        SELECT r.cluster_id, r.pool_date, r.headline, r.relaxed_rules, count(*)::integer AS pool_size
        FROM r GROUP BY r.cluster_id, r.pool_date, r.headline, r.relaxed_rules
    ), u AS (
        SELECT u.id, u.style_dna AS dna, u.style_rules AS rules, u.taste, t.local,
               (SELECT w.condition FROM ootd.weather_daily w
                WHERE w.city = u.city AND w.day <= t.local::date ORDER BY w.day DESC LIMIT 1) AS weather
        FROM ootd.users u CROSS JOIN LATERAL (SELECT p_at AT TIME ZONE u.timezone AS local) t
        WHERE u.id = p_user_id
    ), pools AS (
        SELECT f.pool_date, f.cluster_id FROM f
        UNION
        SELECT p.pool_date, p.cluster_id FROM ootd.pools p, u WHERE p.pool_date = u.local::date AND p.weather = u.weather
    ), ids AS (
        SELECT o.id FROM pools p JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id
        UNION
        SELECT r.outfit_id FROM r
    ), c AS (
        SELECT o.id, o.category, o.color, o.daypart, o.embedding,
               o.id IN (SELECT r.outfit_id FROM r) AS own,
               NOT ootd._vetoed(u.rules, f.relaxed_rules, o.category, o.color) AS admissible,
               greatest(ootd._outfit_score(w, u.id, u.dna, u.rules, u.taste, u.local,
                                           EXISTS (SELECT 1 FROM ootd.likes k WHERE k.user_id = u.id AND k.outfit_id = o.id),
                                           o.id, o.category, o.color, o.daypart, o.embedding), 0) AS gain
        FROM ids JOIN ootd.outfits o ON o.id = ids.id
        CROSS JOIN u CROSS JOIN f CROSS JOIN ootd.scoring_weights w
    ), s AS (                -- scalar lookups: a join lets the planner hash c on a wild row estimate
        SELECT r.rank, r.outfit_id, r.category, r.color, r.daypart,
               (SELECT c.gain FROM c WHERE c.id = r.outfit_id) AS gain,
               (SELECT c.embedding FROM c WHERE c.id = r.outfit_id) AS embedding
        FROM r
        WHERE r.rank <= p_k
    ), ideal AS (
        SELECT ootd._dcg(ARRAY(SELECT c.gain FROM c WHERE c.admissible ORDER BY c.gain DESC LIMIT p_k)) AS oracle,
               ootd._dcg(ARRAY(SELECT c.gain FROM c WHERE c.admissible AND c.own ORDER BY c.gain DESC LIMIT p_k)) AS pool
    )
    SELECT u.id, u.local::time, p_at, p_k, f.cluster_id, f.pool_date, f.headline, f.relaxed_rules,
           ARRAY(SELECT s.outfit_id FROM s ORDER BY s.rank),
           ARRAY(SELECT s.category FROM s ORDER BY s.rank),
           ARRAY(SELECT s.color FROM s ORDER BY s.rank),
           ARRAY(SELECT s.daypart FROM s ORDER BY s.rank),
           f.pool_size,
           (SELECT count(*) FROM s WHERE ootd._vetoed(u.rules, f.relaxed_rules, s.category, s.color))::integer,
           EXISTS (SELECT 1 FROM s WHERE s.daypart <> ootd._headline_occasion(f.headline)),
           ootd._dcg(ARRAY(SELECT s.gain FROM s ORDER BY s.rank)) / nullif(i.oracle, 0),
           i.pool / nullif(i.oracle, 0),
           (SELECT avg(a.embedding OPERATOR(public.<=>) b.embedding) FROM s a JOIN s b ON a.rank < b.rank)
    FROM u CROSS JOIN f CROSS JOIN ideal i;
END
$$;
COMMENT ON FUNCTION ootd._evaluate_feed(bigint, timestamptz, integer) IS
    'Private: one served feed measured: NDCG@k against the 1:1 oracle, pool ceiling, vetoes, headline, diversity.';

-- ootd.evaluate(date, users, local times, limit, progress): measure the
-- illusion of 1:1 personalization and store one row in ootd.evaluations.
-- The first `users` users by hashint8(id), at each local time on `date`
-- (default: the latest pool date), with k = 3 (the default feed) and k =
-- limit.  progress: a NOTICE per 50 users, DETAIL {"done": n, "total": m}
-- (what `ootd evaluate` draws its bar from).  Errors (22023): users outside
-- 1..100000, no or duplicate or NULL local times, limit outside 1..20;
-- P0002: no pools on the date.
CREATE OR REPLACE FUNCTION ootd.evaluate(p_date date DEFAULT NULL, p_users integer DEFAULT 600,
                              p_times time[] DEFAULT '{09:00,15:00,21:00}', p_limit integer DEFAULT 5,
                              p_progress boolean DEFAULT false)
RETURNS ootd.evaluations
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_date  date := coalesce(p_date, (SELECT max(p.pool_date) FROM ootd.pools p));
    v_users bigint[];
    v_ks    integer[] := ARRAY(SELECT DISTINCT k FROM unnest(ARRAY[3, p_limit]) k ORDER BY k);
    v_row   ootd.evaluations;
BEGIN
    PERFORM ootd._check_evaluation(p_users, p_times, p_limit, v_date);
    v_users := ootd._evaluation_sample(p_users);
    INSERT INTO ootd.evaluations (pool_date, params, metrics)
    SELECT v_date,
           jsonb_build_object('users', p_users, 'sampled', cardinality(v_users),
                              'at_times', ARRAY(SELECT to_char(t, 'HH24:MI') FROM unnest(p_times) t),
                              'k', v_ks, 'limit', p_limit, 'weights', to_jsonb(w) - 'singleton'),
           ootd._evaluation_metrics(ootd._collect_feeds(v_date, v_users, p_times, v_ks, p_progress),
                                    (SELECT count(*) FROM ootd.outfits o WHERE o.pool_date = v_date))
    FROM ootd.scoring_weights w
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION ootd.evaluate(date, integer, time[], integer, boolean) IS
    'Measure the illusion of 1:1 personalization (NDCG vs a 1:1 oracle, personalization, coverage, diversity, checks); stores one ootd.evaluations row.';

-- ootd.evaluate_sweep(date, users, local times, limit, progress): the
-- metrics of ootd.evaluate for four ways of serving, against K, the LLM
-- calls each costs a night, computed without any LLM call; stores one row in
-- ootd.evaluations (params.sweep = true; metrics: clusterings, the names from
-- coarse to fine, and per name the metrics of ootd.evaluate plus clusters,
-- llm_calls, users_per_call and weather_mismatch_share@k).  The first three
-- serve each user their own pool only (no neighbour draw):
--   archetype                : every user of an archetype is served that
--                              archetype's largest pool of the day;
--   archetype_weather        : the pools as generated;
--   archetype_weather_taste  : each cluster split in two by taste
--                              (ootd._taste_halves), each half served the
--                              day's same-weather outfits nearest its mean
--                              taste (ootd._sweep_pools);
--   archetype_weather_neighbours : the pools as generated, with the
--                              priority daypart drawn from every same-weather
--                              pool (scoring_weights.neighbour_pools), K as
--                              archetype_weather.
-- The oracle is ootd.evaluate's for every clustering.  progress: NOTICEs as
-- ootd.evaluate's, over 4 x users.  Errors: as ootd.evaluate.
CREATE OR REPLACE FUNCTION ootd.evaluate_sweep(p_date date DEFAULT NULL, p_users integer DEFAULT 600,
                                    p_times time[] DEFAULT '{09:00,15:00,21:00}', p_limit integer DEFAULT 5,
                                    p_progress boolean DEFAULT false)
RETURNS ootd.evaluations
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_date      date := coalesce(p_date, (SELECT max(p.pool_date) FROM ootd.pools p));
    v_names     constant text[] := '{archetype,archetype_weather,archetype_weather_taste,archetype_weather_neighbours}';
    v_k_names   constant text[] := '{archetype,archetype_weather,archetype_weather_taste,archetype_weather}';
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

    FOR c IN 1 .. 4 LOOP
        IF c = 1 THEN
            v_feeds := ootd._sweep_feeds(v_date, v_users, p_times, v_ks, 'archetype', 0, false, p_progress, 0, 4 * v_n);
        ELSIF c = 2 THEN
            v_feeds := ootd._sweep_feeds(v_date, v_users, p_times, v_ks, 'served', 0, false, p_progress, v_n, 4 * v_n);
        ELSIF c = 4 THEN
            v_feeds := ootd._sweep_feeds(v_date, ootd._evaluation_sample(p_users), p_times, v_ks, 'served', 0, true,
                                         p_progress, 3 * v_n, 4 * v_n);
        ELSE
            v_feeds := '{}';
            FOR h IN 0 .. 1 LOOP
                v_users := ARRAY(SELECT s.id
                                 FROM unnest(ootd._evaluation_sample(p_users)) WITH ORDINALITY AS s(id, n)
                                 LEFT JOIN ootd._taste_halves(v_date) t ON t.user_id = s.id
                                 WHERE coalesce(t.half, 0) = h ORDER BY s.n);
                v_feeds := v_feeds || ootd._sweep_feeds(v_date, v_users, p_times, v_ks, 'taste', h, false, p_progress,
                                                        2 * v_n + h * (v_n - cardinality(v_users)), 4 * v_n);
            END LOOP;
        END IF;
        v_metrics := v_metrics || jsonb_build_object(v_names[c],
            ootd._evaluation_metrics(v_feeds, v_generated)
            || ootd._weather_mismatch(v_feeds, v_date)
            || jsonb_build_object('clusters', v_clusters -> v_k_names[c], 'llm_calls', v_clusters -> v_k_names[c],
                                  'users_per_call', (v_clusters ->> 'clustered_users')::double precision
                                                    / nullif((v_clusters ->> v_k_names[c])::double precision, 0)));
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
    'The evaluation for clusterings by archetype, archetype x weather, x taste half, and with neighbour draws, against the LLM calls each costs; no LLM call; stores one ootd.evaluations row.';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ootd.feed(bigint, timestamptz, integer) TO ootd_api, ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.feed_explain(bigint, timestamptz, integer) TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.simulate(jsonb, timestamptz, jsonb, text, integer) TO ootd_api, ootd_analyst;

RESET ROLE;
