-- =============================================================================
-- Revision 0016, part b: API tokens (frozen)
-- A per-user token generation (revocation: ootd.revoke_tokens, checked by the
-- API through ootd.token_generation); grants made to agree with the README's
-- role table: ootd_api no longer runs ootd.rehydrate_cache, analysts may
-- UPDATE ootd.scoring_weights.
-- =============================================================================
SET ROLE ootd_owner;

CREATE TABLE ootd.api_token_generations (
    user_id    bigint PRIMARY KEY,  -- no foreign key: on a distributed schema (Citus) this table is created
                                    -- before db/citus.sql co-locates it; ootd.revoke_tokens checks the user
    generation integer NOT NULL CHECK (generation > 0),
    revoked_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ootd.api_token_generations IS
    'Per user: the generation of API tokens in force (absent: 0); ootd.revoke_tokens raises it by one.';

CREATE FUNCTION ootd.token_generation(p_user_id bigint)
RETURNS integer
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce((SELECT g.generation FROM ootd.api_token_generations g WHERE g.user_id = p_user_id), 0);
END
$$;
COMMENT ON FUNCTION ootd.token_generation(bigint) IS
    'The generation of API tokens in force for a user (0 until the first revoke); the API checks every token''s gen claim against it.';

CREATE FUNCTION ootd.revoke_tokens(p_user_id bigint)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_generation integer;
BEGIN
    IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM ootd.users u WHERE u.id = p_user_id) THEN
        RAISE EXCEPTION 'unknown user %', coalesce(p_user_id::text, 'NULL') USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO ootd.api_token_generations AS g (user_id, generation) VALUES (p_user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET generation = g.generation + 1, revoked_at = now()
    RETURNING g.generation INTO v_generation;
    RETURN v_generation;
END
$$;
COMMENT ON FUNCTION ootd.revoke_tokens(bigint) IS
    'Revoke every API token of a user (ootd token revoke): returns the new generation; unknown user P0002.';

REVOKE EXECUTE ON FUNCTION ootd.token_generation(bigint), ootd.revoke_tokens(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ootd.token_generation(bigint) TO ootd_api;
REVOKE EXECUTE ON FUNCTION ootd.rehydrate_cache(date, integer) FROM ootd_api;
-- analysts tune the scoring weights (one row) with UPDATE; its CHECK (scoring_weights_in_range) runs
-- as the updating role, so it may execute the CHECK's own helpers (pure, read nothing).
GRANT UPDATE ON ootd.scoring_weights TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd._weights_doc_problem(jsonb), ootd._weight_ranges() TO ootd_analyst;
DO $grant$
BEGIN
    IF pg_catalog.to_regprocedure('ootd._weight_limits()') IS NOT NULL THEN  -- the ranges' caps (part a)
        GRANT EXECUTE ON FUNCTION ootd._weight_limits() TO ootd_analyst;
    END IF;
END
$grant$;

RESET ROLE;
