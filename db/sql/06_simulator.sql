-- =============================================================================
-- ootd: the simulator's SQL (ootd.simulate, ootd.user_profile, catalogs)
-- What-if profiles ranked by the serving code's one ranking (ootd._rank,
-- 06_serving.sql) without writing anything, and the catalogs the simulator
-- page's pickers and sliders read.
-- =============================================================================

-- ootd._profile_problem(profile): NULL when a what-if profile (the shape of
-- ootd.user_profile) is valid, else the first problem.  Keys: city (required,
-- a known city, any case), style_dna and style_rules (as ootd.users checks
-- them), taste (null or 32 numbers), liked_outfits (outfit ids), user_id.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._profile_problem(p_profile jsonb)
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN (
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
        END);
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
DECLARE
    u       ootd.users;
    v_liked bigint[];
BEGIN
    PERFORM ootd._check_user(p_user_id);
    -- two single-user queries (on Citus, each reads only the shard of the worker running the call)
    SELECT * INTO u FROM ootd.users WHERE id = p_user_id;
    SELECT coalesce(array_agg(k.outfit_id ORDER BY k.outfit_id), '{}') INTO v_liked
    FROM ootd.likes k WHERE k.user_id = p_user_id;
    RETURN jsonb_build_object('user_id', u.id, 'city', u.city, 'style_dna', u.style_dna,
                              'style_rules', u.style_rules, 'taste', u.taste::text::jsonb,
                              'liked_outfits', to_jsonb(v_liked));
END
$$;
COMMENT ON FUNCTION ootd.user_profile(bigint) IS
    'A stored user as a what-if profile for ootd.simulate (city, style_dna, style_rules, taste, liked_outfits).';

-- ootd.simulate(profile, at, weights, cluster, limit): what ootd.feed_explain
-- would show for a what-if profile (ootd._profile_problem says which), with
-- some weights replaced for this call (ootd._weights_with; never written) and
-- optionally another pool: the ranking is ootd._rank, the feed's own.  The
-- weights replaced are those the profile's user_id is served (its variant's
-- when an experiment runs: ootd._assignment; without a user_id, the weights
-- in force), so a stored user's ootd.user_profile with no weights and no
-- cluster gives that user's feed exactly.  Reads no ootd.users or ootd.likes row: a profile
-- carries its own likes.  Errors: a bad profile, weights or limit 22023; an
-- unknown cluster P0002.  No pool at all: no rows.
CREATE FUNCTION ootd.simulate(p_profile jsonb, p_at timestamptz DEFAULT now(), p_weights jsonb DEFAULT '{}',
                              p_cluster_id text DEFAULT NULL, p_limit integer DEFAULT 3)
RETURNS SETOF ootd.ranked_outfit
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_problem text := ootd._profile_problem(p_profile);
    a         record;
    w         ootd.scoring_weights;
    v_variant text;
BEGIN
    PERFORM ootd._check_limit(p_limit);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION '%', v_problem USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO w FROM ootd.scoring_weights;
    IF p_profile ? 'user_id' THEN
        a := ootd._assignment((p_profile ->> 'user_id')::bigint);
        w := a.weights;
        v_variant := a.variant;
    END IF;
    w := ootd._weights_with(p_weights, w);
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
                                  x.pool_date, x.cluster_id, x.city, x.weather_adjective, w, p_limit, v_variant) r
    WHERE lower(c.name) = lower(p_profile ->> 'city')
    ORDER BY r.rank NULLS LAST, r.score DESC, r.outfit_id;
END
$$;
COMMENT ON FUNCTION ootd.simulate(jsonb, timestamptz, jsonb, text, integer) IS
    'What-if ranking (the feed''s own) for a profile, weights and pool: every candidate with its components; writes nothing.';

-- ootd.pool_catalog(date): the pools of a date (default: the latest), for
-- the simulator's picker.
-- PL/pgSQL so that Citus plans its query on a coordinator (a SQL function
-- with a parameter over a Citus table is refused there).
CREATE FUNCTION ootd.pool_catalog(p_pool_date date DEFAULT NULL)
RETURNS TABLE (pool_date date, cluster_id text, archetype text, weather text, members integer)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT p.pool_date, p.cluster_id, p.archetype, p.weather, p.members
    FROM ootd.pools p
    WHERE p.pool_date = coalesce(p_pool_date, (SELECT max(q.pool_date) FROM ootd.pools q))
    ORDER BY p.archetype, p.weather;
END
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
-- PL/pgSQL so that Citus plans its query on a coordinator (a SQL function
-- with a parameter over a Citus table is refused there).
CREATE FUNCTION ootd.llm_calls_since(p_since timestamptz)
RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT count(*) FROM ootd.llm_calls c WHERE c.called_at >= p_since);
END
$$;
COMMENT ON FUNCTION ootd.llm_calls_since(timestamptz) IS 'LLM requests recorded in ootd.llm_calls since an instant.';
