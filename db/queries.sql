-- =============================================================================
-- ootd: the named queries Python runs (loaded by db/queries.py)
-- Each query is one statement, usually a call to an ootd.* function, with
-- bound parameters only.  Python never assembles SQL.
-- =============================================================================

-- name: vocabulary
SELECT ootd.vocabulary() AS vocabulary;

-- name: put_user
SELECT * FROM ootd.put_user(%(id)s, %(city)s, %(timezone)s, %(style_dna)s, %(style_rules)s);

-- name: user_exists
SELECT EXISTS (SELECT 1 FROM ootd.users WHERE id = %s) AS exists;

-- name: add_city
SELECT * FROM ootd.add_city(%(name)s, %(timezone)s, %(latitude)s, %(longitude)s, %(country)s, %(population_k)s);

-- name: rehydrate_cache
SELECT ootd.rehydrate_cache() AS restored;

-- ------------------------------------------------------------ migrations ---
-- One migration of a database at a time (migrations/lock.py): a session
-- advisory lock in the two-int form (namespace, key).

-- name: migration_try_lock
SELECT pg_catalog.pg_try_advisory_lock(%(namespace)s, %(key)s) AS locked;

-- name: migration_lock
SELECT pg_catalog.pg_advisory_lock(%(namespace)s, %(key)s);

-- name: migration_unlock
SELECT pg_catalog.pg_advisory_unlock(%(namespace)s, %(key)s);

-- name: migration_lock_holders
-- The server pids holding the lock in this database (the waiting one names them).
SELECT string_agg(l.pid::text, ', ' ORDER BY l.pid) AS pids
FROM pg_catalog.pg_locks l
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %(namespace)s AND l.objid = %(key)s
  AND l.objsubid = 2
  AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());

-- name: revoke_tokens
SELECT ootd.revoke_tokens(%s) AS generation;

-- ---------------------------------------------------------------- seeding ---

-- name: lock_seed
SELECT pg_advisory_xact_lock(hashtext('ootd.seed'));

-- name: seed_cities
SELECT name, timezone, population_k FROM ootd.cities ORDER BY name;

-- name: seed_archetypes
SELECT name, keywords FROM ootd.archetypes ORDER BY name;

-- name: seed_count_between
SELECT count(*) AS n FROM ootd.users WHERE id BETWEEN %s AND %s;

-- name: seed_ids_between
SELECT coalesce(array_agg(id), '{}') AS ids FROM ootd.users WHERE id BETWEEN %s AND %s;

-- name: copy_users_text
COPY ootd.users (id, city, timezone, style_dna, style_rules, taste) FROM STDIN;

-- name: seed_truth_present
SELECT to_regclass('ootd_truth.users') IS NOT NULL AS present;

-- name: copy_truth_text
COPY ootd_truth.users (user_id, archetype, loyalty, taste, liked_colors, disliked_colors, liked_categories,
                       disliked_categories, vibe, trend, dare) FROM STDIN;

-- ---------------------------------------------------------------- reports ---

-- name: population_totals
SELECT count(*)                                                        AS users,
       count(DISTINCT city)                                            AS cities,
       count(DISTINCT timezone)                                        AS timezones,
       count(*) FILTER (WHERE jsonb_array_length(coalesce(style_rules -> 'disliked_categories', '[]')) > 0)
                                                                       AS with_vetoes,
       count(*) FILTER (WHERE jsonb_array_length(coalesce(style_rules -> 'disliked_colors', '[]')) > 0)
                                                                       AS with_color_vetoes,
       count(*) FILTER (WHERE (style_rules -> 'disliked_categories') @> (SELECT to_jsonb(array_agg(name)) FROM ootd.categories))
                                                                       AS veto_all,
       count(*) FILTER (WHERE NOT style_dna ? 'archetype')             AS no_archetype,
       count(taste)                                                    AS with_taste
FROM ootd.users;

-- name: population_by_archetype
WITH by_archetype AS (
    SELECT coalesce(style_dna ->> 'archetype', '(none)') AS archetype, count(*) AS users
    FROM ootd.users GROUP BY 1
), colors AS (
    SELECT coalesce(u.style_dna ->> 'archetype', '(none)') AS archetype, color, count(*) AS n
    FROM ootd.users u, jsonb_array_elements_text(u.style_dna -> 'preferred_colors') color
    GROUP BY 1, 2
)
SELECT a.archetype, a.users,
       (SELECT array_agg(c.color ORDER BY c.n DESC, c.color)
        FROM (SELECT * FROM colors c WHERE c.archetype = a.archetype
              ORDER BY c.n DESC, c.color LIMIT 3) c) AS top_colors
FROM by_archetype a
ORDER BY a.users DESC, a.archetype;

-- name: population_top_cities
SELECT u.city, c.timezone, to_char(now() AT TIME ZONE c.timezone - now() AT TIME ZONE 'UTC', 'HH24:MI') AS utc_offset,
       count(*) AS users
FROM ootd.users u JOIN ootd.cities c ON c.name = u.city
GROUP BY u.city, c.timezone
ORDER BY users DESC, u.city
LIMIT %s;

-- ---------------------------------------------------------------- nightly ---

-- name: nightly_try_lock
SELECT pg_try_advisory_lock(hashtext('ootd.nightly')) AS locked;

-- name: nightly_lock
SELECT pg_advisory_lock(hashtext('ootd.nightly'));

-- name: nightly_unlock
SELECT pg_advisory_unlock(hashtext('ootd.nightly'));

-- name: weather_cities
SELECT name, country, timezone, latitude, longitude FROM ootd.cities ORDER BY name;

-- name: put_weather
SELECT ootd.put_weather(%s, %s, %s) AS inserted;

-- name: cluster_demand
SELECT * FROM ootd.cluster_demand(%s);

-- name: taken_titles_present
SELECT to_regprocedure('ootd.taken_titles(date)') IS NOT NULL AS present;

-- name: taken_titles
SELECT title, pool_date, cluster_id, archetype, weather FROM ootd.taken_titles(%s);

-- name: store_pool
SELECT ootd.store_pool(%s, %s, %s, %s, %s, %s) AS stored;

-- name: check_pool_date
SELECT ootd.check_pool_date(%s);

-- name: record_llm_request
SELECT ootd.record_llm_request(%s, %s, %s, %s, %s, %s) AS id;

-- name: record_llm_calls
SELECT ootd.record_llm_calls(%s, %s, %s) AS recorded;

-- name: refresh_pool_cache
SELECT ootd.refresh_pool_cache(%s) AS cached;

-- name: count_users
SELECT count(*) AS n FROM ootd.users;

-- name: llm_cost_day
SELECT * FROM ootd.llm_cost_daily WHERE pool_date = %s;

-- ---------------------------------------------------------------- serving ---

-- name: feed
SELECT * FROM ootd.feed(%s, %s, %s);

-- name: demo_users
SELECT DISTINCT ON (u.city) u.id, u.city, u.timezone
FROM ootd.users u
WHERE u.city IN ('Torrance', 'Mumbai', 'Sydney') AND u.timezone = (SELECT c.timezone FROM ootd.cities c WHERE c.name = u.city)
ORDER BY u.city, u.id;

-- -------------------------------------------------------------------- api ---
-- The HTTP API (api/connector.py).  Its pooled connections switch to the
-- NOLOGIN role ootd_api once, then call exactly one ootd.* function per route.
-- They log nothing below FATAL: a client's bad input is a 4xx, not a server-log line (the API logs its
-- own server-side failures); where ootd_api may not set it (a schema before revision 0016), as before.

-- name: api_set_role
SELECT CASE WHEN pg_catalog.has_parameter_privilege('log_min_messages', 'SET')
            THEN pg_catalog.set_config('log_min_messages', 'fatal', false) END AS log_min_messages,
       pg_catalog.set_config('role', 'ootd_api', false) AS role;

-- name: api_feed
SELECT * FROM ootd.feed(%(user_id)s, coalesce(%(at)s::timestamptz, now()), %(limit)s);

-- name: api_like
SELECT ootd.like(%(user_id)s, %(outfit_id)s) AS created;

-- name: api_unlike
SELECT ootd.unlike(%(user_id)s, %(outfit_id)s) AS removed;

-- name: api_token_generation
-- Every authenticated request, on the primary: the generation its token must carry (revocation);
-- `ootd token` mints tokens of it too.
SELECT ootd.token_generation(%(user_id)s) AS generation;

-- name: api_serving_status
-- standby: a hot standby answers (its feeds read the durable pools).  replay_lag_s:
-- seconds since the last replayed commit, 0 when all WAL received is replayed
-- (an idle primary sends none); null on a primary.  unreachable_nodes: Citus
-- workers this connection's role (ootd_api) cannot reach (0 on a single node).
SELECT s.*,
       pg_catalog.pg_is_in_recovery() AS standby,
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN
           CASE WHEN pg_catalog.pg_last_wal_receive_lsn() = pg_catalog.pg_last_wal_replay_lsn() THEN 0.0
                ELSE greatest(0.0, extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp())::float8)
           END
       END AS replay_lag_s,
       ootd.unreachable_nodes() AS unreachable_nodes
FROM ootd.serving_status(now()) s;

-- ------------------------------------------------------------ replicas ---
-- Read replicas (api/replicas.py): GET .../feed may run on a hot standby named
-- in DATABASE_READ_URLS.  All three are pg_catalog functions PUBLIC may run.

-- name: api_commit_lsn
-- Run on the primary right after a like or unlike committed, on the same
-- connection: the insert position, at or past the end of that commit record
-- (pg_current_wal_lsn(), the write position, may still be behind it when
-- synchronous_commit is off).  A replica that replayed up to it has the like.
SELECT pg_catalog.pg_current_wal_insert_lsn()::text AS lsn;

-- name: api_replay_lsn
SELECT pg_catalog.pg_last_wal_replay_lsn()::text AS replay_lsn;

-- name: api_replica_status
-- The replica health check, at most once a second per replica and worker:
-- a standby?, how far it replayed, and its lag measured as api_serving_status's.
SELECT pg_catalog.pg_is_in_recovery() AS standby,
       pg_catalog.pg_last_wal_replay_lsn()::text AS replay_lsn,
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN
           CASE WHEN pg_catalog.pg_last_wal_receive_lsn() = pg_catalog.pg_last_wal_replay_lsn() THEN 0.0
                ELSE greatest(0.0, extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp())::float8)
           END
       END AS replay_lag_s;

-- ------------------------------------------------------------- simulator ---
-- The simulator page (api/simulator.py): what-if profiles (no user read at all)
-- or a real user's profile, which ootd.user_profile reads inside the statement
-- so that it never leaves the database.  The local wall-clock time the page's
-- slider sets (day + time) becomes an instant in the profile's city's zone, as
-- the feed itself reads local time.

-- name: api_simulate
-- A what-if call binds profile (user_id NULL: ootd.user_profile is never
-- evaluated, no user is read); a real user's call binds user_id and no
-- profile, so that user's profile never leaves the database.
WITH p AS (
    SELECT coalesce(%(profile)s::jsonb, ootd.user_profile(%(user_id)s)) AS profile
), t AS (
    SELECT p.profile, c.name AS city, c.timezone,
           coalesce(%(at)s::timestamptz, (%(day)s::date + %(time)s::time) AT TIME ZONE c.timezone, now()) AS sim_at
    FROM p LEFT JOIN ootd.city_catalog() c ON lower(c.name) = lower(p.profile ->> 'city')
)
SELECT s.*, t.sim_at, t.sim_at AT TIME ZONE t.timezone AS sim_local, t.city AS sim_city, t.timezone AS sim_timezone
FROM t CROSS JOIN LATERAL ootd.simulate(t.profile, t.sim_at, %(weights)s, %(cluster_id)s, %(limit)s) s;

-- name: api_pool_catalog
SELECT * FROM ootd.pool_catalog(%(pool_date)s::date);

-- name: api_llm_calls_since
SELECT ootd.llm_calls_since(%(since)s) AS calls;

-- name: api_simulator_catalog
SELECT ootd.vocabulary() AS vocabulary,
       (SELECT coalesce(jsonb_agg(to_jsonb(c)), '[]') FROM ootd.city_catalog() c) AS cities,
       (SELECT coalesce(jsonb_agg(to_jsonb(w)), '[]') FROM ootd.weight_catalog() w) AS weights,
       (SELECT coalesce(jsonb_agg(to_jsonb(p)), '[]') FROM ootd.pool_catalog(NULL) p) AS pools;

-- ------------------------------------------------------------ generate_pool ---
-- Used by ootd.generate_pool's PL/Python body (batch/plpython_body.py), which
-- otherwise runs the nightly queries above (its placeholders become $1, $2...).

-- name: generate_pool_lock
SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ootd.generate_pool'), pg_catalog.hashtext(%s));

-- name: generate_pool_settings
SELECT s.item
FROM pg_catalog.pg_db_role_setting r
CROSS JOIN LATERAL unnest(r.setconfig) AS s(item)
WHERE r.setrole = 0
  AND r.setdatabase = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
  AND starts_with(s.item, 'ootd.');

-- ------------------------------------------------------------- evaluation ---

-- name: analyst_statement_timeout
-- An analyst command's statement timeout for the rest of its transaction,
-- in milliseconds as text ('0': none); `ootd evaluate --statement-timeout`.
SELECT pg_catalog.set_config('statement_timeout', %(ms)s, true);

-- name: evaluate
SELECT * FROM ootd.evaluate(%(date)s, %(users)s, %(times)s::time[], %(limit)s, %(progress)s);

-- name: evaluate_sweep
SELECT * FROM ootd.evaluate_sweep(%(date)s, %(users)s, %(times)s::time[], %(limit)s, %(progress)s);

-- name: evaluate_variants
SELECT * FROM ootd.evaluate_variants(%(experiment)s, %(date)s, %(users)s, %(times)s::time[], %(limit)s, %(progress)s);

-- ------------------------------------------------------------ experiments ---
-- `ootd experiment ...` (cli/experiment.py): A/B variants of the scoring
-- weights, through the functions of db/sql/07_experiments.sql.

-- name: start_experiment
SELECT * FROM ootd.start_experiment(%(name)s, %(variants)s::jsonb, %(control)s);

-- name: set_experiment_shares
SELECT * FROM ootd.set_experiment_shares(%(name)s, %(shares)s::jsonb);

-- name: end_experiment
SELECT * FROM ootd.end_experiment(%(name)s);

-- name: experiment_list
-- Every experiment, the oldest first, with its variants in bucket order.
SELECT e.name, e.started_at, e.allocated_at, e.ended_at,
       (SELECT jsonb_agg(jsonb_build_object('variant', v.variant, 'control', v.control, 'share', v.share,
                                            'weights', v.weights) ORDER BY v.position)
        FROM ootd.experiment_variants v WHERE v.experiment = e.name) AS variants
FROM ootd.experiments e
ORDER BY e.started_at, e.name;

-- name: experiment_min_days
-- The minimum exposure (days) below which ootd.experiment_results gives
-- counts only, for the rest of the transaction (ootd._experiment_min_days).
SELECT pg_catalog.set_config('ootd.experiment_min_days', %(days)s, true);

-- name: experiment_results
-- One experiment's rows of ootd.experiment_results: the one named, else the
-- running one, else the latest started.  No row: no such experiment.
SELECT r.*
FROM ootd.experiment_results r
WHERE r.experiment = coalesce(%(name)s::text, (SELECT e.name FROM ootd.experiments e
                                                ORDER BY e.ended_at IS NULL DESC, e.started_at DESC, e.name DESC LIMIT 1));

-- ------------------------------------------------------ online evaluation ---
-- `ootd evaluate --online` (db/sql/12_online_evaluation.sql): the served
-- database's weights and the stored run; in each scratch database, an arm's
-- weights and one simulated day.

-- name: online_served_weights
SELECT to_jsonb(w) - 'singleton' - 'updated_at' AS weights FROM ootd.scoring_weights w;

-- name: online_set_weights
SELECT ootd_truth.online_set_weights(%(weights)s);

-- name: online_day
SELECT ootd_truth.online_day(%(arm)s, %(day)s, %(seed)s) AS metrics;

-- name: online_running_variants
-- The running experiment's variants in bucket order, each with the weights it replaces (none: the control).
SELECT v.experiment, v.variant, v.weights
FROM ootd.experiments e JOIN ootd.experiment_variants v ON v.experiment = e.name
WHERE e.ended_at IS NULL
ORDER BY v.position;

-- name: store_online_evaluation
SELECT * FROM ootd.store_online_evaluation(%(params)s, %(arms)s);

-- ------------------------------------------------ truth evaluation (issue 27) ---
-- `ootd evaluate` after a plain run, when the connection may read the truth
-- (the owner; db/sql/13_truth_evaluation.sql): the run's feeds against the
-- simulated users' hidden truth, merged into its metrics; returns the row.

-- name: evaluate_truth
SELECT * FROM ootd_truth.evaluate_truth(%(evaluation_id)s);

-- ---------------------------------------------------------- served feeds ---
-- Every user's feed computed ahead (06_serving_ahead.sql; batch/feeds.py).

-- name: refresh_feeds
CALL ootd.refresh_feeds(coalesce(%(at)s::timestamptz, now()), %(day)s::date, %(part)s, %(parts)s);

-- name: served_feeds_present
SELECT to_regclass('ootd.served_feeds') IS NOT NULL AS present;

-- name: served_feeds_status
SELECT * FROM ootd.served_feeds_status();
