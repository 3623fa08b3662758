-- =============================================================================
-- Revision 0013: the feed draws from same-weather neighbour pools; one
-- ranking for the feed and the simulator (frozen)
-- The priority daypart's candidates come from every pool of the served pool's
-- date and weather (scoring_weights.neighbour_pools), each pool from the
-- cache else durable storage; the headline names the archetype of the pool
-- the first item was drawn from and is computed once; likes are read once per
-- call.  The ranking becomes ootd._rank(context, weights, limit), shared by
-- ootd.feed (a stored user, ootd._serving_context) and ootd.simulate (a
-- what-if profile, ootd._context); ootd.feed_explain gains drawn_from.  The
-- weights' ranges get one home (ootd._weights_problem, the table's CHECK and
-- ootd._weights_with).  The sweep adds a fourth column, with neighbour draws.
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd.feed_explain(bigint, timestamptz, integer);
DROP FUNCTION ootd._ranked(bigint, timestamptz, integer);
DROP FUNCTION ootd._serving_context(bigint, timestamptz);
DROP FUNCTION ootd._pool_rows(date, text);
DROP FUNCTION ootd._sweep_feeds(date, bigint[], time[], integer[], text, integer, boolean, integer, integer);

-- the vocabulary is read by any role that may validate a profile (the API's simulator)
ALTER FUNCTION ootd.vocabulary() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- ------------------------------------------------------------------ weights --
ALTER TABLE ootd.scoring_weights
    DROP CONSTRAINT scoring_weights_preferred_color_check,
    DROP CONSTRAINT scoring_weights_liked_category_check,
    DROP CONSTRAINT scoring_weights_category_affinity_check,
    DROP CONSTRAINT scoring_weights_cosine_check,
    DROP CONSTRAINT scoring_weights_daypart_priority_check,
    DROP CONSTRAINT scoring_weights_liked_decay_check,
    DROP CONSTRAINT scoring_weights_jitter_check,
    ADD COLUMN neighbour_pools boolean NOT NULL DEFAULT true;
COMMENT ON COLUMN ootd.scoring_weights.neighbour_pools IS
    'Also draw the priority daypart''s candidates from the other pools of the served pool''s date and weather.';

-- ootd._weight_ranges(): the range of every numeric weight, in column
-- order: the one home of the ranges (the table's CHECK through
-- ootd._weights_problem, what-if weights through ootd._weights_with, the
-- simulator's sliders through ootd.weight_catalog).  NULL: unbounded.
CREATE FUNCTION ootd._weight_ranges()
RETURNS TABLE (name text, min_value double precision, min_inclusive boolean, max_value double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    VALUES ('preferred_color', 0::double precision, false, NULL::double precision),
           ('liked_category', 0, false, NULL),
           ('category_affinity', 0, true, NULL),
           ('cosine', 0, true, NULL),
           ('daypart_priority', 0, true, NULL),
           ('liked_decay', 0, true, 1),
           ('jitter', 0, true, 1e-6)
$$;
COMMENT ON FUNCTION ootd._weight_ranges() IS
    'Private: each numeric scoring weight''s range (min, whether min is allowed, max; NULL = unbounded).';

-- ootd._weights_problem(weights): NULL when every weight is in range, else a
-- sentence naming the first one that is not.
CREATE FUNCTION ootd._weights_problem(w ootd.scoring_weights)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        (SELECT format('%s must be %s, got %s', r.name,
                       CASE WHEN r.max_value IS NOT NULL THEN format('between %s and %s', r.min_value, r.max_value)
                            WHEN r.min_inclusive THEN format('>= %s', r.min_value)
                            ELSE format('> %s', r.min_value) END,
                       coalesce(v.value::text, 'NULL'))
         FROM ootd._weight_ranges() WITH ORDINALITY AS r(name, min_value, min_inclusive, max_value, n)
         CROSS JOIN LATERAL (SELECT (to_jsonb(w) ->> r.name)::double precision AS value) v
         WHERE v.value IS NULL OR v.value < r.min_value OR (v.value = r.min_value AND NOT r.min_inclusive)
            OR v.value > r.max_value
         ORDER BY r.n LIMIT 1),
        CASE WHEN w.neighbour_pools IS NULL THEN 'neighbour_pools must be true or false' END)
$$;
COMMENT ON FUNCTION ootd._weights_problem(ootd.scoring_weights) IS
    'Private: NULL if every scoring weight is in range (ootd._weight_ranges), else the first problem.';

ALTER TABLE ootd.scoring_weights ADD CONSTRAINT scoring_weights_in_range CHECK (ootd._weights_problem(scoring_weights) IS NULL);

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

-- ------------------------------------------------------------------- types --
ALTER TYPE ootd._candidate ADD ATTRIBUTE drawn_from text;
COMMENT ON TYPE ootd._candidate IS
    'Private: one candidate outfit; source is cache or durable, drawn_from the cluster whose pool holds it.';

-- What the ranking needs to know about a profile at an instant (one row of
-- ootd._context): the profile, local time, priority daypart, the pool to
-- serve and what the headline names besides the items (the served pool's
-- weather adjective, the city).
CREATE TYPE ootd.serving_context AS (
    user_id           bigint,
    dna               jsonb,
    rules             jsonb,
    taste             public.vector,
    liked             bigint[],
    local             timestamp,
    local_date        date,
    priority_daypart  text,
    pool_date         date,
    cluster_id        text,
    city              text,
    weather_adjective text
);
COMMENT ON TYPE ootd.serving_context IS
    'A profile at an instant as the ranking sees it: profile, likes, local time, priority daypart, pool, headline parts.';

-- ----------------------------------------------------------------- serving --
-- ootd._pool_rows(pool date, cluster, priority daypart, neighbours): the
-- candidates: every outfit of the served pool and, with neighbours, the
-- priority daypart's outfits of the other pools of that date and weather (the
-- user's taste may fit them better than their own cluster's; their LLM calls
-- are made anyway).  Each pool is read from the UNLOGGED cache when it holds
-- it, else from durable ootd.outfits (after a crash; always on a hot
-- standby, which cannot read UNLOGGED tables: this is PL/pgSQL so that a
-- standby never even plans the cache query).
CREATE FUNCTION ootd._pool_rows(p_pool_date date, p_cluster_id text, p_priority text, p_neighbours boolean)
RETURNS SETOF ootd._candidate
LANGUAGE plpgsql STABLE ROWS 110
AS $$
DECLARE
    v_clusters text[] := ARRAY[p_cluster_id];
BEGIN
    IF p_neighbours THEN
        v_clusters := v_clusters || ARRAY(
            SELECT q.cluster_id
            FROM ootd.pools p JOIN ootd.pools q ON q.pool_date = p.pool_date AND q.weather = p.weather
            WHERE p.pool_date = p_pool_date AND p.cluster_id = p_cluster_id AND q.cluster_id <> p.cluster_id
            ORDER BY q.cluster_id);
    END IF;
    IF pg_is_in_recovery() THEN
        RETURN QUERY
        SELECT o.id, o.daypart, o.title, o.category, o.color, o.embedding, 'durable', o.cluster_id
        FROM ootd.outfits o
        WHERE o.pool_date = p_pool_date AND o.cluster_id = ANY (v_clusters)
          AND (o.cluster_id = p_cluster_id OR o.daypart = p_priority);
        RETURN;
    END IF;
    RETURN QUERY
    WITH cached AS MATERIALIZED (
        SELECT c.outfit_id, c.daypart, c.title, c.category, c.color, c.embedding, 'cache'::text, c.cluster_id
        FROM ootd.pool_cache c
        WHERE c.pool_date = p_pool_date AND c.cluster_id = ANY (v_clusters)
          AND (c.cluster_id = p_cluster_id OR c.daypart = p_priority)
    )
    SELECT * FROM cached
    UNION ALL
    SELECT o.id, o.daypart, o.title, o.category, o.color, o.embedding, 'durable', o.cluster_id
    FROM ootd.outfits o
    WHERE o.pool_date = p_pool_date
      AND o.cluster_id = ANY (ARRAY(SELECT unnest(v_clusters) EXCEPT SELECT k.cluster_id FROM cached k))
      AND (o.cluster_id = p_cluster_id OR o.daypart = p_priority);
END
$$;
COMMENT ON FUNCTION ootd._pool_rows(date, text, text, boolean) IS
    'Private: the served pool''s outfits and its same-weather neighbours'' priority-daypart ones, each pool from the cache, else from durable ootd.outfits.';

-- ootd._context(user, city, zone, dna, rules, taste, liked, at, cluster):
-- a profile at an instant (ootd.serving_context), for ootd.feed (a stored
-- user) and ootd.simulate (a what-if profile) alike.  liked NULL: the
-- user's rows of ootd.likes (ootd._rank reads them).  Pool: the given cluster when not NULL; else the
-- user's cluster (archetype x the city's weather on the local date); else
-- the latest earlier pool of the same archetype and weather; else the same
-- archetype, any weather; else any pool (latest up to the local date, then
-- the earliest after it); each branch is one index probe and the first that
-- finds wins.  No row: no pool at all (or no such cluster).
CREATE FUNCTION ootd._context(p_user_id bigint, p_city text, p_timezone text, p_dna jsonb, p_rules jsonb,
                              p_taste public.vector, p_liked bigint[], p_at timestamptz, p_cluster_id text)
RETURNS SETOF ootd.serving_context
LANGUAGE sql STABLE
AS $$
    SELECT p_user_id, p_dna, p_rules, p_taste, p_liked, t.local, t.local::date, ootd._priority_daypart(t.local), p.pool_date, p.cluster_id, p_city, wc.adjective
    FROM (SELECT p_at AT TIME ZONE p_timezone AS local,
                 coalesce(p_dna ->> 'archetype', ootd.default_archetype()) AS archetype) t
    LEFT JOIN LATERAL (SELECT w.condition FROM ootd.weather_daily w
                       WHERE w.city = p_city AND w.day <= t.local::date
                       ORDER BY w.day DESC LIMIT 1) wx ON true
    CROSS JOIN LATERAL (
        SELECT s.pool_date, s.cluster_id, s.weather
        FROM ((SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p_cluster_id IS NOT NULL AND p.cluster_id = p_cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p_cluster_id IS NULL AND p.archetype = t.archetype AND p.weather = wx.condition
                 AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p_cluster_id IS NULL AND p.archetype = t.archetype AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p_cluster_id IS NULL AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p_cluster_id IS NULL
               ORDER BY p.pool_date, p.members DESC, p.cluster_id LIMIT 1)) s
        LIMIT 1) p
    LEFT JOIN ootd.weather_conditions wc ON wc.name = p.weather      -- the served pool's, not the user's
$$;
COMMENT ON FUNCTION ootd._context(bigint, text, text, jsonb, jsonb, public.vector, bigint[], timestamptz, text) IS
    'Private: a profile at an instant as the ranking sees it (local time, priority daypart, pool, likes, headline parts).';

-- ootd._serving_context(user, at): ootd._context of a stored user.  No row:
-- unknown user or no pool at all.
CREATE FUNCTION ootd._serving_context(p_user_id bigint, p_at timestamptz)
RETURNS SETOF ootd.serving_context
LANGUAGE sql STABLE
AS $$
    SELECT x.*
    FROM ootd.users u
    CROSS JOIN LATERAL ootd._context(u.id, u.city, u.timezone, u.style_dna, u.style_rules, u.taste, NULL, p_at, NULL) x
    WHERE u.id = p_user_id
$$;
COMMENT ON FUNCTION ootd._serving_context(bigint, timestamptz) IS
    'Private: a stored user at an instant (ootd._context; inlined into ootd._ranked).';

-- ootd._rank(context..., weights, limit): the whole last mile as one
-- set-based query (inlined into its callers, so each caches one plan): every
-- candidate with each score component and its rank.  The context comes as
-- the fields of an ootd.serving_context (a composite argument would be
-- re-formed for every candidate: 4x slower).
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
LANGUAGE sql STABLE
AS $$
    WITH liked AS (            -- once, not per candidate (and no sub-select inside x, which would stop inlining)
        SELECT coalesce(p_liked, ARRAY(SELECT k.outfit_id FROM ootd.likes k WHERE k.user_id = p_user_id)) AS ids
    ), c AS (
        SELECT c.*, array_remove(ARRAY[
                   CASE WHEN p_rules -> 'disliked_categories' ? c.category THEN 'disliked_categories:' || c.category END,
                   CASE WHEN p_rules -> 'disliked_colors' ? c.color THEN 'disliked_colors:' || c.color END],
                   NULL) AS violations,
               c.outfit_id = ANY (l.ids) AS liked
        FROM liked l CROSS JOIN ootd._pool_rows(p_pool_date, p_cluster_id, p_priority, w.neighbour_pools) c
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
    FROM ranked r CROSS JOIN headline h
$$;
COMMENT ON FUNCTION ootd._rank(bigint, jsonb, jsonb, public.vector, bigint[], timestamp, date, text, date, text, text, text,
                               ootd.scoring_weights, integer) IS
    'Private: every candidate with each score component and its rank (NULL = vetoed), and the headline; the ranking''s one home.';

-- ootd._ranked(user, at, limit): ootd._rank of a stored user with the
-- weights in force (inlined into ootd.feed and ootd.feed_explain).
CREATE FUNCTION ootd._ranked(p_user_id bigint, p_at timestamptz, p_limit integer)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[], drawn_from text)
LANGUAGE sql STABLE
AS $$
    WITH x AS MATERIALIZED (   -- once: flattened, its expressions would be evaluated for every candidate
        SELECT * FROM ootd._serving_context(p_user_id, p_at)
    )
    SELECT r.*
    FROM x
    CROSS JOIN ootd.scoring_weights w
    CROSS JOIN LATERAL ootd._rank(x.user_id, x.dna, x.rules, x.taste, x.liked, x.local, x.local_date, x.priority_daypart,
                                  x.pool_date, x.cluster_id, x.city, x.weather_adjective, w, p_limit) r
$$;
COMMENT ON FUNCTION ootd._ranked(bigint, timestamptz, integer) IS
    'Private: ootd._rank of a stored user at an instant with the weights in force (what ootd.feed serves).';

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

-- ootd._profile_problem(profile): NULL when a what-if profile (the shape of
-- ootd.user_profile) is valid, else the first problem.  Keys: city (required,
-- a known city, any case), style_dna and style_rules (as ootd.users checks
-- them), taste (null or 32 numbers), liked_outfits (outfit ids), user_id.
CREATE FUNCTION ootd._profile_problem(p_profile jsonb)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(p_profile) IS DISTINCT FROM 'object' THEN 'profile must be a JSON object'
        WHEN p_profile - '{user_id,city,style_dna,style_rules,taste,liked_outfits}'::text[] <> '{}' THEN
            format('profile has unknown key %s (known: user_id, city, style_dna, style_rules, taste, liked_outfits)',
                   jsonb_path_query_first(p_profile - '{user_id,city,style_dna,style_rules,taste,liked_outfits}'::text[],
                                          '$.keyvalue().key'))
        WHEN jsonb_typeof(p_profile -> 'city') IS DISTINCT FROM 'string' THEN 'profile.city must be a city name'
        WHEN NOT EXISTS (SELECT 1 FROM ootd.cities c WHERE lower(c.name) = lower(p_profile ->> 'city')) THEN
            format('unknown city %s', p_profile -> 'city')
        WHEN p_profile ? 'user_id' AND NOT jsonb_path_exists(p_profile, '$.user_id ? (@.type() == "number" && @ == @.floor())')
            THEN 'profile.user_id must be an integer'
        WHEN jsonb_typeof(p_profile -> 'taste') NOT IN ('null', 'array')
             OR (jsonb_typeof(p_profile -> 'taste') = 'array'
                 AND (jsonb_array_length(p_profile -> 'taste') <> 32
                      OR jsonb_path_exists(p_profile, '$.taste[*] ? (@.type() != "number")'))) THEN
            'profile.taste must be null or an array of 32 numbers'
        WHEN jsonb_typeof(p_profile -> 'liked_outfits') NOT IN ('null', 'array')
             OR jsonb_path_exists(p_profile, '$.liked_outfits[*] ? (@.type() != "number" || @ != @.floor())') THEN
            'profile.liked_outfits must be an array of outfit ids'
        ELSE coalesce(
            ootd._style_shape_problem(coalesce(p_profile -> 'style_dna', '{}'), coalesce(p_profile -> 'style_rules', '{}')),
            ootd._style_vocabulary_problem(coalesce(p_profile -> 'style_dna', '{}'),
                                           coalesce(p_profile -> 'style_rules', '{}'), ootd.vocabulary()))
    END
$$;
COMMENT ON FUNCTION ootd._profile_problem(jsonb) IS
    'Private: NULL if a what-if profile is valid (city, style_dna, style_rules, taste, liked_outfits), else the first problem.';

-- ootd.user_profile(user): a stored user as a what-if profile for
-- ootd.simulate: simulating it gives exactly that user's ootd.feed.  Errors:
-- unknown user P0002.
CREATE FUNCTION ootd.user_profile(p_user_id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_user(p_user_id);
    RETURN (SELECT jsonb_build_object('user_id', u.id, 'city', u.city, 'style_dna', u.style_dna,
                                      'style_rules', u.style_rules, 'taste', u.taste::text::jsonb,
                                      'liked_outfits', to_jsonb(ARRAY(SELECT k.outfit_id FROM ootd.likes k
                                                                      WHERE k.user_id = u.id ORDER BY k.outfit_id)))
            FROM ootd.users u WHERE u.id = p_user_id);
END
$$;
COMMENT ON FUNCTION ootd.user_profile(bigint) IS
    'A stored user as a what-if profile for ootd.simulate (city, style_dna, style_rules, taste, liked_outfits).';

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

-- ootd.pool_catalog(date): the pools of a date (default: the latest), for
-- the simulator's picker.
CREATE FUNCTION ootd.pool_catalog(p_pool_date date DEFAULT NULL)
RETURNS TABLE (pool_date date, cluster_id text, archetype text, weather text, members integer)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.pool_date, p.cluster_id, p.archetype, p.weather, p.members
    FROM ootd.pools p
    WHERE p.pool_date = coalesce(p_pool_date, (SELECT max(q.pool_date) FROM ootd.pools q))
    ORDER BY p.archetype, p.weather
$$;
COMMENT ON FUNCTION ootd.pool_catalog(date) IS 'The pools of a date (default: the latest): cluster, archetype, weather, members.';

-- ootd.weight_catalog(): every numeric scoring weight with its value in
-- force, its range (ootd._weight_ranges) and what it does (the column's
-- comment), for the simulator's sliders.
CREATE FUNCTION ootd.weight_catalog()
RETURNS TABLE (name text, value double precision, min_value double precision, min_inclusive boolean,
               max_value double precision, description text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.name, (to_jsonb(w) ->> r.name)::double precision, r.min_value, r.min_inclusive, r.max_value,
           col_description('ootd.scoring_weights'::regclass, a.attnum)
    FROM ootd._weight_ranges() WITH ORDINALITY AS r(name, min_value, min_inclusive, max_value, n)
    CROSS JOIN ootd.scoring_weights w
    JOIN pg_attribute a ON a.attrelid = 'ootd.scoring_weights'::regclass AND a.attname = r.name
    ORDER BY r.n
$$;
COMMENT ON FUNCTION ootd.weight_catalog() IS
    'Each numeric scoring weight: value in force, range, description (for the simulator''s sliders).';

-- ootd.city_catalog(): the cities a profile may name, with their zones.
CREATE FUNCTION ootd.city_catalog()
RETURNS TABLE (name text, timezone text, country text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.name, c.timezone, c.country FROM ootd.cities c ORDER BY c.name
$$;
COMMENT ON FUNCTION ootd.city_catalog() IS 'The cities a profile may name: name, IANA time zone, country.';

-- ootd.llm_calls_since(at): LLM requests recorded in the ledger since an
-- instant (the simulator shows it stays 0 while ranking).
CREATE FUNCTION ootd.llm_calls_since(p_since timestamptz)
RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*) FROM ootd.llm_calls c WHERE c.called_at >= p_since
$$;
COMMENT ON FUNCTION ootd.llm_calls_since(timestamptz) IS 'LLM requests recorded in ootd.llm_calls since an instant.';

-- ------------------------------------------------------------------- sweep --
-- ootd._sweep_feeds(date, users, local times, ks, clustering, half,
-- neighbours, progress, done, total): the users' measured feeds with
-- scoring_weights.neighbour_pools = neighbours and, unless clustering is
-- 'served', every pool of the date holding what ootd._sweep_pools puts in
-- its place, each feed's cluster_id replaced by the stand-in's label.  The
-- flag and the stand-ins are written in a subtransaction that is always
-- rolled back (so the weights, the cache, and what concurrent feeds read,
-- never change; a concurrent cache refresh of the date or UPDATE of the
-- weights waits for the pass).
CREATE FUNCTION ootd._sweep_feeds(p_date date, p_users bigint[], p_times time[], p_ks integer[],
                                  p_clustering text, p_half integer, p_neighbours boolean, p_progress boolean,
                                  p_done integer, p_total integer)
RETURNS ootd.evaluation_feed[]
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_feeds ootd.evaluation_feed[];
BEGIN
    BEGIN
        UPDATE ootd.scoring_weights SET neighbour_pools = p_neighbours;
        DELETE FROM ootd.pool_cache c WHERE c.pool_date = p_date AND p_clustering <> 'served';
        INSERT INTO ootd.pool_cache (pool_date, cluster_id, outfit_id, slot, daypart, title, category, color,
                                     vibe, trend, dare, embedding)
        SELECT p_date, s.cluster_id, o.id, o.slot, o.daypart, o.title, o.category, o.color,
               o.vibe, o.trend, o.dare, o.embedding
        FROM ootd._sweep_pools(p_date, p_clustering, p_half) s
        JOIN ootd.outfits o ON o.id = s.outfit_id
        WHERE p_clustering <> 'served';
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
COMMENT ON FUNCTION ootd._sweep_feeds(date, bigint[], time[], integer[], text, integer, boolean, boolean, integer, integer) IS
    'Private: users'' measured feeds with or without neighbour draws and with stand-in pools (ootd._sweep_pools), in a rolled-back subtransaction.';

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
GRANT EXECUTE ON FUNCTION ootd.feed_explain(bigint, timestamptz, integer) TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.simulate(jsonb, timestamptz, jsonb, text, integer), ootd.pool_catalog(date),
                          ootd.weight_catalog(), ootd.city_catalog(), ootd.llm_calls_since(timestamptz),
                          ootd.vocabulary() TO ootd_api, ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.user_profile(bigint) TO ootd_api, ootd_analyst;

RESET ROLE;
