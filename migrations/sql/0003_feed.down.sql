-- Revision 0003, downgrade: remove serving functions, views and indexes.
SET ROLE ootd_owner;
DROP VIEW ootd.cache_health;
DROP VIEW ootd.cluster_overview;
DROP FUNCTION ootd.rehydrate_cache(integer);
DROP FUNCTION ootd.feed(bigint, timestamptz, integer);
DROP FUNCTION ootd.feed_explain(bigint, timestamptz, integer);
DROP TYPE ootd._candidate;
DROP INDEX ootd.weather_daily_city_day_idx;
DROP INDEX ootd.pools_date_idx;
DROP INDEX ootd.pools_archetype_date_idx;
DROP INDEX ootd.pools_archetype_weather_date_idx;
RESET ROLE;
