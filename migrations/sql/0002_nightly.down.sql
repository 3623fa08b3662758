-- Revision 0002, downgrade: remove the nightly batch's objects.
SET ROLE ootd_owner;
DROP VIEW ootd.llm_cost_daily;
DROP FUNCTION ootd.record_llm_calls(date, text, jsonb);
DROP FUNCTION ootd.refresh_pool_cache(date, integer);
DROP FUNCTION ootd.store_pool(date, text, text, text, integer, jsonb);
DROP FUNCTION ootd.cluster_demand(date);
DROP FUNCTION ootd.user_clusters(date);
DROP FUNCTION ootd.default_archetype();
DROP FUNCTION ootd.put_weather(date, text, jsonb);
DROP TABLE ootd.llm_prices;
DROP TABLE ootd.weather_daily;
DROP INDEX ootd.outfits_pool_title_key;
ALTER TABLE ootd.pools DROP COLUMN provider, DROP COLUMN members;
RESET ROLE;
