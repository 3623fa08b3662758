-- =============================================================================
-- ootd: analytics views
-- What the batch cost, which pools exist, and how complete the cache is.
-- =============================================================================

-- -------------------------------------------------------------------- views --
-- ootd.llm_cost_daily: what each day's pools cost, and what one LLM call per
-- user would have cost.  est_cost_usd prices each call at its own model's
-- price (unknown models cost NULL); *_at_reference prices every token at the
-- reference model's price, which makes offline runs comparable.  The naive
-- design makes one generation per user, so its cost is users_served x the
-- mean cost of a generated pool (chat and embedding requests, retries
-- included).
CREATE VIEW ootd.llm_cost_daily AS
WITH ref AS (
    SELECT prompt_usd_per_1m, completion_usd_per_1m FROM ootd.llm_prices WHERE is_reference
), calls AS (
    SELECT c.pool_date,
           count(*) FILTER (WHERE c.kind = 'chat')                     AS chat_calls,
           count(*) FILTER (WHERE c.kind = 'embedding')                AS embedding_calls,
           count(*) FILTER (WHERE c.status <> 'ok')                    AS failed_calls,
           sum(c.prompt_tokens)                                        AS prompt_tokens,
           sum(c.completion_tokens)                                    AS completion_tokens,
           sum((c.prompt_tokens * p.prompt_usd_per_1m + c.completion_tokens * p.completion_usd_per_1m) / 1e6)
                                                                       AS est_cost_usd,
           sum((c.prompt_tokens * r.prompt_usd_per_1m + c.completion_tokens * r.completion_usd_per_1m) / 1e6)
                                                                       AS cost_at_reference_usd
    FROM ootd.llm_calls c
    LEFT JOIN ootd.llm_prices p ON p.model = c.model
    LEFT JOIN ref r ON true
    GROUP BY c.pool_date
), pools AS (
    SELECT pool_date, count(*) AS clusters, sum(members) AS users_served
    FROM ootd.pools
    GROUP BY pool_date
)
SELECT c.pool_date,
       coalesce(p.clusters, 0)                                     AS clusters,
       c.chat_calls,
       c.embedding_calls,
       c.failed_calls,
       c.prompt_tokens,
       c.completion_tokens,
       round(c.est_cost_usd::numeric, 6)                           AS est_cost_usd,
       round(c.cost_at_reference_usd::numeric, 6)                  AS cost_at_reference_usd,
       coalesce(p.users_served, 0)                                 AS users_served,
       coalesce(p.users_served, 0)                                 AS naive_calls,
       round((c.est_cost_usd / nullif(p.clusters, 0) * p.users_served)::numeric, 2)          AS naive_cost_usd,
       round((c.cost_at_reference_usd / nullif(p.clusters, 0) * p.users_served)::numeric, 2) AS naive_cost_at_reference_usd
FROM calls c
LEFT JOIN pools p ON p.pool_date = c.pool_date;
COMMENT ON VIEW ootd.llm_cost_daily IS
    'Per day: LLM calls, failures, tokens, estimated cost, users served, and the cost of one call per user.';

CREATE VIEW ootd.cluster_overview AS
SELECT p.pool_date, p.cluster_id, p.archetype, p.weather, p.members,
       (SELECT count(*) FROM ootd.outfits o WHERE o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id) AS pool_size,
       p.generated_at, p.provider, p.model
FROM ootd.pools p;
COMMENT ON VIEW ootd.cluster_overview IS 'Each generated pool: cluster, members, pool size, when and by which model.';

CREATE VIEW ootd.cache_health AS
SELECT d.pool_date,
       d.durable_rows,
       coalesce(c.cache_rows, 0)                  AS cache_rows,
       coalesce(c.cache_rows, 0) = d.durable_rows AS complete,
       c.last_refresh
FROM (SELECT pool_date, count(*) AS durable_rows FROM ootd.outfits GROUP BY pool_date) d
LEFT JOIN (SELECT pool_date, count(*) AS cache_rows, max(cached_at) AS last_refresh
           FROM ootd.pool_cache GROUP BY pool_date) c ON c.pool_date = d.pool_date;
COMMENT ON VIEW ootd.cache_health IS 'Per pool date: durable outfit rows vs cached rows, and the last cache refresh.';
