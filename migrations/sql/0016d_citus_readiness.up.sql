-- 0016d: readiness on Citus counts the workers the API's role cannot reach (issue 25, item 2).
SET ROLE ootd_owner;

-- ootd.unreachable_nodes(): on a Citus cluster, how many of its other nodes
-- (workers) the caller cannot reach, 0 on a single node or a standby.  SECURITY
-- INVOKER on purpose: the API's readiness asks as ootd_api, the role its
-- delegated feeds and likes reach the workers as, so a role that cannot log in
-- there counts as unreachable.  The failed connection's warning (it names the
-- node's host and port) is kept from the client.
CREATE FUNCTION ootd.unreachable_nodes()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET client_min_messages = error
AS $$
DECLARE
    v_unreachable integer := 0;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_node') IS NOT NULL AND NOT pg_is_in_recovery() THEN
        EXECUTE 'SELECT count(*)::integer FROM pg_catalog.pg_dist_node n
                 WHERE n.isactive AND n.noderole = ''primary'' AND n.groupid <> 0
                   AND NOT pg_catalog.citus_check_connection_to_node(n.nodename, n.nodeport)'
        INTO v_unreachable;
    END IF;
    RETURN v_unreachable;
END
$$;
COMMENT ON FUNCTION ootd.unreachable_nodes() IS
    'Readiness on Citus: active worker nodes the calling role cannot connect to (0 on a single node).';

REVOKE EXECUTE ON FUNCTION ootd.unreachable_nodes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ootd.unreachable_nodes() TO ootd_api, ootd_analyst;

RESET ROLE;
