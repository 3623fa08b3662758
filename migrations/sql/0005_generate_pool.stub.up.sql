-- =============================================================================
-- Revision 0005: ootd.generate_pool, where the server has no plpython3u (frozen)
-- The embedded default and most managed services offer no plpython3u, so the
-- signature exists everywhere and says how pools are generated instead.
-- (Where plpython3u exists, 0005_generate_pool.plpython.up.sql runs instead.)
-- =============================================================================
SET ROLE ootd_owner;

CREATE FUNCTION ootd.generate_pool(p_cluster_id text)
RETURNS TABLE (cluster_id text, status text, provider text, model text, outfits integer, requests integer,
               error text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'ootd.generate_pool(%) needs plpython3u, which this server does not have; generate pools with `ootd nightly` instead',
                    quote_literal(p_cluster_id)
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Run `ootd nightly --date YYYY-MM-DD` (from cron, with DATABASE_URL set) on a machine with ootd installed; see docs/generate_pool.md.';
END
$$;
COMMENT ON FUNCTION ootd.generate_pool(text) IS
    'Generate one cluster''s pool in the database (PL/Python). This server has no plpython3u: raises 0A000; use `ootd nightly`.';

GRANT EXECUTE ON FUNCTION ootd.generate_pool(text) TO ootd_batch;

RESET ROLE;
