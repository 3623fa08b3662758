-- =============================================================================
-- Revision 0019, part a (up): the online evaluation's arms gain pool_ceiling:
-- each user's best 3 of their own pool by the hidden truth (frozen).
-- =============================================================================
SET ROLE ootd_owner;

CREATE OR REPLACE FUNCTION ootd_truth.online_day(p_arm text, p_day date, p_seed bigint)
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

REVOKE EXECUTE ON FUNCTION ootd_truth.online_day(text, date, bigint) FROM PUBLIC;

RESET ROLE;
