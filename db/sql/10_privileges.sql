-- =============================================================================
-- ootd: privileges
-- EXECUTE on functions is revoked from PUBLIC (default privileges in
-- 01_roles_and_schema.sql, and explicitly below); each role gets exactly its
-- grants.
-- =============================================================================

REVOKE ALL ON SCHEMA ootd FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;
GRANT USAGE ON SCHEMA ootd TO ootd_api, ootd_batch, ootd_analyst;

-- ootd_analyst: read everything (future tables through the default privilege).
GRANT SELECT ON ALL TABLES IN SCHEMA ootd TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.vocabulary() TO ootd_analyst, ootd_batch;

-- ootd_batch: read users and reference data, write pools, cache and ledger.
GRANT SELECT ON ootd.users, ootd.cities, ootd.timezones, ootd.archetypes, ootd.categories,
                ootd.colors, ootd.weather_conditions, ootd.scoring_weights TO ootd_batch;
GRANT SELECT, INSERT, UPDATE, DELETE ON ootd.pools, ootd.outfits, ootd.pool_cache TO ootd_batch;
GRANT SELECT, INSERT ON ootd.llm_calls TO ootd_batch;

GRANT SELECT ON ootd.weather_daily, ootd.llm_prices TO ootd_batch;
GRANT INSERT ON ootd.weather_daily TO ootd_batch;
GRANT SELECT ON ootd.weather_daily, ootd.llm_prices, ootd.llm_cost_daily TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.put_weather(date, text, jsonb), ootd.default_archetype(),
                          ootd.user_clusters(date), ootd.cluster_demand(date),
                          ootd.store_pool(date, text, text, text, integer, jsonb),
                          ootd.refresh_pool_cache(date, integer),
                          ootd.record_llm_calls(date, text, jsonb),
                          ootd.record_llm_request(date, text, text, text, text, integer),
                          ootd.check_pool_date(date), ootd.taken_titles(date), ootd._title_key(text) TO ootd_batch;
GRANT EXECUTE ON FUNCTION ootd.generate_pool(text) TO ootd_batch;
GRANT EXECUTE ON FUNCTION ootd.default_archetype(), ootd.user_clusters(date), ootd.cluster_demand(date)
    TO ootd_analyst;

GRANT EXECUTE ON FUNCTION ootd.feed(bigint, timestamptz, integer) TO ootd_api, ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.feed_explain(bigint, timestamptz, integer) TO ootd_analyst;
-- the simulator (GET /simulator): what-if ranking, the pool picker, the LLM-call counter; a real
-- user's profile (the API asks for that user's token first).
GRANT EXECUTE ON FUNCTION ootd.simulate(jsonb, timestamptz, jsonb, text, integer), ootd.pool_catalog(date),
                          ootd.weight_catalog(), ootd.city_catalog(), ootd.llm_calls_since(timestamptz),
                          ootd.vocabulary() TO ootd_api, ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.user_profile(bigint) TO ootd_api, ootd_analyst;
-- the cache refill after a crash is the batch's (and the owner's: ootd db start / nightly / serve run it
-- as DATABASE_URL's user, before any worker switches to ootd_api), never the API's.
GRANT EXECUTE ON FUNCTION ootd.rehydrate_cache(date, integer) TO ootd_batch;
GRANT SELECT ON ootd.cluster_overview, ootd.cache_health TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.like(bigint, bigint), ootd.unlike(bigint, bigint),
                          ootd.serving_status(timestamptz) TO ootd_api;
GRANT EXECUTE ON FUNCTION ootd.serving_status(timestamptz) TO ootd_analyst;
-- served feeds (06_serving_ahead.sql): how many are current; refreshing them is the owner's (ootd feeds refresh).
GRANT EXECUTE ON FUNCTION ootd.served_feeds_status() TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.unreachable_nodes() TO ootd_api, ootd_analyst;
-- API tokens (09_tokens.sql): the API checks a token's generation on every request; revoking is the
-- owner's (ootd token revoke, as DATABASE_URL's user), as creating users is.
GRANT EXECUTE ON FUNCTION ootd.token_generation(bigint) TO ootd_api;

-- analysts tune the scoring weights (one row) with UPDATE; its CHECK (scoring_weights_in_range) runs
-- as the updating role, so it may execute the CHECK's own helpers (pure, read nothing).
GRANT UPDATE ON ootd.scoring_weights TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd._weights_doc_problem(jsonb), ootd._weight_ranges() TO ootd_analyst;
DO $grant$
BEGIN
    IF pg_catalog.to_regprocedure('ootd._weight_limits()') IS NOT NULL THEN  -- the ranges' caps (part a)
        GRANT EXECUTE ON FUNCTION ootd._weight_limits() TO ootd_analyst;
    END IF;
END
$grant$;

-- evaluation (08_evaluation.sql): analysts run it and read ootd.evaluations (SELECT above).
GRANT EXECUTE ON FUNCTION ootd.evaluate(date, integer, time[], integer, boolean),
                          ootd.evaluation_feeds(date, bigint[], time[], integer) TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.evaluate_sweep(date, integer, time[], integer, boolean) TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.evaluate_variants(text, date, integer, time[], integer, boolean) TO ootd_analyst;

-- experiments (07_experiments.sql): analysts run them, through these functions only (no table
-- privilege but SELECT); ootd_api and ootd_batch cannot change them.
GRANT EXECUTE ON FUNCTION ootd.start_experiment(text, jsonb, text), ootd.set_experiment_shares(text, jsonb),
                          ootd.end_experiment(text), ootd.experiment_of(bigint), ootd._experiment_results(text)
    TO ootd_analyst;

-- ootd_api: no table privileges at all; only EXECUTE on the serving functions
-- (SECURITY DEFINER, owned by ootd_owner, search_path pinned).

RESET ROLE;
