-- =============================================================================
-- Revision 0005: ootd.generate_pool in PL/Python, where the server has
-- plpython3u and the migrating role is a superuser (frozen, except the body).
-- The body is not kept here: the revision replaces the marker line below with
-- the text of batch/plpython_body.py plus its call, so the function runs the
-- batch's own generation code (one implementation).
-- An untrusted language needs a superuser to create the function; it is then
-- handed to ootd_owner like every other object, runs as its caller (ootd_batch
-- has every privilege it needs) and with a pinned search_path.
-- =============================================================================
CREATE EXTENSION IF NOT EXISTS plpython3u;

CREATE FUNCTION ootd.generate_pool(p_cluster_id text)
RETURNS TABLE (cluster_id text, status text, provider text, model text, outfits integer, requests integer,
               error text)
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $plpython$
@BODY@
$plpython$;
ALTER FUNCTION ootd.generate_pool(text) OWNER TO ootd_owner;
COMMENT ON FUNCTION ootd.generate_pool(text) IS
    'Generate, validate and store one cluster''s pool in the database (PL/Python, the batch''s code): stored | exists | failed.';

REVOKE EXECUTE ON FUNCTION ootd.generate_pool(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ootd.generate_pool(text) TO ootd_batch;
