-- =============================================================================
-- ootd on Citus: distribute the migrated schema (run by `ootd migrate` on a
-- Citus coordinator, after `alembic upgrade head`; see docs/scaling.md).
-- On a schema already distributed, `ootd migrate` runs the new revisions with
-- DDL propagation on, then this file again: it places the tables they added,
-- distributes the functions Citus could not send yet and delegates again the
-- request-path functions they re-created.
-- Not part of the single-node schema (db/sql/): this file only runs where
-- the citus extension exists.  Every step is idempotent: a second run changes
-- nothing.  Steps are separated by a blank line after a line ending in ';'
-- (db/citus.py runs them one at a time, each in its own transaction, as the
-- superuser running `ootd migrate`: Citus opens connections to the workers as
-- the current user, and ootd_owner cannot log in).
-- Per-user tables (users, likes) are distributed by user id, co-located;
-- everything else is a reference table (a copy on every node), so a feed or
-- a like runs on the one worker that holds the user.
-- =============================================================================

-- A reference table with a foreign key to a distributed one (or the reverse)
-- must not silently turn into a coordinator-only "citus local" table.
SET citus.enable_local_reference_table_foreign_keys = off;

-- The likes triggers (05_likes.sql) go to the shards of ootd.likes with the
-- table: Citus creates a distributed table's triggers on its shards only
-- when allowed to, since a trigger may touch rows of other shards.  Theirs
-- update the liking user's row of ootd.users, whose shard is co-located with
-- the like's (docs/scaling.md).
SET citus.enable_unsafe_triggers = on;

-- ---------------------------------------------------------------- functions --
-- First pass: the functions whose signatures name no table (the CHECK
-- constraints' functions and every helper they call among them) exist on
-- every worker before the shards whose constraints call them.  Function
-- bodies are not dependencies Citus follows, so every such function goes.
-- (Those naming a table's row type, or a composite type with a field of
-- one, as ootd._rank_all's requests, follow the tables, below.)  Bodies are
-- not checked on the workers (check_function_bodies off, propagated as SET
-- LOCAL): a SQL function's body may name a table or function that comes later.
-- One function per transaction: Citus refuses dozens in one.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'ootd'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_object d
                          WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid)
          AND NOT EXISTS (SELECT 1
                          FROM pg_catalog.pg_depend x
                          JOIN pg_catalog.pg_type t ON t.oid = x.refobjid
                          JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typelem <> 0 THEN t.typelem ELSE t.oid END
                          JOIN pg_catalog.pg_class c ON c.oid = b.typrelid
                          WHERE x.classid = 'pg_catalog.pg_proc'::regclass AND x.objid = p.oid
                            AND x.refclassid = 'pg_catalog.pg_type'::regclass
                            AND (c.relkind IN ('r', 'p')
                                 OR (c.relkind = 'c' AND EXISTS (
                                         SELECT 1
                                         FROM pg_catalog.pg_attribute a
                                         JOIN pg_catalog.pg_type at ON at.oid = a.atttypid
                                         JOIN pg_catalog.pg_class ac ON ac.oid = at.typrelid
                                         WHERE a.attrelid = c.oid AND a.attnum > 0 AND ac.relkind IN ('r', 'p')))))
        ORDER BY p.oid
    LOOP
        SET LOCAL citus.propagate_set_commands = 'local';
        SET LOCAL check_function_bodies = off;
        PERFORM pg_catalog.create_distributed_function(f);
        COMMIT;                        -- one function per transaction
    END LOOP;
END
$$;

-- ------------------------------------------------------------------- tables --
-- Reference tables first (users reference cities), then users, the tables
-- referencing it or referenced by likes, then likes co-located with users.
-- pool_cache stays UNLOGGED on every node: after a worker crash its copy is
-- empty and ootd._pool_rows serves the durable outfits until the cache is
-- refilled (ootd.refresh_pool_cache).
SELECT pg_catalog.create_reference_table(t.name::regclass)
FROM unnest(ARRAY['ootd.timezones', 'ootd.archetypes', 'ootd.categories', 'ootd.colors',
                  'ootd.weather_conditions', 'ootd.cities']) WITH ORDINALITY AS t(name, n)
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = t.name::regclass)
ORDER BY t.n;

SELECT pg_catalog.create_distributed_table('ootd.users', 'id', shard_count := 32)
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = 'ootd.users'::regclass);

SELECT pg_catalog.create_reference_table(t.name::regclass)
FROM unnest(ARRAY['ootd.weather_daily', 'ootd.pools', 'ootd.outfits']) WITH ORDINALITY AS t(name, n)
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = t.name::regclass)
ORDER BY t.n;

SELECT pg_catalog.create_distributed_table('ootd.likes', 'user_id', colocate_with := 'ootd.users')
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = 'ootd.likes'::regclass);

SELECT pg_catalog.create_reference_table(t.name::regclass)
FROM unnest(ARRAY['ootd.llm_calls', 'ootd.llm_prices', 'ootd.pool_cache', 'ootd.scoring_weights',
                  'ootd.evaluations']) WITH ORDINALITY AS t(name, n)
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = t.name::regclass)
ORDER BY t.n;

-- The experiments (0015; small, analyst-managed, read by every feed through
-- ootd._assignment) are reference tables too: experiments before the
-- variants and the log, whose foreign keys reference it (between reference
-- tables: enforced on every node); the partial unique index "one experiment
-- running" goes with the table to every copy.  A feed delegated to a worker
-- reads that worker's copies, which a change made on the coordinator reaches
-- in the same (two-phase) commit.
SELECT pg_catalog.create_reference_table(t.name::regclass)
FROM unnest(ARRAY['ootd.experiments', 'ootd.experiment_variants', 'ootd.experiment_changes'])
     WITH ORDINALITY AS t(name, n)
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = t.name::regclass)
ORDER BY t.n;

-- The API token generations (0016, 09_tokens.sql): per user, co-located with users.
SELECT pg_catalog.create_distributed_table('ootd.api_token_generations', 'user_id', colocate_with := 'ootd.users')
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
                  WHERE p.logicalrelid = 'ootd.api_token_generations'::regclass);

-- The simulated users' hidden truth (0018, 11_truth.sql): per user, co-located with users.
-- Named through to_regclass / to_regnamespace here and below: on a schema older than 0018 this
-- file's steps find no ootd_truth and skip it.
SELECT pg_catalog.create_distributed_table(pg_catalog.to_regclass('ootd_truth.users'), 'user_id',
                                           colocate_with := 'ootd.users')
WHERE pg_catalog.to_regclass('ootd_truth.users') IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
                  WHERE p.logicalrelid = pg_catalog.to_regclass('ootd_truth.users'));

-- ... and its key to ootd.users, which an upgrade of a distributed schema could not add before
-- (11_truth.sql; a fresh install has it already).
DO $$
BEGIN
    IF pg_catalog.to_regclass('ootd_truth.users') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                       WHERE k.conrelid = pg_catalog.to_regclass('ootd_truth.users')
                         AND k.conname = 'users_user_id_fkey') THEN
        ALTER TABLE ootd_truth.users ADD CONSTRAINT users_user_id_fkey
            FOREIGN KEY (user_id) REFERENCES ootd.users (id) ON DELETE CASCADE;
    END IF;
END
$$;

-- The served feeds (0020, 06_serving_ahead.sql): per user, co-located with users, and the inputs
-- version they carry, a reference table.  On Citus they stay empty: every feed is ranked live on the
-- user's worker (ootd._materializing), but the tables exist on every node as on a single node.
SELECT pg_catalog.create_reference_table(pg_catalog.to_regclass('ootd.serving_inputs'))
WHERE pg_catalog.to_regclass('ootd.serving_inputs') IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
                  WHERE p.logicalrelid = pg_catalog.to_regclass('ootd.serving_inputs'));

SELECT pg_catalog.create_distributed_table(pg_catalog.to_regclass('ootd.served_feeds'), 'user_id',
                                           colocate_with := 'ootd.users')
WHERE pg_catalog.to_regclass('ootd.served_feeds') IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
                  WHERE p.logicalrelid = pg_catalog.to_regclass('ootd.served_feeds'));

-- ... and its key to ootd.users, which an upgrade of a distributed schema could not add before.
DO $$
BEGIN
    IF pg_catalog.to_regclass('ootd.served_feeds') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                       WHERE k.conrelid = pg_catalog.to_regclass('ootd.served_feeds')
                         AND k.conname = 'served_feeds_user_id_fkey') THEN
        ALTER TABLE ootd.served_feeds ADD CONSTRAINT served_feeds_user_id_fkey
            FOREIGN KEY (user_id) REFERENCES ootd.users (id) ON DELETE CASCADE;
    END IF;
END
$$;

-- Every table of the schemas (ootd, ootd_truth) is now distributed or a reference table: a new
-- table that this file does not place is an error, not a coordinator-only
-- table nobody noticed.
DO $$
DECLARE
    v_missing text;
BEGIN
    SELECT string_agg(c.oid::regclass::text, ', ' ORDER BY c.relname) INTO v_missing
    FROM pg_catalog.pg_class c
    WHERE c.relnamespace IN ('ootd'::regnamespace, pg_catalog.to_regnamespace('ootd_truth')) AND c.relkind IN ('r', 'p')
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = c.oid);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'db/citus.sql does not place these tables: %', v_missing
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Make each a reference table or distribute it by user id in db/citus.sql.';
    END IF;
END
$$;

-- ---------------------------------------------------------------- functions --
-- Second pass: every other function of the schema (and of ootd_truth), after the tables its
-- signature names, so that every function exists on every worker (those a
-- delegated call runs, with their owner and grants).  Functions were created
-- with DDL propagation off (the migrations run locally), hence this file; on
-- an upgrade, those naming a table the revision added (not yet placed then).
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace IN ('ootd'::regnamespace, pg_catalog.to_regnamespace('ootd_truth'))
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_object d
                          WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid)
        ORDER BY p.oid
    LOOP
        SET LOCAL citus.propagate_set_commands = 'local';
        SET LOCAL check_function_bodies = off;
        PERFORM pg_catalog.create_distributed_function(f);
        COMMIT;                        -- one function per transaction
    END LOOP;
END
$$;

-- The request-path functions run on the worker that holds the user: the
-- coordinator delegates the whole call (distributed by their user-id
-- argument, co-located with ootd.users).
SELECT pg_catalog.create_distributed_function(f.signature::regprocedure, f.argument, colocate_with := 'ootd.users')
FROM (VALUES ('ootd.feed(bigint, timestamp with time zone, integer)', 'p_user_id'),
             ('ootd.feed_explain(bigint, timestamp with time zone, integer)', 'p_user_id'),
             ('ootd.user_profile(bigint)', 'p_user_id'),
             ('ootd.like(bigint, bigint)', 'p_user_id'),
             ('ootd.unlike(bigint, bigint)', 'p_user_id'),
             ('ootd.put_user(bigint, text, text, jsonb, jsonb)', 'p_id')) AS f(signature, argument)
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_object d
                  WHERE d.classid = 'pg_catalog.pg_proc'::regclass
                    AND d.objid = f.signature::regprocedure::oid
                    AND d.distribution_argument_index IS NOT NULL);

-- The API token generations (0016, 09_tokens.sql) are the two functions that read and raise
-- one, delegated by their user argument (so the API's check of a token is a router call too).
SELECT pg_catalog.create_distributed_function(f.signature::regprocedure, f.argument, colocate_with := 'ootd.users')
FROM (VALUES ('ootd.token_generation(bigint)', 'p_user_id'),
             ('ootd.revoke_tokens(bigint)', 'p_user_id')) AS f(signature, argument)
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_object d
                  WHERE d.classid = 'pg_catalog.pg_proc'::regclass
                    AND d.objid = f.signature::regprocedure::oid
                    AND d.distribution_argument_index IS NOT NULL);

-- -------------------------------------------------------------------- login --
-- Citus opens node-to-node connections as the role that runs a statement:
-- - ootd_owner, for a call Citus does not delegate (inside a transaction block,
--   or with an argument that is not a constant, e.g. ootd.like(42, (SELECT ...))),
--   which runs on the coordinator as its SECURITY DEFINER owner;
-- - ootd_api, for a delegated call (ootd.feed, like, unlike...): the API's
--   connection runs SET ROLE ootd_api, and the call goes to the user's worker
--   as that role.
-- Both must be able to log in on every node (propagated).  Neither has a
-- password here: how nodes authenticate each other is the cluster's (the
-- nodes' pg_hba.conf, pg_dist_authinfo, .pgpass or certificates); the local
-- cluster of `ootd db citus up` gives them SCRAM passwords derived from its
-- secret in pg_dist_authinfo (db/citus.py).  Keep them unreachable from outside
-- the cluster (docs/scaling.md).
ALTER ROLE ootd_owner LOGIN;

ALTER ROLE ootd_api LOGIN;

-- --------------------------------------------------------------- privileges --
-- Tables and grants reach the workers with the tables and functions, but a
-- function created there is executable by PUBLIC (the coordinator's default
-- privileges do not travel): revoke it, so each node grants exactly what a
-- single node grants (10_privileges.sql).  Citus propagates the REVOKE of a
-- distributed function; on the coordinator it changes nothing.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
             WHERE p.pronamespace IN ('ootd'::regnamespace, pg_catalog.to_regnamespace('ootd_truth')) ORDER BY p.oid LOOP
        EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', f);   -- (functions and procedures)
    END LOOP;
    REVOKE ALL ON SCHEMA ootd FROM PUBLIC;
    IF pg_catalog.to_regnamespace('ootd_truth') IS NOT NULL THEN
        REVOKE ALL ON SCHEMA ootd_truth FROM PUBLIC;
    END IF;
END
$$;
