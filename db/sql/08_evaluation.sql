-- =============================================================================
-- ootd: evaluation (`ootd evaluate`, issue 17)
-- How good is the illusion of 1:1 personalization?  A deterministic sample of
-- users at local times; each served feed is read with ootd._ranked (the
-- ranking's one home) and measured against a 1:1 oracle that scores every
-- outfit of the day's pools with the user's weather by the same formula.
-- One row per run in ootd.evaluations.  Definitions: docs/evaluation.md.
-- Kinds in order: tables, types, helpers, measurement, API.
-- =============================================================================

-- ------------------------------------------------------------------ tables --
-- One row per `ootd evaluate` run, so analysts can chart trends in psql.
CREATE TABLE ootd.evaluations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    evaluated_at timestamptz NOT NULL DEFAULT now(),
    pool_date    date NOT NULL,
    params       jsonb NOT NULL CHECK (jsonb_typeof(params) = 'object'),
    metrics      jsonb NOT NULL CHECK (jsonb_typeof(metrics) = 'object')
);
CREATE INDEX evaluations_pool_date_idx ON ootd.evaluations (pool_date, evaluated_at);
COMMENT ON TABLE ootd.evaluations IS
    'One row per ootd.evaluate() run: the pool date, the parameters and weights, and the metrics (docs/evaluation.md).';
COMMENT ON COLUMN ootd.evaluations.metrics IS
    'Metric name@k -> value over every sampled feed, and by_time -> local time -> the same per local time.';

-- ------------------------------------------------------------------- types --
-- One served feed (user x local time x k) and what was measured about it.
CREATE TYPE ootd.evaluation_feed AS (
    user_id                bigint,
    local_time             time,
    at                     timestamptz,
    k                      integer,
    cluster_id             text,
    pool_date              date,
    headline               text,
    relaxed_rules          text[],
    items                  bigint[],
    categories             text[],
    colors                 text[],
    dayparts               text[],
    pool_size              integer,
    veto_violations        integer,
    headline_contradiction boolean,
    ndcg                   double precision,
    pool_ceiling           double precision,
    embedding_distance     double precision
);
COMMENT ON TYPE ootd.evaluation_feed IS
    'One evaluated feed: served items in rank order, NDCG@k against the 1:1 oracle, the pool ceiling, checks.';

-- ----------------------------------------------------------------- helpers --
-- ootd._outfit_score(weights, user, dna, rules, taste, local, liked, outfit,
-- category, color, daypart, embedding, archetype): the feed's score of any
-- outfit for a user at a local time (ootd._score, the formula's one home;
-- archetype: that of the outfit's pool), so the oracle can score outfits of
-- pools the user is not served.
CREATE FUNCTION ootd._outfit_score(w ootd.scoring_weights, p_user_id bigint, p_dna jsonb, p_rules jsonb,
                                   p_taste public.vector, p_local timestamp, p_liked boolean,
                                   p_outfit_id bigint, p_category text, p_color text, p_daypart text,
                                   p_embedding public.vector, p_archetype text)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT s.score
    FROM ootd._score(w, p_user_id, p_dna, p_rules, p_taste, p_local::date, ootd._priority_daypart(p_local), p_liked,
                     p_outfit_id, p_category, p_color, p_daypart, p_embedding,
                     ootd._archetype_affinity(ootd._archetype_affinities(p_dna), p_archetype)) s
$$;
COMMENT ON FUNCTION ootd._outfit_score(ootd.scoring_weights, bigint, jsonb, jsonb, public.vector, timestamp, boolean,
                                       bigint, text, text, text, public.vector, text) IS
    'Private: the feed''s score of any outfit for a user at a local time (ootd._ranked''s formula), for the oracle.';

-- ootd._vetoed(rules, relaxed, category, color): does an outfit break a veto
-- (disliked category or color) that the feed did not relax?
CREATE FUNCTION ootd._vetoed(p_rules jsonb, p_relaxed text[], p_category text, p_color text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT (coalesce(p_rules -> 'disliked_categories' ? p_category, false)
            AND NOT (('disliked_categories:' || p_category) = ANY (coalesce(p_relaxed, '{}'))))
        OR (coalesce(p_rules -> 'disliked_colors' ? p_color, false)
            AND NOT (('disliked_colors:' || p_color) = ANY (coalesce(p_relaxed, '{}'))))
$$;
COMMENT ON FUNCTION ootd._vetoed(jsonb, text[], text, text) IS
    'Private: true when an outfit''s category or color is disliked and that rule is not among the relaxed ones.';

-- ootd._headline_occasion(headline): the daypart a headline's occasion word
-- promises: NightOut for tonight / night / evening, Daytime for morning /
-- afternoon / day / today / tomorrow / midday; NULL for neither or both
-- ("today and tonight").  The evaluation's reading of the text, whatever its wording.
CREATE FUNCTION ootd._headline_occasion(p_headline text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN t.night AND NOT t.day THEN 'NightOut' WHEN t.day AND NOT t.night THEN 'Daytime' END
    FROM (SELECT p_headline ~* '\m(tonight|night|evening)\M' AS night,
                 p_headline ~* '\m(morning|afternoon|day|today|tomorrow|midday)\M' AS day) t
$$;
COMMENT ON FUNCTION ootd._headline_occasion(text) IS
    'Private: NightOut (tonight, night, evening) or Daytime (morning, afternoon, day, today, tomorrow, midday) as a headline says; else NULL.';

-- ootd._dcg(gains): discounted cumulative gain, sum of gains[i] / log2(i + 1).
CREATE FUNCTION ootd._dcg(p_gains double precision[])
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(sum(g.gain * ln(2) / ln(g.i + 1)), 0) FROM unnest(p_gains) WITH ORDINALITY AS g(gain, i)
$$;
COMMENT ON FUNCTION ootd._dcg(double precision[]) IS 'Private: DCG of gains in rank order, sum gain_i / log2(i + 1).';

-- ootd._evaluation_sample(n): n user ids, the same ones on every run (the
-- first n by hashint8(id)): a spread over the id range, stable for trends.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._evaluation_sample(p_users integer)
RETURNS bigint[]
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN (
        SELECT coalesce(array_agg(s.id ORDER BY s.h, s.id), '{}')
        FROM (SELECT u.id, hashint8(u.id) AS h FROM ootd.users u ORDER BY hashint8(u.id), u.id LIMIT p_users) s);
END
$$;
COMMENT ON FUNCTION ootd._evaluation_sample(integer) IS
    'Private: the evaluation''s deterministic sample, the first n users by hashint8(id).';

-- -------------------------------------------------------------- measurement --
-- ootd._evaluate_feed(user, at, k): one served feed, measured.  The oracle's
-- candidates are every outfit of the local day's pools whose weather is the
-- user's (the city's latest forecast up to that day, as ootd.feed reads it)
-- plus the served pool and the candidates ootd._ranked read for it (the same
-- outfits, except in a sweep, where other outfits stand in for the pool),
-- minus those breaking a veto the feed did not relax; gain = max(0, the
-- feed's score with the weights the user is served) (ootd._outfit_score,
-- ootd._assignment).  ndcg = DCG(served) / DCG(best k of the oracle);
-- pool_ceiling = DCG(best k of the candidates read) / the same.  No row
-- without a pool.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._evaluate_feed(p_user_id bigint, p_at timestamptz, p_k integer)
RETURNS SETOF ootd.evaluation_feed
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    w ootd.scoring_weights := (ootd._assignment(p_user_id)).weights;   -- the weights the user is served
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
                                           o.id, o.category, o.color, o.daypart, o.embedding,
                                           (SELECT p.archetype FROM ootd.pools p
                                            WHERE p.pool_date = o.pool_date AND p.cluster_id = o.cluster_id)), 0) AS gain
        FROM ids JOIN ootd.outfits o ON o.id = ids.id
        CROSS JOIN u CROSS JOIN f
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

-- ootd._evaluation_metrics(feeds, generated): the run's metrics as JSON, over
-- all feeds and per local time (by_time), each name suffixed with @k:
-- ndcg, pool_ceiling, clustering_loss (1 - ceiling), ranking_loss (ceiling -
-- ndcg); personalization (1 - mean pairwise cosine similarity of top-k sets,
-- over pairs of feeds at the same local time) overall and within clusters;
-- shared_topk_share (feeds whose top-k set another user also got);
-- catalog_coverage (distinct outfits served / `generated`); intra-list
-- diversity (distinct categories, colors, mean pairwise embedding distance,
-- shares repeating a category or of one color); headline contradictions,
-- short feeds, veto violations, relaxed feeds and rules.
CREATE FUNCTION ootd._evaluation_metrics(p_feeds ootd.evaluation_feed[], p_generated bigint)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    WITH f AS (
        SELECT f.*, to_char(f.local_time, 'HH24:MI') AS at_time, cardinality(f.items) AS n,
               (SELECT count(DISTINCT x) FROM unnest(f.categories) x) AS n_categories,
               (SELECT count(DISTINCT x) FROM unnest(f.colors) x) AS n_colors,
               cardinality(f.items) > 0
                   AND count(*) OVER (PARTITION BY f.k, f.local_time,
                                                   ARRAY(SELECT i FROM unnest(f.items) i ORDER BY i)) > 1 AS shared
        FROM unnest(p_feeds) f
    ), items AS (
        SELECT f.k, f.at_time, f.user_id, f.cluster_id, f.n, i.item FROM f CROSS JOIN unnest(f.items) i(item)
    ), pairs AS (            -- pairs of feeds (same k and local time) sharing items: cosine of the top-k sets
        SELECT a.k, a.at_time, a.cluster_id = b.cluster_id AS same_cluster, count(*) / sqrt(a.n * b.n) AS similarity
        FROM items a JOIN items b ON b.k = a.k AND b.at_time = a.at_time AND b.item = a.item AND b.user_id > a.user_id
        GROUP BY a.k, a.at_time, a.user_id, b.user_id, a.cluster_id, b.cluster_id, a.n, b.n
    ), similarity AS (
        SELECT p.k, coalesce(p.at_time, 'all') AS scope, sum(p.similarity) AS overall,
               coalesce(sum(p.similarity) FILTER (WHERE p.same_cluster), 0) AS within
        FROM pairs p GROUP BY GROUPING SETS ((p.k), (p.k, p.at_time))
    ), clusters AS (
        SELECT f.k, f.at_time, f.cluster_id, count(*) AS m FROM f WHERE f.n > 0 GROUP BY f.k, f.at_time, f.cluster_id
    ), pair_counts AS (      -- all pairs of non-empty feeds at the same local time, and those within a cluster
        SELECT t.k, coalesce(t.at_time, 'all') AS scope, sum(t.overall) AS overall, sum(t.within) AS within
        FROM (SELECT c.k, c.at_time, sum(c.m) * (sum(c.m) - 1) / 2 AS overall, sum(c.m * (c.m - 1) / 2) AS within
              FROM clusters c GROUP BY c.k, c.at_time) t
        GROUP BY GROUPING SETS ((t.k), (t.k, t.at_time))
    ), coverage AS (
        SELECT i.k, coalesce(i.at_time, 'all') AS scope, count(DISTINCT i.item) AS served
        FROM items i GROUP BY GROUPING SETS ((i.k), (i.k, i.at_time))
    ), feeds AS (
        SELECT f.k, coalesce(f.at_time, 'all') AS scope, count(*) AS feeds,
               avg(f.ndcg) AS ndcg, avg(f.pool_ceiling) AS pool_ceiling,
               avg(f.n_categories) FILTER (WHERE f.n > 0) AS distinct_categories,
               avg(f.n_colors) FILTER (WHERE f.n > 0) AS distinct_colors,
               avg(f.embedding_distance) AS embedding_distance,
               avg((f.n_categories < f.n)::integer) FILTER (WHERE f.n > 0) AS repeated_category_share,
               avg((f.n_colors = 1)::integer) FILTER (WHERE f.n > 1) AS single_color_share,
               avg(f.shared::integer) FILTER (WHERE f.n > 0) AS shared_topk_share,
               count(*) FILTER (WHERE f.headline_contradiction) AS headline_contradictions,
               count(*) FILTER (WHERE f.n < least(f.k, f.pool_size)) AS short_feeds,
               sum(f.veto_violations) AS veto_violations,
               count(*) FILTER (WHERE cardinality(f.relaxed_rules) > 0) AS relaxed_feeds,
               sum(cardinality(f.relaxed_rules)) AS relaxed_rules
        FROM f GROUP BY GROUPING SETS ((f.k), (f.k, f.at_time))
    ), per_k AS (
        SELECT m.scope, e.key || '@' || m.k AS key, e.value
        FROM feeds m
        LEFT JOIN similarity s ON s.k = m.k AND s.scope = m.scope
        LEFT JOIN pair_counts p ON p.k = m.k AND p.scope = m.scope
        LEFT JOIN coverage c ON c.k = m.k AND c.scope = m.scope
        CROSS JOIN LATERAL jsonb_each(jsonb_build_object(
            'feeds', m.feeds,
            'ndcg', m.ndcg,
            'pool_ceiling', m.pool_ceiling,
            'clustering_loss', 1 - m.pool_ceiling,
            'ranking_loss', m.pool_ceiling - m.ndcg,
            'personalization', 1 - coalesce(s.overall, 0) / nullif(p.overall, 0),
            'personalization_within_clusters', 1 - coalesce(s.within, 0) / nullif(p.within, 0),
            'shared_topk_share', m.shared_topk_share,
            'catalog_coverage', coalesce(c.served, 0)::double precision / nullif(p_generated, 0),
            'served_outfits', coalesce(c.served, 0),
            'distinct_categories', m.distinct_categories,
            'distinct_colors', m.distinct_colors,
            'embedding_distance', m.embedding_distance,
            'repeated_category_share', m.repeated_category_share,
            'single_color_share', m.single_color_share,
            'headline_contradictions', m.headline_contradictions,
            'headline_contradiction_share', m.headline_contradictions::double precision / m.feeds,
            'short_feeds', m.short_feeds,
            'veto_violations', m.veto_violations,
            'relaxed_feeds', m.relaxed_feeds,
            'relaxed_rules', m.relaxed_rules)) e
    ), scopes AS (
        SELECT p.scope, jsonb_object_agg(p.key, p.value ORDER BY p.key) AS metrics FROM per_k p GROUP BY p.scope
    )
    SELECT coalesce((SELECT s.metrics FROM scopes s WHERE s.scope = 'all'), '{}')
           || jsonb_build_object('generated_outfits', p_generated,
                                 'users', (SELECT count(DISTINCT f.user_id) FROM f),
                                 'by_time', coalesce((SELECT jsonb_object_agg(s.scope, s.metrics ORDER BY s.scope)
                                                      FROM scopes s WHERE s.scope <> 'all'), '{}'))
$$;
COMMENT ON FUNCTION ootd._evaluation_metrics(ootd.evaluation_feed[], bigint) IS
    'Private: aggregate evaluated feeds into the run''s metrics JSON (overall and by_time; names suffixed @k).';

-- ------------------------------------------------------------------- sweep --
-- `ootd evaluate --sweep`: the same metrics for coarser and finer clusterings
-- than archetype x weather, without an LLM call: what stands in for each of
-- the day's pools is chosen among the outfits already generated, written into
-- ootd.pool_cache (which ootd._ranked reads) inside a subtransaction that is
-- always rolled back, and the feeds are read with ootd._ranked as served.

-- ootd._taste_halves(day): every clustered user's half of their archetype x
-- weather cluster (ootd.user_clusters): the sign of (taste - the cluster's
-- mean taste) projected on the direction from that mean to the member
-- farthest from it (ties by id): one deterministic 2-means step.  Half 1 is
-- the far member's side; users without a taste vector are in half 0 (a
-- one-member cluster is all half 0).  center: the half's mean taste.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._taste_halves(p_day date)
RETURNS TABLE (user_id bigint, cluster_id text, archetype text, half integer, center public.vector)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH m AS (
        SELECT c.user_id, c.cluster_id, c.archetype, u.taste
        FROM ootd.user_clusters(p_day) c JOIN ootd.users u ON u.id = c.user_id
    ), mean AS (
        SELECT m.cluster_id, public.avg(m.taste) AS mean FROM m GROUP BY m.cluster_id
    ), pole AS (
        SELECT DISTINCT ON (m.cluster_id) m.cluster_id, m.taste OPERATOR(public.-) a.mean AS axis
        FROM m JOIN mean a ON a.cluster_id = m.cluster_id
        WHERE m.taste IS NOT NULL
        ORDER BY m.cluster_id, m.taste OPERATOR(public.<->) a.mean DESC, m.user_id
    ), h AS (
        SELECT m.user_id, m.cluster_id, m.archetype, m.taste,
               coalesce(((m.taste OPERATOR(public.-) a.mean) OPERATOR(public.<#>) p.axis) < 0, false)::integer AS half
        FROM m JOIN mean a ON a.cluster_id = m.cluster_id LEFT JOIN pole p ON p.cluster_id = m.cluster_id
    )
    SELECT h.user_id, h.cluster_id, h.archetype, h.half,
           public.avg(h.taste) OVER (PARTITION BY h.cluster_id, h.half)
    FROM h;
END
$$;
COMMENT ON FUNCTION ootd._taste_halves(date) IS
    'Private: each clustered user''s taste half of their archetype x weather cluster (one 2-means step) and the half''s mean taste.';

-- ootd._sweep_pools(day, clustering, half): what stands in for each pool of
-- the day, as outfit ids, and the cluster label its users are counted in.
-- 'archetype': every pool of an archetype holds the day's pool of that
-- archetype with the most members (ties by cluster id), whatever the weather;
-- label: that pool.  'taste': every pool holds, for its cluster's half
-- `half`, the outfits of the day's pools of its weather nearest (cosine) to
-- the half's mean taste, as many of each daypart as the pool has (ties by
-- id); a pool whose half has no tasteful member keeps its outfits; label:
-- cluster/half.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._sweep_pools(p_day date, p_clustering text, p_half integer DEFAULT 0)
RETURNS TABLE (cluster_id text, label text, outfit_id bigint)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH top AS (
        SELECT DISTINCT ON (p.archetype) p.archetype, p.cluster_id
        FROM ootd.pools p
        WHERE p.pool_date = p_day
        ORDER BY p.archetype, p.members DESC, p.cluster_id
    ), centers AS (
        SELECT DISTINCT ON (h.cluster_id) h.cluster_id, h.center
        FROM ootd._taste_halves(p_day) h
        WHERE p_clustering = 'taste' AND h.half = p_half AND h.center IS NOT NULL
        ORDER BY h.cluster_id
    ), shape AS (
        SELECT o.cluster_id, o.daypart, count(*) AS n
        FROM ootd.outfits o WHERE o.pool_date = p_day GROUP BY o.cluster_id, o.daypart
    ), near AS (
        SELECT p.cluster_id, o.id, s.n,
               row_number() OVER (PARTITION BY p.cluster_id, o.daypart
                                  ORDER BY o.embedding OPERATOR(public.<=>) c.center, o.id) AS r
        FROM ootd.pools p
        JOIN centers c ON c.cluster_id = p.cluster_id
        JOIN ootd.pools q ON q.pool_date = p.pool_date AND q.weather = p.weather
        JOIN ootd.outfits o ON o.pool_date = q.pool_date AND o.cluster_id = q.cluster_id
        JOIN shape s ON s.cluster_id = p.cluster_id AND s.daypart = o.daypart
        WHERE p.pool_date = p_day
    )
    SELECT p.cluster_id, t.cluster_id, o.id
    FROM ootd.pools p
    JOIN top t ON t.archetype = p.archetype
    JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = t.cluster_id
    WHERE p_clustering = 'archetype' AND p.pool_date = p_day
    UNION ALL
    SELECT n.cluster_id, n.cluster_id || '/' || p_half, n.id FROM near n WHERE n.r <= n.n
    UNION ALL
    SELECT o.cluster_id, o.cluster_id || '/' || p_half, o.id
    FROM ootd.outfits o
    WHERE p_clustering = 'taste' AND o.pool_date = p_day
      AND NOT EXISTS (SELECT 1 FROM centers c WHERE c.cluster_id = o.cluster_id);
END
$$;
COMMENT ON FUNCTION ootd._sweep_pools(date, text, integer) IS
    'Private: the outfits standing in for each pool of a day in a sweep (archetype: its largest pool; taste: the half''s nearest same-weather outfits) and the cluster label.';

-- ootd._sweep_clusters(day): K, the LLM calls a night, of each clustering:
-- clusters with members on the day (ootd.user_clusters), by archetype, by
-- archetype x weather (today's), and by archetype x weather x taste half.
CREATE FUNCTION ootd._sweep_clusters(p_day date)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object('archetype', count(DISTINCT h.archetype),
                              'archetype_weather', count(DISTINCT h.cluster_id),
                              'archetype_weather_taste', count(DISTINCT (h.cluster_id, h.half)),
                              'clustered_users', count(*))
    FROM ootd._taste_halves(p_day) h
$$;
COMMENT ON FUNCTION ootd._sweep_clusters(date) IS
    'Private: clusters with members on a day (the LLM calls a night) by archetype, archetype x weather, and x taste half.';

-- ootd._weather_mismatch(feeds, day): per k, the share of served items
-- generated for another weather than the user's on the day (the scorer does
-- not see weather: this is what serving an archetype-only pool costs).
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._weather_mismatch(p_feeds ootd.evaluation_feed[], p_day date)
RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN (
        SELECT coalesce(jsonb_object_agg('weather_mismatch_share@' || t.k, t.share), '{}')
        FROM (SELECT f.k, avg((p.weather IS DISTINCT FROM wx.condition)::integer)::double precision AS share
              FROM unnest(p_feeds) f
              CROSS JOIN unnest(f.items) i(item)
              JOIN ootd.outfits o ON o.id = i.item
              JOIN ootd.pools p ON p.pool_date = o.pool_date AND p.cluster_id = o.cluster_id
              JOIN ootd.users u ON u.id = f.user_id
              LEFT JOIN LATERAL (SELECT w.condition FROM ootd.weather_daily w
                                 WHERE w.city = u.city AND w.day <= p_day ORDER BY w.day DESC LIMIT 1) wx ON true
              GROUP BY f.k) t);
END
$$;
COMMENT ON FUNCTION ootd._weather_mismatch(ootd.evaluation_feed[], date) IS
    'Private: per k, the share of served items generated for another weather than the user''s.';

-- --------------------------------------------------------------------- API --
-- ootd.evaluation_feeds(date, users, local times, k): every user's feed
-- (limit k) at each local time on `date` (the instant it is that time in the
-- user's zone), measured by ootd._evaluate_feed; a pure read, for drilling
-- into a run ("which feeds contradict their headline?").  Errors: k outside
-- 1..20 22023.
CREATE FUNCTION ootd.evaluation_feeds(p_date date, p_user_ids bigint[], p_times time[], p_k integer DEFAULT 3)
RETURNS SETOF ootd.evaluation_feed
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_limit(p_k);
    RETURN QUERY
    SELECT e.*
    FROM unnest(p_user_ids) WITH ORDINALITY AS s(user_id, n)
    JOIN ootd.users u ON u.id = s.user_id
    CROSS JOIN unnest(p_times) WITH ORDINALITY AS t(local_time, m)
    CROSS JOIN LATERAL ootd._evaluate_feed(u.id, (p_date + t.local_time) AT TIME ZONE u.timezone, p_k) e
    ORDER BY s.n, t.m;
END
$$;
COMMENT ON FUNCTION ootd.evaluation_feeds(date, bigint[], time[], integer) IS
    'Each user''s feed at each local time of a date, measured against the 1:1 oracle (NDCG, ceiling, checks); a pure read.';

-- ootd._check_evaluation(users, local times, limit, date): the run's
-- arguments, or 0A000 on a Citus node (single-node only), 22023 (users outside 1..100000; no, duplicate or NULL local
-- times; more than 300000 feeds, users x local times, in one run; limit
-- outside 1..20) or P0002 (no pools on the date).
-- The bounds keep one run to minutes (600 users x 3 times takes seconds):
-- 100,000 users x 1,440 times would rank 144 million feeds.
CREATE FUNCTION ootd._check_evaluation(p_users integer, p_times time[], p_limit integer, p_date date)
RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF to_regclass('pg_catalog.pg_dist_node') IS NOT NULL THEN  -- docs/scaling.md: not supported on Citus
        RAISE EXCEPTION 'the evaluation runs on a single node only, and this database is a Citus node'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Run it on a single-node copy: a replica of a single node, or a pg_dump of a sample.';
    END IF;
    IF p_users IS NULL OR p_users NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'users must be between 1 and 100000, got %', coalesce(p_users::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_times), 0) = 0 OR array_position(p_times, NULL) IS NOT NULL
       OR (SELECT count(DISTINCT t) FROM unnest(p_times) t) <> cardinality(p_times) THEN
        RAISE EXCEPTION 'local times must be distinct and not NULL, got %', coalesce(p_times::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_users::bigint * cardinality(p_times) > 300000 THEN
        RAISE EXCEPTION 'an evaluation reads at most 300000 feeds (users x local times), got % x % = %',
            p_users, cardinality(p_times), p_users::bigint * cardinality(p_times)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Sample fewer users or fewer local times; split a larger study into runs.';
    END IF;
    PERFORM ootd._check_limit(p_limit);
    IF NOT EXISTS (SELECT 1 FROM ootd.pools p WHERE p.pool_date = p_date) THEN
        RAISE EXCEPTION 'no pools for %', coalesce(p_date::text, 'any date') USING ERRCODE = 'no_data_found';
    END IF;
END
$$;
COMMENT ON FUNCTION ootd._check_evaluation(integer, time[], integer, date) IS
    'Private: raises 0A000 on Citus, 22023 or P0002 unless the evaluation''s users, local times (users x times at most 300000), limit and date are valid.';

-- ootd._evaluation_params(users, sampled, local times, ks, limit): a run's
-- params: what was asked, the weights in force and the running experiment
-- (whose variants' users are measured with their variant's weights).
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._evaluation_params(p_users integer, p_sampled integer, p_times time[], p_ks integer[],
                                        p_limit integer)
RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object('users', p_users, 'sampled', p_sampled,
                                  'at_times', ARRAY(SELECT to_char(t, 'HH24:MI') FROM unnest(p_times) t),
                                  'k', p_ks, 'limit', p_limit, 'weights', to_jsonb(w) - 'singleton',
                                  'experiment', (SELECT e.name FROM ootd.experiments e WHERE e.ended_at IS NULL))
        FROM ootd.scoring_weights w);
END
$$;
COMMENT ON FUNCTION ootd._evaluation_params(integer, integer, time[], integer[], integer) IS
    'Private: an evaluation run''s params (users, sampled, local times, ks, limit, weights in force, running experiment).';

-- ootd._collect_feeds(date, users, local times, ks, progress, done, total):
-- ootd.evaluation_feeds for every k, 50 users at a time; with progress, a
-- NOTICE per chunk, DETAIL {"done": done + n, "total": total}.
CREATE FUNCTION ootd._collect_feeds(p_date date, p_users bigint[], p_times time[], p_ks integer[],
                                    p_progress boolean, p_done integer DEFAULT 0, p_total integer DEFAULT NULL)
RETURNS ootd.evaluation_feed[]
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    v_chunk constant integer := 50;
    v_total integer := coalesce(p_total, cardinality(p_users));
    v_feeds ootd.evaluation_feed[] := '{}';
    v_done  integer;
BEGIN
    FOR i IN 0 .. (coalesce(cardinality(p_users), 0) - 1) / v_chunk LOOP
        v_feeds := v_feeds || ARRAY(
            SELECT f FROM unnest(p_ks) k
            CROSS JOIN LATERAL ootd.evaluation_feeds(p_date, p_users[i * v_chunk + 1 : (i + 1) * v_chunk], p_times, k) f);
        v_done := p_done + least((i + 1) * v_chunk, coalesce(cardinality(p_users), 0));
        IF p_progress THEN
            RAISE NOTICE 'ootd.evaluate: % of % users', v_done, v_total
                USING DETAIL = json_build_object('done', v_done, 'total', v_total)::text;
        END IF;
    END LOOP;
    RETURN v_feeds;
END
$$;
COMMENT ON FUNCTION ootd._collect_feeds(date, bigint[], time[], integer[], boolean, integer, integer) IS
    'Private: the measured feeds of users at local times for each k, 50 users at a time, with progress NOTICEs.';

-- ootd.evaluate(date, users, local times, limit, progress): measure the
-- illusion of 1:1 personalization and store one row in ootd.evaluations.
-- The first `users` users by hashint8(id), at each local time on `date`
-- (default: the latest pool date), with k = 3 (the default feed) and k =
-- limit.  progress: a NOTICE per 50 users, DETAIL {"done": n, "total": m}
-- (what `ootd evaluate` draws its bar from).  Errors (22023): users outside
-- 1..100000, no or duplicate or NULL local times, more than 300000 feeds
-- (users x local times), limit outside 1..20;
-- P0002: no pools on the date.
CREATE FUNCTION ootd.evaluate(p_date date DEFAULT NULL, p_users integer DEFAULT 600,
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
    VALUES (v_date, ootd._evaluation_params(p_users, cardinality(v_users), p_times, v_ks, p_limit),
            ootd._evaluation_metrics(ootd._collect_feeds(v_date, v_users, p_times, v_ks, p_progress),
                                     (SELECT count(*) FROM ootd.outfits o WHERE o.pool_date = v_date)))
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION ootd.evaluate(date, integer, time[], integer, boolean) IS
    'Measure the illusion of 1:1 personalization (NDCG vs a 1:1 oracle, personalization, coverage, diversity, checks); stores one ootd.evaluations row.';

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
CREATE FUNCTION ootd.evaluate_sweep(p_date date DEFAULT NULL, p_users integer DEFAULT 600,
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
    VALUES (v_date, ootd._evaluation_params(p_users, v_n, p_times, v_ks, p_limit) || '{"sweep": true}', v_metrics)
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION ootd.evaluate_sweep(date, integer, time[], integer, boolean) IS
    'The evaluation for clusterings by archetype, archetype x weather, x taste half, and with neighbour draws, against the LLM calls each costs; no LLM call; stores one ootd.evaluations row.';

-- ootd._variant_feeds(date, users, local times, ks, experiment, variant,
-- progress, done, total): the users' measured feeds as if every one of them
-- were in one variant of an experiment: in a subtransaction that is always
-- rolled back, the experiment runs alone with that variant's share 1, so
-- the feed, the oracle and ootd._assignment serve each user exactly what the
-- variant's users are served.  Nothing written stays; a concurrent change of
-- the experiment waits for the pass.
CREATE FUNCTION ootd._variant_feeds(p_date date, p_users bigint[], p_times time[], p_ks integer[],
                                    p_experiment text, p_variant text, p_progress boolean, p_done integer,
                                    p_total integer)
RETURNS ootd.evaluation_feed[]
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_feeds ootd.evaluation_feed[];
BEGIN
    BEGIN
        UPDATE ootd.experiments e SET ended_at = now() WHERE e.ended_at IS NULL AND e.name <> p_experiment;
        UPDATE ootd.experiments e SET ended_at = NULL WHERE e.name = p_experiment;
        UPDATE ootd.experiment_variants v SET share = (v.variant = p_variant)::integer WHERE v.experiment = p_experiment;
        v_feeds := ootd._collect_feeds(p_date, p_users, p_times, p_ks, p_progress, p_done, p_total);
        RAISE EXCEPTION 'variant pass done' USING ERRCODE = 'OOTDV';
    EXCEPTION WHEN SQLSTATE 'OOTDV' THEN
        NULL;                            -- the experiment is as it was; v_feeds stays
    END;
    RETURN v_feeds;
END
$$;
COMMENT ON FUNCTION ootd._variant_feeds(date, bigint[], time[], integer[], text, text, boolean, integer, integer) IS
    'Private: users'' measured feeds as if all were in one variant of an experiment, in a rolled-back subtransaction.';

-- ootd.evaluate_variants(experiment, date, users, local times, limit,
-- progress): the metrics of ootd.evaluate for each variant of an experiment
-- (default: the running one; an ended one may be named), each measured on
-- the same users at the same local times as if all of them were in that
-- variant (ootd._variant_feeds; the oracle scores with that variant's
-- weights); no LLM call, nothing served changes.  Stores one row in
-- ootd.evaluations (params.experiment; metrics: variants, their names in
-- bucket order, control, and by_variant: per name the metrics of
-- ootd.evaluate plus share and weights).  progress: NOTICEs as ootd.evaluate's, over variants x
-- users.  Errors: no experiment running and none named, or an unknown one,
-- P0002; else as ootd.evaluate.
CREATE FUNCTION ootd.evaluate_variants(p_experiment text DEFAULT NULL, p_date date DEFAULT NULL,
                                       p_users integer DEFAULT 600, p_times time[] DEFAULT '{09:00,15:00,21:00}',
                                       p_limit integer DEFAULT 5, p_progress boolean DEFAULT false)
RETURNS ootd.evaluations
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_date      date := coalesce(p_date, (SELECT max(p.pool_date) FROM ootd.pools p));
    v_name      text := coalesce(p_experiment, (SELECT e.name FROM ootd.experiments e WHERE e.ended_at IS NULL));
    v_ks        integer[] := ARRAY(SELECT DISTINCT k FROM unnest(ARRAY[3, p_limit]) k ORDER BY k);
    v_users     bigint[];
    v_generated bigint;
    v_variants  integer;
    v_done      integer := 0;
    v_metrics   jsonb;
    v           ootd.experiment_variants;
    v_row       ootd.evaluations;
BEGIN
    IF v_name IS NULL THEN
        RAISE EXCEPTION 'no experiment is running: name one (ootd.experiments lists them)' USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ootd.experiments e WHERE e.name = v_name) THEN
        RAISE EXCEPTION 'unknown experiment %', quote_literal(v_name) USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM ootd._check_evaluation(p_users, p_times, p_limit, v_date);
    v_users := ootd._evaluation_sample(p_users);
    v_generated := (SELECT count(*) FROM ootd.outfits o WHERE o.pool_date = v_date);
    SELECT count(*), jsonb_build_object('variants', jsonb_agg(x.variant ORDER BY x.position),
                                        'control', min(x.variant) FILTER (WHERE x.control), 'by_variant', '{}'::jsonb)
    INTO v_variants, v_metrics
    FROM ootd.experiment_variants x WHERE x.experiment = v_name;
    FOR v IN SELECT * FROM ootd.experiment_variants x WHERE x.experiment = v_name ORDER BY x.position LOOP
        v_metrics := jsonb_set(v_metrics, ARRAY['by_variant', v.variant],
            ootd._evaluation_metrics(ootd._variant_feeds(v_date, v_users, p_times, v_ks, v_name, v.variant, p_progress,
                                                         v_done, v_variants * cardinality(v_users)), v_generated)
            || jsonb_build_object('share', v.share, 'weights', v.weights));
        v_done := v_done + cardinality(v_users);
    END LOOP;
    INSERT INTO ootd.evaluations (pool_date, params, metrics)
    VALUES (v_date, ootd._evaluation_params(p_users, cardinality(v_users), p_times, v_ks, p_limit)
                    || jsonb_build_object('experiment', v_name, 'by_variant', true), v_metrics)
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION ootd.evaluate_variants(text, date, integer, time[], integer, boolean) IS
    'The evaluation for each variant of an experiment, on the same users and local times, each as if every user were in it; no LLM call; stores one ootd.evaluations row.';
