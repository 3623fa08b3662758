-- =============================================================================
-- Revision 0016, part b (down): back to 0015's tokens and grants (frozen).
-- The token generations go (the downgrade guard asks first when they hold
-- rows): every token revoked so far is accepted again until it expires.
-- =============================================================================
SET ROLE ootd_owner;

REVOKE UPDATE ON ootd.scoring_weights FROM ootd_analyst;
REVOKE EXECUTE ON FUNCTION ootd._weights_doc_problem(jsonb), ootd._weight_ranges() FROM ootd_analyst;
DO $grant$
BEGIN
    IF pg_catalog.to_regprocedure('ootd._weight_limits()') IS NOT NULL THEN
        REVOKE EXECUTE ON FUNCTION ootd._weight_limits() FROM ootd_analyst;
    END IF;
END
$grant$;
GRANT EXECUTE ON FUNCTION ootd.rehydrate_cache(date, integer) TO ootd_api;
DROP FUNCTION ootd.revoke_tokens(bigint);
DROP FUNCTION ootd.token_generation(bigint);
DROP TABLE ootd.api_token_generations;

RESET ROLE;
