-- =============================================================================
-- ootd: roles, extension, schema
-- Loaded first (db/__init__.py concatenates db/sql/*.sql in name order and
-- runs them in one transaction).  Run as a superuser (CREATE EXTENSION vector
-- needs one), or as a role with CREATEROLE once the extension exists.  Every
-- object below is created by, and owned by, ootd_owner (SET ROLE here; the
-- last file, 10_privileges.sql, resets it).
-- =============================================================================

-- =============================================================================
-- 1. Roles (cluster-wide; created once, shared by every ootd database)
--   ootd_owner    NOLOGIN, owns every object; nobody logs in as it.
--   ootd_api      executes the few functions the HTTP API needs; no table access.
--   ootd_batch    the nightly batch: reads users, writes pools and the LLM ledger.
--   ootd_analyst  read-only on every table and view; runs evaluations and A/B experiments
--                 (through their functions only).
-- Login roles are the DBA's: e.g. CREATE ROLE api_login LOGIN IN ROLE ootd_api.
-- =============================================================================
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['ootd_owner', 'ootd_api', 'ootd_batch', 'ootd_analyst'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    -- The installing role must be able to SET ROLE ootd_owner below.
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT ootd_owner TO %I', current_user);
    END IF;
END
$roles$;

-- The API's pooled connections set log_min_messages = fatal (db/queries.sql, api_set_role): the errors
-- its clients cause (an unknown city, a bad limit) are answered 4xx and are no server-log entries, so
-- requests from outside cannot fill the log; the API logs its own server-side failures.  A
-- parameter privilege is cluster-wide, like the roles; only a superuser may grant it (PostgreSQL 15+).
DO $log$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        GRANT SET ON PARAMETER log_min_messages TO ootd_api;
    ELSE
        RAISE NOTICE 'not a superuser: run GRANT SET ON PARAMETER log_min_messages TO ootd_api as one, '
                     'or the API role''s client errors are logged at ERROR';
    END IF;
END
$log$;


-- =============================================================================
-- 2. Extensions
-- =============================================================================
CREATE EXTENSION IF NOT EXISTS vector;


-- =============================================================================
-- 3. Schema (everything below is created by, and owned by, ootd_owner)
-- =============================================================================
CREATE SCHEMA ootd AUTHORIZATION ootd_owner;
COMMENT ON SCHEMA ootd IS 'Outfit-of-the-day feeds at O(K) LLM cost: pools per style cluster, served by ootd.feed().';

SET ROLE ootd_owner;

-- Nothing ootd_owner creates is executable by PUBLIC unless granted below.
ALTER DEFAULT PRIVILEGES FOR ROLE ootd_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE ootd_owner IN SCHEMA ootd GRANT SELECT ON TABLES TO ootd_analyst;
