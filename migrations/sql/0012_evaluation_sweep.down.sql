-- =============================================================================
-- Revision 0012 down: back to 0011 (frozen).  Drops the sweep and restores
-- ootd._evaluate_feed and ootd.evaluate as 0011 made them.
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd.evaluate_sweep(date, integer, time[], integer, boolean);
DROP FUNCTION ootd._sweep_feeds(date, bigint[], time[], integer[], text, integer, boolean, integer, integer);

-- -------------------------------------------------------------- measurement --
-- ootd._evaluate_feed(user, at, k): one served feed, measured.  The oracle's
-- candidates are every outfit of the local day's pools whose weather is the
-- user's (the city's latest forecast up to that day, as ootd.feed reads it)
-- plus the served pool, minus those breaking a veto the feed did not relax;
-- gain = max(0, the feed's score) (ootd._outfit_score).  ndcg = DCG(served) /
-- DCG(best k of the oracle); pool_ceiling = DCG(best k of the served pool) /
-- the same.  No row without a pool.
CREATE OR REPLACE FUNCTION ootd._evaluate_feed(p_user_id bigint, p_at timestamptz, p_k integer)
RETURNS SETOF ootd.evaluation_feed
LANGUAGE sql STABLE
AS $$
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
    ), c AS (
        SELECT o.id, o.category, o.color, o.daypart, o.embedding,
               (o.pool_date, o.cluster_id) = (f.pool_date, f.cluster_id) AS own,
               NOT ootd._vetoed(u.rules, f.relaxed_rules, o.category, o.color) AS admissible,
               greatest(ootd._outfit_score(w, u.id, u.dna, u.rules, u.taste, u.local,
                                           EXISTS (SELECT 1 FROM ootd.likes k WHERE k.user_id = u.id AND k.outfit_id = o.id),
                                           o.id, o.category, o.color, o.daypart, o.embedding), 0) AS gain
        FROM pools p
        JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id
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
    FROM u CROSS JOIN f CROSS JOIN ideal i
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
    v_chunk constant integer := 50;
    v_users bigint[];
    v_ks    integer[];
    v_feeds ootd.evaluation_feed[] := '{}';
    v_done  integer;
    v_row   ootd.evaluations;
BEGIN
    IF p_users IS NULL OR p_users NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'users must be between 1 and 100000, got %', coalesce(p_users::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_times), 0) = 0 OR array_position(p_times, NULL) IS NOT NULL
       OR (SELECT count(DISTINCT t) FROM unnest(p_times) t) <> cardinality(p_times) THEN
        RAISE EXCEPTION 'local times must be distinct and not NULL, got %', coalesce(p_times::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM ootd._check_limit(p_limit);
    IF NOT EXISTS (SELECT 1 FROM ootd.pools p WHERE p.pool_date = v_date) THEN
        RAISE EXCEPTION 'no pools for %', coalesce(v_date::text, 'any date') USING ERRCODE = 'no_data_found';
    END IF;

    v_users := ootd._evaluation_sample(p_users);
    v_ks := ARRAY(SELECT DISTINCT k FROM unnest(ARRAY[3, p_limit]) k ORDER BY k);
    FOR i IN 0 .. (cardinality(v_users) - 1) / v_chunk LOOP
        v_feeds := v_feeds || ARRAY(
            SELECT f FROM unnest(v_ks) k
            CROSS JOIN LATERAL ootd.evaluation_feeds(v_date, v_users[i * v_chunk + 1 : (i + 1) * v_chunk], p_times, k) f);
        v_done := least((i + 1) * v_chunk, cardinality(v_users));
        IF p_progress THEN
            RAISE NOTICE 'ootd.evaluate: % of % users', v_done, cardinality(v_users)
                USING DETAIL = json_build_object('done', v_done, 'total', cardinality(v_users))::text;
        END IF;
    END LOOP;

    INSERT INTO ootd.evaluations (pool_date, params, metrics)
    SELECT v_date,
           jsonb_build_object('users', p_users, 'sampled', cardinality(v_users),
                              'at_times', ARRAY(SELECT to_char(t, 'HH24:MI') FROM unnest(p_times) t),
                              'k', v_ks, 'limit', p_limit, 'weights', to_jsonb(w) - 'singleton'),
           ootd._evaluation_metrics(v_feeds, (SELECT count(*) FROM ootd.outfits o WHERE o.pool_date = v_date))
    FROM ootd.scoring_weights w
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION ootd.evaluate(date, integer, time[], integer, boolean) IS
    'Measure the illusion of 1:1 personalization (NDCG vs a 1:1 oracle, personalization, coverage, diversity, checks); stores one ootd.evaluations row.';

DROP FUNCTION ootd._collect_feeds(date, bigint[], time[], integer[], boolean, integer, integer);
DROP FUNCTION ootd._check_evaluation(integer, time[], integer, date);
DROP FUNCTION ootd._weather_mismatch(ootd.evaluation_feed[], date);
DROP FUNCTION ootd._sweep_clusters(date);
DROP FUNCTION ootd._sweep_pools(date, text, integer);
DROP FUNCTION ootd._taste_halves(date);

RESET ROLE;
