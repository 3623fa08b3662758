-- =============================================================================
-- Revision 0009: recent titles (frozen)
-- "Don't repeat yesterday" moves to generation: ootd.recent_titles(day) lists
-- the titles each archetype x weather served in the 3 days before a day; the
-- nightly batch reads it once per run, puts the titles in each cluster's
-- prompt and rejects a pool that repeats one.
-- =============================================================================
SET ROLE ootd_owner;

-- ootd.recent_titles(day): the titles each archetype x weather served in the
-- three days before `day` ([day - 3, day - 1]), for the nightly batch: its
-- prompt asks the model not to repeat them and its validation rejects a pool
-- that does.  One row per archetype x weather that had a pool in that window
-- (at most archetypes x weather conditions rows, like cluster_demand; never
-- per user), read once per run; titles most recently served first, each once.
CREATE FUNCTION ootd.recent_titles(p_day date)
RETURNS TABLE (archetype text, weather text, titles text[])
LANGUAGE sql STABLE
AS $$
    SELECT t.archetype, t.weather, array_agg(t.title ORDER BY t.last_served DESC, t.title)
    FROM (
        SELECT p.archetype, p.weather, o.title, max(o.pool_date) AS last_served
        FROM ootd.pools p
        JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id
        WHERE p.pool_date BETWEEN p_day - 3 AND p_day - 1
        GROUP BY p.archetype, p.weather, o.title
    ) AS t
    GROUP BY t.archetype, t.weather
    ORDER BY t.archetype, t.weather
$$;
COMMENT ON FUNCTION ootd.recent_titles(date) IS
    'Titles each archetype x weather served in the 3 days before a day, most recent first: what its nightly prompt must not repeat.';

GRANT EXECUTE ON FUNCTION ootd.recent_titles(date) TO ootd_batch;

RESET ROLE;
