-- =============================================================================
-- Revision 0018, part a (down): back to per-cluster recent titles (frozen; issue 27)
-- =============================================================================
SET ROLE ootd_owner;

-- ootd.store_pool(...): store one validated pool durably, atomically.
-- outfits = [{"title","daypart","category","color","pieces","vibe","trend",
-- "dare","reason","embedding":[32 numbers]}, ...], exactly 10 Daytime + 10
-- NightOut.  A pool that already exists is never overwritten (SQLSTATE 23505):
-- re-runs skip finished clusters before calling the LLM.
CREATE OR REPLACE FUNCTION ootd.store_pool(p_pool_date date, p_cluster_id text, p_provider text, p_model text,
                                p_members integer, p_outfits jsonb)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_parts  text[] := regexp_match(p_cluster_id, '^(\d{8})_([A-Z][A-Za-z]+)_([A-Z][A-Za-z]+)$');
    v_count  integer;
    v_day    integer;
BEGIN
    IF v_parts IS NULL OR v_parts[1] <> to_char(p_pool_date, 'YYYYMMDD') THEN
        RAISE EXCEPTION 'cluster id "%" does not match YYYYMMDD_Archetype_Weather for %', p_cluster_id, p_pool_date
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(p_outfits) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'pool % must be a JSON array of outfits', p_cluster_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_count := jsonb_array_length(p_outfits);
    SELECT count(*) INTO v_day FROM jsonb_array_elements(p_outfits) o WHERE o ->> 'daypart' = 'Daytime';
    IF v_count <> 20 OR v_day <> 10 THEN
        RAISE EXCEPTION 'pool % must hold 10 Daytime and 10 NightOut outfits, got % and %',
                        p_cluster_id, v_day, v_count - v_day
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO ootd.pools (pool_date, cluster_id, archetype, weather, model, members, provider)
    VALUES (p_pool_date, p_cluster_id, v_parts[2], v_parts[3], p_model, p_members, p_provider)
    ON CONFLICT (pool_date, cluster_id) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pool % already exists', p_cluster_id
            USING ERRCODE = 'unique_violation';
    END IF;

    INSERT INTO ootd.outfits (pool_date, cluster_id, slot, daypart, title, category, color, pieces,
                              vibe, trend, dare, reason, embedding)
    SELECT p_pool_date, p_cluster_id, o.ordinality::smallint, o.value ->> 'daypart', o.value ->> 'title',
           o.value ->> 'category', o.value ->> 'color',
           ARRAY(SELECT jsonb_array_elements_text(o.value -> 'pieces')),
           (o.value ->> 'vibe')::real, (o.value ->> 'trend')::real, (o.value ->> 'dare')::real,
           o.value ->> 'reason', (o.value ->> 'embedding')::public.vector(32)
    FROM jsonb_array_elements(p_outfits) WITH ORDINALITY AS o(value, ordinality);
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION ootd.store_pool(date, text, text, text, integer, jsonb) IS
    'Store one pool of 20 outfits (10 Daytime, 10 NightOut) with embeddings, atomically; never overwrites.';

DROP FUNCTION ootd.taken_titles(date);
DROP FUNCTION ootd._title_key(text);

-- ootd.recent_titles(day): the titles each archetype x weather served in the
-- three days before `day` ([day - 3, day - 1]), for the nightly batch: its
-- prompt asks the model not to repeat them and its validation rejects a pool
-- that does.  One row per archetype x weather that had a pool in that window
-- (at most archetypes x weather conditions rows, like cluster_demand; never
-- per user), read once per run; titles most recently served first, each once.
-- PL/pgSQL so that Citus plans its query on a coordinator (a SQL function
-- with a parameter over a Citus table is refused there).
CREATE FUNCTION ootd.recent_titles(p_day date)
RETURNS TABLE (archetype text, weather text, titles text[])
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT t.archetype, t.weather, array_agg(t.title ORDER BY t.last_served DESC, t.title)
    FROM (
        SELECT p.archetype, p.weather, o.title, max(o.pool_date) AS last_served
        FROM ootd.pools p
        JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id
        WHERE p.pool_date BETWEEN p_day - 3 AND p_day - 1
        GROUP BY p.archetype, p.weather, o.title
    ) AS t
    GROUP BY t.archetype, t.weather
    ORDER BY t.archetype, t.weather;
END
$$;
COMMENT ON FUNCTION ootd.recent_titles(date) IS
    'Titles each archetype x weather served in the 3 days before a day, most recent first: what its nightly prompt must not repeat.';

GRANT EXECUTE ON FUNCTION ootd.recent_titles(date) TO ootd_batch;

RESET ROLE;
