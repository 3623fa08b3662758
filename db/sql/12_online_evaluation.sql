-- =============================================================================
-- ootd: the online evaluation (`ootd evaluate --online`, issue 27)
-- Simulated users (ootd seed's, with a hidden truth in ootd_truth) live N days
-- in a scratch database per arm: each day the offline nightly runs, each user
-- opens the app once at a local time drawn from a seeded daily pattern, is
-- served the arm's top 3 at that instant and likes each item with
-- ootd_truth.like_probability(true utility) by a seeded draw, through the
-- real write path (ootd.like), so the likes trigger's learning is measured.
-- The judge is the hidden truth, which the ranking cannot read.
-- Python (cli/evaluate.py) only creates and drops the scratch databases, runs
-- the nightly and calls ootd_truth.online_day once per arm and day; the run is
-- stored in the served database by ootd.store_online_evaluation.
-- Definitions: docs/evaluation.md, "Online evaluation".
-- Loaded after 11_truth.sql (its ootd_truth functions read the truth).
-- =============================================================================

SET ROLE ootd_owner;

-- ---------------------------------------------------------------- helpers --
-- ootd_truth.online_uniform(seed, key): a uniform draw in (0, 1), a pure
-- function of the seed and a key naming what is drawn ('like:<user>:<day>:
-- <outfit>', ...): the same in every arm, so arms share their random numbers.
CREATE FUNCTION ootd_truth.online_uniform(p_seed bigint, p_key text)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ((pg_catalog.hashtextextended(p_key, p_seed) & 9007199254740991)::double precision + 0.5)
           / 9007199254740992.0
$$;
COMMENT ON FUNCTION ootd_truth.online_uniform(bigint, text) IS
    'A seeded uniform draw in (0, 1) for a key (hashtextextended): the online evaluation''s random numbers.';

-- ootd_truth.open_time(seed, user, day): the local time a simulated user opens
-- the app on a day, from a daily pattern: a mixture of a morning peak (55%,
-- normal around 08:00, sd 60 min) and an evening peak (45%, around 19:30, sd
-- 90 min), clipped to 06:00..23:30, to the minute.
CREATE FUNCTION ootd_truth.open_time(p_seed bigint, p_user_id bigint, p_day date)
RETURNS time
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT time '00:00' + make_interval(mins => least(greatest(round(
               CASE WHEN d.mix < 0.55 THEN 480.0 + 60.0 * d.z ELSE 1170.0 + 90.0 * d.z END), 360), 1410)::integer)
    FROM (SELECT ootd_truth.online_uniform(p_seed, 'open:' || p_user_id || ':' || (p_day - date '2000-01-01')) AS mix,
                 sqrt(-2.0 * ln(ootd_truth.online_uniform(p_seed, 'open_r:' || p_user_id || ':' || (p_day - date '2000-01-01'))))
                 * cos(2.0 * pi() * ootd_truth.online_uniform(p_seed, 'open_a:' || p_user_id || ':' || (p_day - date '2000-01-01'))) AS z) d
$$;
COMMENT ON FUNCTION ootd_truth.open_time(bigint, bigint, date) IS
    'The local time a simulated user opens the app: 55% around 08:00 (sd 60 min), 45% around 19:30 (sd 90 min), '
    '06:00..23:30.';

-- ootd_truth.online_set_weights(weights): the scratch database's scoring
-- weights become these (a JSON object of ootd.scoring_weights columns; the
-- served database's, with an arm's overrides).
CREATE FUNCTION ootd_truth.online_set_weights(p_weights jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ootd.scoring_weights;
BEGIN
    v := ootd._weights_with(p_weights - 'singleton' - 'updated_at', (SELECT w FROM ootd.scoring_weights w));
    DELETE FROM ootd.scoring_weights;
    INSERT INTO ootd.scoring_weights SELECT (v).*;
END
$$;
COMMENT ON FUNCTION ootd_truth.online_set_weights(jsonb) IS
    'A scratch database''s scoring weights for an online-evaluation arm (columns of ootd.scoring_weights as JSON).';

-- ------------------------------------------------------------ the day step --
-- ootd_truth.online_day(arm, day, seed): one simulated day of an arm in its
-- scratch database, after that day's nightly.  Every user with a truth opens
-- the app at ootd_truth.open_time and is served 3 outfits:
--   served, own_pool: ootd.feed(user, that instant, 3) (the arm's weights);
--   upper_bound: the user's best 3 of all the day's outfits by the truth;
--   pool_ceiling: the user's best 3 of their own pool (ootd.user_clusters)
--     by the truth: what a ranker that knew the truth could serve from the
--     cluster's pool (the clustering's own limit, whatever the ranking);
--   floor: 3 outfits of the user's own pool (ootd.user_clusters) at random.
-- Each is liked with probability ootd_truth.like_probability(utility) by the
-- draw 'like:<user>:<day>:<outfit>' (day: days since 2000-01-01), through ootd.like (the likes trigger
-- learns).  Impressions are kept in the session's temporary table
-- online_impressions (yesterday's titles give the repeats).  Returns the
-- day's metrics: impressions, likes, likes_per_impression, mean_utility,
-- repeats (items whose title the user was served the day before), categories
-- and archetypes (the pool's) served, as counts.
CREATE FUNCTION ootd_truth.online_day(p_arm text, p_day date, p_seed bigint)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_metrics jsonb;
BEGIN
    IF p_arm IS NULL OR p_arm NOT IN ('served', 'own_pool', 'upper_bound', 'pool_ceiling', 'floor') THEN
        RAISE EXCEPTION 'unknown arm %', coalesce(p_arm, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'arms: served, own_pool, upper_bound, pool_ceiling, floor';
    END IF;
    CREATE TEMPORARY TABLE IF NOT EXISTS online_impressions (
        day       date NOT NULL,
        user_id   bigint NOT NULL,
        rank      integer NOT NULL,
        outfit_id bigint NOT NULL,
        title     text,
        category  text,
        archetype text,
        utility   double precision,
        liked     boolean,
        PRIMARY KEY (day, user_id, rank)
    );
    DELETE FROM pg_temp.online_impressions WHERE day >= p_day;

    IF p_arm IN ('served', 'own_pool') THEN
        INSERT INTO pg_temp.online_impressions (day, user_id, rank, outfit_id)
        SELECT p_day, t.user_id, f.rank, f.outfit_id
        FROM ootd_truth.users t
        JOIN ootd.users u ON u.id = t.user_id
        CROSS JOIN LATERAL ootd.feed(t.user_id,
                                     (p_day + ootd_truth.open_time(p_seed, t.user_id, p_day)) AT TIME ZONE u.timezone,
                                     3) f;
    ELSIF p_arm = 'upper_bound' THEN
        INSERT INTO pg_temp.online_impressions (day, user_id, rank, outfit_id)
        SELECT p_day, b.user_id, b.rank, b.outfit_id
        FROM (SELECT x.user_id, x.outfit_id,
                     row_number() OVER (PARTITION BY x.user_id ORDER BY x.utility DESC, x.outfit_id)::integer AS rank
              FROM ootd_truth.utilities(p_day, NULL) x) b
        WHERE b.rank <= 3;
    ELSIF p_arm = 'pool_ceiling' THEN
        INSERT INTO pg_temp.online_impressions (day, user_id, rank, outfit_id)
        SELECT p_day, b.user_id, b.rank, b.outfit_id
        FROM (SELECT c.user_id, o.id AS outfit_id,
                     row_number() OVER (PARTITION BY c.user_id
                                        ORDER BY ootd_truth.utility(t, o, p.archetype) DESC, o.id)::integer AS rank
              FROM ootd.user_clusters(p_day) c
              JOIN ootd_truth.users t ON t.user_id = c.user_id
              JOIN ootd.pools p ON p.pool_date = p_day AND p.cluster_id = c.cluster_id
              JOIN ootd.outfits o ON o.pool_date = p_day AND o.cluster_id = c.cluster_id) b
        WHERE b.rank <= 3;
    ELSE
        INSERT INTO pg_temp.online_impressions (day, user_id, rank, outfit_id)
        SELECT p_day, r.user_id, r.rank, r.outfit_id
        FROM (SELECT c.user_id, o.id AS outfit_id,
                     row_number() OVER (PARTITION BY c.user_id
                                        ORDER BY ootd_truth.online_uniform(p_seed, 'floor:' || c.user_id || ':' || (p_day - date '2000-01-01')
                                                                                   || ':' || o.id), o.id)::integer AS rank
              FROM ootd.user_clusters(p_day) c
              JOIN ootd_truth.users t ON t.user_id = c.user_id
              JOIN ootd.outfits o ON o.pool_date = p_day AND o.cluster_id = c.cluster_id) r
        WHERE r.rank <= 3;
    END IF;

    UPDATE pg_temp.online_impressions i
    SET title = o.title, category = o.category, archetype = p.archetype,
        utility = ootd_truth.utility(t, o, p.archetype)
    FROM ootd.outfits o, ootd.pools p, ootd_truth.users t
    WHERE i.day = p_day AND o.id = i.outfit_id AND p.pool_date = o.pool_date AND p.cluster_id = o.cluster_id
      AND t.user_id = i.user_id;
    UPDATE pg_temp.online_impressions i
    SET liked = ootd_truth.online_uniform(p_seed, 'like:' || i.user_id || ':' || (p_day - date '2000-01-01') || ':' || i.outfit_id)
                < ootd_truth.like_probability(i.utility)
    WHERE i.day = p_day;

    -- The real write path, one like at a time in a fixed order (the trigger learns from each).
    PERFORM ootd.like(i.user_id, i.outfit_id)
    FROM (SELECT i.user_id, i.outfit_id FROM pg_temp.online_impressions i
          WHERE i.day = p_day AND i.liked ORDER BY i.user_id, i.rank) i;

    SELECT jsonb_build_object(
               'day', p_day,
               'users', count(DISTINCT i.user_id),
               'impressions', count(*),
               'likes', count(*) FILTER (WHERE i.liked),
               'likes_per_impression', CASE WHEN count(*) > 0
                                            THEN round((count(*) FILTER (WHERE i.liked))::numeric / count(*), 6) END,
               'mean_utility', round(avg(i.utility)::numeric, 6),
               'repeats', count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM pg_temp.online_impressions y
                   WHERE y.day = p_day - 1 AND y.user_id = i.user_id AND y.title = i.title)),
               'categories', coalesce((SELECT jsonb_object_agg(c.category, c.n) FROM (
                   SELECT coalesce(x.category, '?') AS category, count(*) AS n FROM pg_temp.online_impressions x
                   WHERE x.day = p_day GROUP BY 1) c), '{}'),
               'archetypes', coalesce((SELECT jsonb_object_agg(a.archetype, a.n) FROM (
                   SELECT coalesce(x.archetype, '?') AS archetype, count(*) AS n FROM pg_temp.online_impressions x
                   WHERE x.day = p_day GROUP BY 1) a), '{}'))
    INTO v_metrics
    FROM pg_temp.online_impressions i
    WHERE i.day = p_day;
    RETURN v_metrics;
END
$$;
COMMENT ON FUNCTION ootd_truth.online_day(text, date, bigint) IS
    'One simulated day of an online-evaluation arm (served, own_pool, upper_bound, pool_ceiling, floor) in a scratch database: '
    'serve, draw likes from the truth, like through ootd.like; returns the day''s metrics.';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd_truth FROM PUBLIC;

-- ------------------------------------------------------------------ store --
-- ootd.store_online_evaluation(params, arms): store one online run in
-- ootd.evaluations (pool_date: the first simulated day).  `arms` maps each
-- arm to its days' metrics (ootd_truth.online_day's, in day order); each arm
-- gains its run totals: impressions, likes, likes_per_impression,
-- illusion_ratio (its likes per impression / the upper bound's, over the run
-- and per day), lift (likes per impression on day N minus day 1, and the
-- ratio) and repeats.  Reads no truth: the arms' figures are given.
CREATE FUNCTION ootd.store_online_evaluation(p_params jsonb, p_arms jsonb)
RETURNS SETOF ootd.evaluations
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_upper jsonb := p_arms -> 'upper_bound';
    v_metrics jsonb := '{}';
    v_arm text;
    v_days jsonb;
    v_imp numeric;
    v_likes numeric;
    v_upper_lpi numeric;
    v_first numeric;
    v_last numeric;
BEGIN
    IF jsonb_typeof(p_arms) IS DISTINCT FROM 'object' OR jsonb_typeof(p_params) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'params and arms must be JSON objects' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_upper IS NOT NULL THEN
        SELECT sum((d ->> 'likes')::numeric) / nullif(sum((d ->> 'impressions')::numeric), 0)
        INTO v_upper_lpi FROM jsonb_array_elements(v_upper) d;
    END IF;
    FOR v_arm, v_days IN SELECT key, value FROM jsonb_each(p_arms) LOOP
        SELECT sum((d ->> 'impressions')::numeric), sum((d ->> 'likes')::numeric) INTO v_imp, v_likes
        FROM jsonb_array_elements(v_days) d;
        v_first := (v_days -> 0 ->> 'likes_per_impression')::numeric;
        v_last := (v_days -> -1 ->> 'likes_per_impression')::numeric;
        v_metrics := v_metrics || jsonb_build_object(v_arm, jsonb_build_object(
            'impressions', v_imp,
            'likes', v_likes,
            'likes_per_impression', round(v_likes / nullif(v_imp, 0), 6),
            'illusion_ratio', round(v_likes / nullif(v_imp, 0) / nullif(v_upper_lpi, 0), 6),
            'lift', round(v_last - v_first, 6),
            'lift_ratio', round(v_last / nullif(v_first, 0), 6),
            'repeats', (SELECT sum((d ->> 'repeats')::numeric) FROM jsonb_array_elements(v_days) d),
            'days', (SELECT jsonb_agg(d || jsonb_build_object(
                                'illusion_ratio', round((d ->> 'likes_per_impression')::numeric
                                                        / nullif((v_upper -> (n - 1)::integer ->> 'likes_per_impression')::numeric, 0), 6))
                            ORDER BY n)
                     FROM jsonb_array_elements(v_days) WITH ORDINALITY AS e(d, n))));
    END LOOP;
    RETURN QUERY
    INSERT INTO ootd.evaluations (pool_date, params, metrics)
    VALUES ((p_params ->> 'start')::date, p_params || jsonb_build_object('kind', 'online'),
            jsonb_build_object('arms', v_metrics))
    RETURNING *;
END
$$;
COMMENT ON FUNCTION ootd.store_online_evaluation(jsonb, jsonb) IS
    'Store an online evaluation run (`ootd evaluate --online`): per arm its days'' metrics, totals, illusion ratio '
    'and lift; returns the row.';
REVOKE EXECUTE ON FUNCTION ootd.store_online_evaluation(jsonb, jsonb) FROM PUBLIC;

RESET ROLE;
