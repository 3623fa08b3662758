-- =============================================================================
-- Revision 0016, part c: the API role's client errors leave no server-log entry (frozen)
-- ootd_api may SET log_min_messages (PostgreSQL 15+; cluster-wide, like the
-- roles): the API's pooled connections set it to fatal, so a 4xx a client
-- causes is no ERROR line in the server log.  Only a superuser may grant it.
-- =============================================================================
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
