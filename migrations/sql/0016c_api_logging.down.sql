-- =============================================================================
-- Revision 0016, part c (down): ootd_api may no longer SET log_min_messages
-- (cluster-wide: every ootd database of this server).  Only a superuser may revoke it.
-- =============================================================================
DO $log$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        REVOKE SET ON PARAMETER log_min_messages FROM ootd_api;
    END IF;
END
$log$;
