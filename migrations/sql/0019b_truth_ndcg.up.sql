-- =============================================================================
-- Revision 0019, part b (up): NDCG against the hidden truth, next to the
-- circular oracle's (frozen; issue 27).  ootd_truth.evaluate_truth measures a
-- stored plain ootd.evaluate run's feeds of simulated users against their
-- hidden true utility and merges truth_ndcg@k, truth_pool_ceiling@k and
-- truth_users into its metrics; two private helpers.  No table.
-- =============================================================================
SET ROLE ootd_owner;

-- -------------------------------------------------------------- per feed --
-- ootd_truth._feed_truth(date, users, local times, ks): each user's feed
-- (limit k) at each local time on `date`, served as ootd.evaluation_feeds
-- serves it (ootd._ranked at the instant it is that time in the user's zone:
-- the same served items, pool and cluster; no row without a pool), measured
-- against the truth.  Gain of an outfit for a user =
-- ootd_truth.like_probability(ootd_truth.utility(truth, outfit, the archetype
-- of the outfit's own pool)); DCG = ootd._dcg (sum gain_i / log2(i + 1)).
--   ndcg         = DCG(the served items, in rank order) / ideal;
--   pool_ceiling = DCG(the user's best k of the served pool's outfits: the
--                  feed's pool_date and cluster_id, all of its outfits, neighbour
--                  pools' not included) / ideal;
--   ideal        = DCG(the user's best k of every outfit of `date`'s pools, the
--                  1:1 bound of the online evaluation (ootd_truth.utilities),
--                  plus the outfits of the user's served pools and served items
--                  when a feed was served from another date's pool), so both
--                  lie in 0..1.
-- No stated veto is applied: the truth's own dislikes are in the utility.
-- Feeds of users without a truth get NULL figures.  _ranked rather than
-- evaluation_feeds: the served items without the circular oracle's scoring
-- of every candidate (a sixth of the time).
CREATE FUNCTION ootd_truth._feed_truth(p_pool_date date, p_user_ids bigint[], p_times time[], p_ks integer[])
RETURNS TABLE (user_id bigint, local_time time, at timestamptz, k integer, pool_date date, cluster_id text,
               items bigint[], ndcg double precision, pool_ceiling double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH f AS (
        SELECT u.id AS user_id, (a.at AT TIME ZONE u.timezone)::time AS local_time, a.at, k.k,
               r.pool_date, r.cluster_id, coalesce(r.items, '{}') AS items
        FROM unnest(p_user_ids) s(user_id)
        JOIN ootd.users u ON u.id = s.user_id
        CROSS JOIN unnest(p_times) t(local_time)
        CROSS JOIN unnest(p_ks) k(k)
        CROSS JOIN LATERAL (SELECT (p_pool_date + t.local_time) AT TIME ZONE u.timezone AS at) a
        CROSS JOIN LATERAL (SELECT min(x.pool_date) AS pool_date, min(x.cluster_id) AS cluster_id,
                                   array_agg(x.outfit_id ORDER BY x.rank) FILTER (WHERE x.rank <= k.k) AS items
                            FROM ootd._ranked(u.id, a.at, k.k) x
                            HAVING count(*) > 0) r
    ), pools AS (
        SELECT DISTINCT f.user_id, f.pool_date, f.cluster_id FROM f
    ), candidates AS (       -- per user: the date's outfits, the served pools' and the served items
        SELECT u.user_id, o.id AS outfit_id
        FROM (SELECT DISTINCT f.user_id FROM f) u CROSS JOIN ootd.outfits o WHERE o.pool_date = p_pool_date
        UNION
        SELECT p.user_id, o.id FROM pools p JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id
        UNION
        SELECT f.user_id, i.outfit_id FROM f CROSS JOIN unnest(f.items) i(outfit_id)
    ), g AS (
        SELECT c.user_id, o.id AS outfit_id, o.pool_date, o.cluster_id,
               ootd_truth.like_probability(ootd_truth.utility(t, o, p.archetype)) AS gain
        FROM candidates c
        JOIN ootd_truth.users t ON t.user_id = c.user_id
        JOIN ootd.outfits o ON o.id = c.outfit_id
        JOIN ootd.pools p ON p.pool_date = o.pool_date AND p.cluster_id = o.cluster_id
    ), ks AS (
        SELECT DISTINCT f.k FROM f
    ), ideal AS (
        SELECT r.user_id, ks.k, ootd._dcg(array_agg(r.gain ORDER BY r.n)) AS dcg
        FROM (SELECT g.user_id, g.gain, row_number() OVER (PARTITION BY g.user_id ORDER BY g.gain DESC, g.outfit_id) AS n
              FROM g) r
        JOIN ks ON r.n <= ks.k
        GROUP BY r.user_id, ks.k
    ), pool AS (
        SELECT r.user_id, r.pool_date, r.cluster_id, ks.k, ootd._dcg(array_agg(r.gain ORDER BY r.n)) AS dcg
        FROM (SELECT g.user_id, g.pool_date, g.cluster_id, g.gain,
                     row_number() OVER (PARTITION BY g.user_id, g.pool_date, g.cluster_id
                                        ORDER BY g.gain DESC, g.outfit_id) AS n
              FROM g JOIN pools p ON p.user_id = g.user_id AND p.pool_date = g.pool_date AND p.cluster_id = g.cluster_id) r
        JOIN ks ON r.n <= ks.k
        GROUP BY r.user_id, r.pool_date, r.cluster_id, ks.k
    ), served AS (
        SELECT f.user_id, f.at, f.k, ootd._dcg(array_agg(g.gain ORDER BY i.n)) AS dcg
        FROM f CROSS JOIN unnest(f.items) WITH ORDINALITY AS i(outfit_id, n)
        JOIN g ON g.user_id = f.user_id AND g.outfit_id = i.outfit_id
        GROUP BY f.user_id, f.at, f.k
    )
    SELECT f.user_id, f.local_time, f.at, f.k, f.pool_date, f.cluster_id, f.items,
           CASE WHEN i.dcg > 0 THEN coalesce(s.dcg, 0) / i.dcg END,
           CASE WHEN i.dcg > 0 THEN coalesce(p.dcg, 0) / i.dcg END
    FROM f
    LEFT JOIN ideal i ON i.user_id = f.user_id AND i.k = f.k
    LEFT JOIN pool p ON p.user_id = f.user_id AND p.pool_date = f.pool_date AND p.cluster_id = f.cluster_id AND p.k = f.k
    LEFT JOIN served s ON s.user_id = f.user_id AND s.at = f.at AND s.k = f.k
$$;
COMMENT ON FUNCTION ootd_truth._feed_truth(date, bigint[], time[], integer[]) IS
    'Private: users'' feeds at local times of a date (as ootd.evaluation_feeds serves them) against the truth: NDCG '
    '(gains = like probabilities) and the served pool''s ceiling, over the user''s best k of the date''s outfits.';

-- ootd_truth._truth_metrics(date, users, local times, ks): _feed_truth's figures as the
-- run's metrics keys, mean over feeds, overall and per local time
-- ({"truth_ndcg@3": ..., "truth_pool_ceiling@3": ..., "truth_feeds@3": ...,
--   "by_time": {"09:00": {...}}}), local times as ootd._evaluation_metrics
-- names them.
CREATE FUNCTION ootd_truth._truth_metrics(p_pool_date date, p_user_ids bigint[], p_times time[], p_ks integer[])
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH m AS (
        SELECT coalesce(to_char(x.local_time, 'HH24:MI'), 'all') AS scope, x.k,
               count(*) AS feeds, avg(x.ndcg) AS ndcg, avg(x.pool_ceiling) AS pool_ceiling
        FROM ootd_truth._feed_truth(p_pool_date, p_user_ids, p_times, p_ks) x
        WHERE x.ndcg IS NOT NULL
        GROUP BY GROUPING SETS ((x.k), (x.k, x.local_time))
    ), scopes AS (
        SELECT m.scope, jsonb_object_agg(e.key || '@' || m.k, e.value ORDER BY e.key, m.k) AS metrics
        FROM m CROSS JOIN LATERAL jsonb_each(jsonb_build_object(
            'truth_feeds', m.feeds, 'truth_ndcg', m.ndcg, 'truth_pool_ceiling', m.pool_ceiling)) e
        GROUP BY m.scope
    )
    SELECT coalesce((SELECT s.metrics FROM scopes s WHERE s.scope = 'all'), '{}')
           || jsonb_build_object('by_time', coalesce((SELECT jsonb_object_agg(s.scope, s.metrics ORDER BY s.scope)
                                                      FROM scopes s WHERE s.scope <> 'all'), '{}'))
$$;
COMMENT ON FUNCTION ootd_truth._truth_metrics(date, bigint[], time[], integer[]) IS
    'Private: truth_ndcg@k, truth_pool_ceiling@k and truth_feeds@k of users'' feeds at local times, overall and by_time.';

-- ------------------------------------------------------------------- API --
-- ootd_truth.evaluate_truth(evaluation id): measure a stored plain
-- ootd.evaluate run against the truth and merge the figures into its metrics
-- (UPDATE of ootd.evaluations; returns the row).  The run's feeds are served
-- again (ootd_truth._feed_truth with its params: date, the sample's first
-- `users` users by hashint8(id), local times, ks) for the simulated users of
-- the sample only; the others are counted (truth_skipped_users).  Exact when
-- nothing the feed reads changed since the run (`ootd evaluate` calls it in
-- the run's own transaction); a changed sample size, weights, experiment or
-- number of outfits of the date is refused.  Merged keys: truth_users,
-- truth_skipped_users, truth_ndcg@k, truth_pool_ceiling@k, truth_feeds@k, and
-- per local time the @k ones under by_time; run again, they are replaced.
-- No simulated user in the sample: nothing is stored, the row is returned
-- unchanged (with a NOTICE).
-- Errors: P0002 no such evaluation; 22023 NULL id, a sweep, by-variant or
-- online run, or a run whose feeds cannot be served again; those of
-- ootd._check_evaluation (0A000 on Citus, P0002 no pools left on the date).
CREATE FUNCTION ootd_truth.evaluate_truth(p_evaluation_id bigint)
RETURNS ootd.evaluations
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row     ootd.evaluations;
    v_kind    text;
    v_users   integer;
    v_times   time[];
    v_ks      integer[];
    v_sample  bigint[];
    v_truth   bigint[];
    v_metrics jsonb;
BEGIN
    IF p_evaluation_id IS NULL THEN
        RAISE EXCEPTION 'an evaluation id is required, got NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO v_row FROM ootd.evaluations e WHERE e.id = p_evaluation_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no evaluation %', p_evaluation_id USING ERRCODE = 'no_data_found';
    END IF;
    v_kind := CASE WHEN v_row.params ? 'kind' THEN v_row.params ->> 'kind'
                   WHEN (v_row.params ->> 'sweep')::boolean THEN 'sweep'
                   WHEN (v_row.params ->> 'by_variant')::boolean THEN 'by-variant' END;
    IF v_kind IS NOT NULL THEN
        RAISE EXCEPTION 'evaluation % is not a plain ootd.evaluate run (kind: %): the truth measures plain runs only',
            p_evaluation_id, v_kind
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_users := (v_row.params ->> 'users')::integer;
    v_times := ARRAY(SELECT t::time FROM jsonb_array_elements_text(v_row.params -> 'at_times') WITH ORDINALITY AS a(t, n)
                     ORDER BY a.n);
    v_ks := ARRAY(SELECT k::integer FROM jsonb_array_elements_text(v_row.params -> 'k') k);
    PERFORM ootd._check_evaluation(v_users, v_times, (v_row.params ->> 'limit')::integer, v_row.pool_date);
    v_sample := ootd._evaluation_sample(v_users);
    IF ootd._evaluation_params(v_users, cardinality(v_sample), v_times, v_ks, (v_row.params ->> 'limit')::integer)
           IS DISTINCT FROM v_row.params
       OR (SELECT count(*) FROM ootd.outfits o WHERE o.pool_date = v_row.pool_date)
           IS DISTINCT FROM (v_row.metrics ->> 'generated_outfits')::bigint THEN
        RAISE EXCEPTION 'evaluation %''s feeds cannot be served again: its sample size, the weights, the running experiment '
                        'or the outfits of % changed since it ran', p_evaluation_id, v_row.pool_date
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Run ootd evaluate again: it measures the truth of its own run.';
    END IF;
    v_truth := ARRAY(SELECT s.id FROM unnest(v_sample) WITH ORDINALITY AS s(id, n)
                     WHERE EXISTS (SELECT 1 FROM ootd_truth.users t WHERE t.user_id = s.id) ORDER BY s.n);
    IF cardinality(v_truth) = 0 THEN
        RAISE NOTICE 'evaluation %: no simulated user among its % sampled users; nothing stored',
            p_evaluation_id, cardinality(v_sample);
        RETURN v_row;
    END IF;
    v_metrics := ootd_truth._truth_metrics(v_row.pool_date, v_truth, v_times, v_ks);
    UPDATE ootd.evaluations e
    SET metrics = e.metrics || (v_metrics - 'by_time')
                  || jsonb_build_object('truth_users', cardinality(v_truth),
                                        'truth_skipped_users', cardinality(v_sample) - cardinality(v_truth),
                                        'by_time', (SELECT coalesce(jsonb_object_agg(s.scope,
                                                                        coalesce(e.metrics -> 'by_time' -> s.scope, '{}')
                                                                        || coalesce(v_metrics -> 'by_time' -> s.scope, '{}')),
                                                                    '{}')
                                                    FROM jsonb_object_keys(coalesce(e.metrics -> 'by_time', '{}')
                                                                           || (v_metrics -> 'by_time')) s(scope)))
    WHERE e.id = p_evaluation_id
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION ootd_truth.evaluate_truth(bigint) IS
    'Measure a stored plain ootd.evaluate run against the hidden truth (truth_ndcg@k, truth_pool_ceiling@k, '
    'truth_users, per local time too) and merge it into the run''s metrics; returns the row.';

-- Only the owner (and its members: DATABASE_URL's user) reads the truth; no role is granted anything.
REVOKE EXECUTE ON FUNCTION ootd_truth._feed_truth(date, bigint[], time[], integer[]),
                           ootd_truth._truth_metrics(date, bigint[], time[], integer[]),
                           ootd_truth.evaluate_truth(bigint) FROM PUBLIC;

RESET ROLE;
