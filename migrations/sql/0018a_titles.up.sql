-- =============================================================================
-- Revision 0018, part a (up): titles unique across pools (frozen; issue 27)
-- "Don't repeat yesterday" was per archetype x weather (ootd.recent_titles),
-- but the feed serves a user their cluster's pool plus the same-weather
-- neighbour pools of their date, so another cluster's title could reach them
-- on consecutive days.  The rule now spans every pool: ootd.taken_titles(day)
-- lists the titles of all pools dated within 3 days of a day (the day
-- included), the nightly avoids them (prompt, validation, offline stylist),
-- and ootd.store_pool refuses a pool that uses one (23P01), under one
-- advisory lock so that concurrent stores cannot both pass the check.
-- Existing pools are kept as they are (never rewritten).
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd.recent_titles(date);

-- ootd._title_key(title): what makes two titles the same title: their words,
-- whatever the spacing and case ("  grey fleece  zip-up track set" is "Grey
-- Fleece Zip-Up Track Set").  batch/titles.py's title_key compares the same way.
CREATE FUNCTION ootd._title_key(p_title text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT lower(btrim(regexp_replace(p_title, '\s+', ' ', 'g')))
$$;
COMMENT ON FUNCTION ootd._title_key(text) IS 'Private: a title''s words in lower case, single-spaced: equal keys are the same title.';

-- ootd.taken_titles(day): the titles a new pool of `day` must not use, the
-- one home of the rule "no repeats across pools": every title of every pool
-- (any cluster) dated within 3 days of `day`, the day itself included
-- ([day - 3, day + 3]).  The feed serves a user their cluster's pool plus the
-- same-weather neighbour pools of their local date, so a title shared by two
-- pools of one date, or by pools of nearby dates, could reach one user twice
-- on one day or on consecutive days.  The window is symmetric so that the
-- rule holds whatever order pools are stored in (a failed cluster retried by
-- ootd.generate_pool after the next day's nightly ran).  One row per title
-- and pool, nearest date first; ootd.store_pool refuses a pool that uses one,
-- and the nightly reads them once per run for its prompts, its validation and
-- the offline stylist.  At most 7 days of pools (a few thousand rows).
-- PL/pgSQL so that Citus plans its query on a coordinator (a SQL function
-- with a parameter over a Citus table is refused there).
CREATE FUNCTION ootd.taken_titles(p_day date)
RETURNS TABLE (title text, pool_date date, cluster_id text, archetype text, weather text)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT o.title, p.pool_date, p.cluster_id, p.archetype, p.weather
    FROM ootd.pools p
    JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id
    WHERE p.pool_date BETWEEN p_day - 3 AND p_day + 3
    ORDER BY abs(p.pool_date - p_day), p.pool_date DESC, p.cluster_id, o.slot;
END
$$;
COMMENT ON FUNCTION ootd.taken_titles(date) IS
    'Every title of every pool dated within 3 days of a day (the day included), nearest first: what a new pool of that day must not use.';

-- ootd.store_pool(...): store one validated pool durably, atomically.
-- outfits = [{"title","daypart","category","color","pieces","vibe","trend",
-- "dare","reason","embedding":[32 numbers]}, ...], exactly 10 Daytime + 10
-- NightOut.  A pool that already exists is never overwritten (SQLSTATE 23505):
-- re-runs skip finished clusters before calling the LLM.  A pool using a title
-- of ootd.taken_titles(day) (another pool of the day, or of the 3 days before
-- or after) is refused (SQLSTATE 23P01, naming each title, its outfit number
-- and the pool that has it).  Stores take one transaction-scoped advisory lock,
-- so two concurrent stores (the nightly, ootd.generate_pool, a DBA) never both
-- pass the check with the same title: the second waits for the first to end,
-- then (READ COMMITTED: each statement a new snapshot) sees its pool.  Under
-- REPEATABLE READ the transaction's snapshot predates the wait, so it is
-- refused (25000); SERIALIZABLE is safe (a conflicting pair fails with 40001).
CREATE OR REPLACE FUNCTION ootd.store_pool(p_pool_date date, p_cluster_id text, p_provider text, p_model text,
                                p_members integer, p_outfits jsonb)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_parts  text[] := regexp_match(p_cluster_id, '^(\d{8})_([A-Z][A-Za-z]+)_([A-Z][A-Za-z]+)$');
    v_count   integer;
    v_day     integer;
    v_repeats text;
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

    IF current_setting('transaction_isolation') = 'repeatable read' THEN
        RAISE EXCEPTION 'ootd.store_pool cannot check pool %''s titles under REPEATABLE READ: its snapshot would miss a pool stored while it waited',
                        p_cluster_id
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Store pools under READ COMMITTED (the default) or SERIALIZABLE.';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ootd.store_pool'));

    INSERT INTO ootd.pools (pool_date, cluster_id, archetype, weather, model, members, provider)
    VALUES (p_pool_date, p_cluster_id, v_parts[2], v_parts[3], p_model, p_members, p_provider)
    ON CONFLICT (pool_date, cluster_id) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pool % already exists', p_cluster_id
            USING ERRCODE = 'unique_violation';
    END IF;

    -- The pool row is new, so no outfit of its own is among the taken titles.
    -- A hash join of the 20 new keys with the taken ones; only the matches are sorted.
    WITH taken AS MATERIALIZED (
        SELECT ootd._title_key(t.title) AS title_key, t.pool_date, t.cluster_id
        FROM ootd.taken_titles(p_pool_date) t
    ), repeats AS (
        SELECT DISTINCT ON (o.ordinality) o.ordinality, o.value ->> 'title' AS title, t.cluster_id
        FROM jsonb_array_elements(p_outfits) WITH ORDINALITY AS o(value, ordinality)
        JOIN taken t ON t.title_key = ootd._title_key(o.value ->> 'title')
        ORDER BY o.ordinality, abs(t.pool_date - p_pool_date), t.pool_date DESC, t.cluster_id
    )
    SELECT string_agg(format('"%s" (outfit %s, in %s)', r.title, r.ordinality, r.cluster_id), ', '
                      ORDER BY r.ordinality)
    INTO v_repeats
    FROM repeats r;
    IF v_repeats IS NOT NULL THEN
        RAISE EXCEPTION 'pool % uses titles already taken by pools within 3 days: %', p_cluster_id, v_repeats
            USING ERRCODE = 'exclusion_violation',
                  HINT = 'Titles are unique across all pools dated within 3 days of each other; ootd.taken_titles(date) lists them.';
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
    'Store one pool of 20 outfits (10 Daytime, 10 NightOut) with embeddings, atomically; never overwrites; refuses (23P01) a title of ootd.taken_titles(date).';

GRANT EXECUTE ON FUNCTION ootd._title_key(text), ootd.taken_titles(date) TO ootd_batch;

RESET ROLE;
