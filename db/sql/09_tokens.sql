-- =============================================================================
-- ootd: API token generations (revocation)
-- A bearer token (api/auth.py) carries the generation of its user's tokens
-- current when it was minted (claim `gen`).  The API checks it against
-- ootd.token_generation on every authenticated request, on the primary, so a
-- revoke (ootd.revoke_tokens: `ootd token revoke USER`) turns away every
-- token minted before it, in every API worker, from the next request on.
-- No row: generation 0.  Per-user state, so on Citus the table is
-- distributed by user id, co-located with ootd.users (db/citus.sql).
-- =============================================================================

-- ------------------------------------------------------------------- tables --
CREATE TABLE ootd.api_token_generations (
    user_id    bigint PRIMARY KEY,  -- no foreign key: on a distributed schema (Citus) this table is created
                                    -- before db/citus.sql co-locates it; ootd.revoke_tokens checks the user
    generation integer NOT NULL CHECK (generation > 0),
    revoked_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ootd.api_token_generations IS
    'Per user: the generation of API tokens in force (absent: 0); ootd.revoke_tokens raises it by one.';

-- ---------------------------------------------------------------- functions --
-- ootd.token_generation(user): the generation a token of this user must
-- carry to be accepted (0 until the first revoke).  An unknown user is 0 too:
-- the call the token is for reports it (404).
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

-- ootd.revoke_tokens(user): every API token minted for the user so far is
-- refused from now on; returns the new generation (tokens minted after this
-- carry it).  Unknown user: P0002, nothing written.
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
