-- =============================================================================
-- Revision 0018, part b (up): simulated users' hidden truth (frozen; issue 27)
-- Schema ootd_truth: each seeded user's true taste, liked and disliked colors
-- and categories, loyalty to the archetype and traits, with the true utility
-- of an outfit and the like probability (the simulation's, never the
-- ranking's: no role is granted anything on it).  Existing users get no
-- truth: only `ootd seed` writes one, for the users it creates.
-- =============================================================================
-- On a distributed schema (Citus: an upgrade runs with DDL propagation on)
-- this part is created on the coordinator alone, as on a fresh install, and
-- db/citus.sql places it on every node (the table co-located with ootd.users,
-- its key, the functions); propagation is restored at the end of the part.
SELECT pg_catalog.set_config('ootd.truth_ddl_propagation', pg_catalog.current_setting('citus.enable_ddl_propagation'), true),
       pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true)
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus');

CREATE SCHEMA ootd_truth AUTHORIZATION ootd_owner;
COMMENT ON SCHEMA ootd_truth IS
    'Hidden truth of the simulated (seeded) users: read by the simulation only, never by the ranking.';

SET ROLE ootd_owner;

-- A new schema grants PUBLIC nothing (no USAGE), and no role is granted anything below.

-- ------------------------------------------------------------------- tables --
-- One row per seeded user.  The liked and disliked sets are disjoint; the
-- stated profile in ootd.users holds a few of the liked colors (the strongest
-- ones), a subset of the dislikes (for the users who state vetoes), the
-- archetype (unless the user left it out) and the taste with noise.
CREATE TABLE ootd_truth.users (
    user_id             bigint PRIMARY KEY,
    archetype           text NOT NULL,
    loyalty             real NOT NULL CHECK (loyalty BETWEEN 0 AND 1),
    taste               public.vector(32) NOT NULL,
    liked_colors        text[] NOT NULL,
    disliked_colors     text[] NOT NULL,
    liked_categories    text[] NOT NULL,
    disliked_categories text[] NOT NULL,
    vibe                real NOT NULL CHECK (vibe BETWEEN 0 AND 1),
    trend               real NOT NULL CHECK (trend BETWEEN 0 AND 1),
    dare                real NOT NULL CHECK (dare BETWEEN 0 AND 1),
    CONSTRAINT users_likes_and_dislikes_disjoint
        CHECK (NOT liked_colors && disliked_colors AND NOT liked_categories && disliked_categories)
);
COMMENT ON TABLE ootd_truth.users IS
    'What each seeded user really likes (hidden from the ranking); ootd.users holds a noisy, partial view of it.';
COMMENT ON COLUMN ootd_truth.users.archetype IS 'The true archetype (the stated one, unless the user left it out).';
COMMENT ON COLUMN ootd_truth.users.loyalty IS 'Loyalty to the archetype, 0..1: the utility bonus of an outfit drawn from a pool of it.';
COMMENT ON COLUMN ootd_truth.users.taste IS 'True taste (unit vector in the outfit-embedding space); ootd.users.taste is it plus noise.';
COMMENT ON COLUMN ootd_truth.users.liked_colors IS 'Colors the user really likes, strongest first; the stated preferred_colors are the first 1 to 4.';
COMMENT ON COLUMN ootd_truth.users.vibe IS 'True vibe (vibe, trend, dare: stored for the simulation; not in the utility).';

-- The key to ootd.users.  On a distributed schema a local table cannot
-- reference the distributed ootd.users: db/citus.sql co-locates the table
-- with it first and adds the key then.  A fresh install has no distributed table yet: the key
-- is added here and kept when db/citus.sql places the table (as ootd.likes's).
DO $key$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus') THEN
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = 'ootd.users'::regclass) THEN
            RETURN;
        END IF;
    END IF;
    ALTER TABLE ootd_truth.users ADD CONSTRAINT users_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES ootd.users (id) ON DELETE CASCADE;
END
$key$;

-- ---------------------------------------------------------------- functions --
-- ootd_truth.utility(truth, outfit, pool archetype): THE true utility of an
-- outfit for a simulated user, the one home of the rule (every other function
-- here calls it):
--     1.0 x cosine(true taste, outfit embedding)
--   + 0.5 x [outfit color in liked_colors]      - 1.0 x [in disliked_colors]
--   + 0.5 x [outfit category in liked_categories] - 1.0 x [in disliked_categories]
--   + loyalty x [the outfit's pool archetype = the true archetype]
-- Range about -2.9 .. 3.0.  Pure: an SQL expression without settings, so the
-- planner inlines it into the caller's query (no call per row).
CREATE FUNCTION ootd_truth.utility(t ootd_truth.users, o ootd.outfits, p_pool_archetype text)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT 1.0 * (1.0 - (t.taste OPERATOR(public.<=>) o.embedding))
         + 0.5 * (o.color = ANY (t.liked_colors))::integer
         - 1.0 * (o.color = ANY (t.disliked_colors))::integer
         + 0.5 * (o.category = ANY (t.liked_categories))::integer
         - 1.0 * (o.category = ANY (t.disliked_categories))::integer
         + t.loyalty * (p_pool_archetype IS NOT DISTINCT FROM t.archetype)::integer
$$;
COMMENT ON FUNCTION ootd_truth.utility(ootd_truth.users, ootd.outfits, text) IS
    'The true utility of an outfit for a simulated user (the one home of the rule): cosine(true taste, embedding) '
    '+ 0.5 liked color - 1 disliked color + 0.5 liked category - 1 disliked category + loyalty x same archetype as the pool.';

-- ootd_truth.like_probability(utility): the probability that a simulated user
-- likes an outfit they are shown, a logistic in the true utility:
--     p = 1 / (1 + exp(-2 x (utility - 2.6)))
-- calibrated on the demo population (docs/evaluation.md, "Simulated users"):
-- about 24% on each user's own best 3 outfits of a day by the truth, about
-- 12% on the top 3 ootd.feed serves, about 8% on a random outfit of the
-- user's own pool, under 2% on a random outfit of the day.
CREATE FUNCTION ootd_truth.like_probability(p_utility double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT 1.0 / (1.0 + exp(-2.0 * (p_utility - 2.6)))
$$;
COMMENT ON FUNCTION ootd_truth.like_probability(double precision) IS
    'Probability that a simulated user likes an outfit shown to them: 1 / (1 + exp(-2 (utility - 2.6))).';

-- ootd_truth.utility(user, outfit): the utility of one outfit for one user
-- (NULL when the user has no truth, i.e. was not seeded, or the outfit is unknown).
CREATE FUNCTION ootd_truth.utility(p_user_id bigint, p_outfit_id bigint)
RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT ootd_truth.utility(t, o, p.archetype)
    FROM ootd_truth.users t, ootd.outfits o
    JOIN ootd.pools p ON p.pool_date = o.pool_date AND p.cluster_id = o.cluster_id
    WHERE t.user_id = p_user_id AND o.id = p_outfit_id
$$;
COMMENT ON FUNCTION ootd_truth.utility(bigint, bigint) IS
    'The true utility of one outfit for one simulated user (NULL without a truth or an outfit).';

-- ootd_truth.utilities(date, users): every outfit of the date's pools for
-- every simulated user listed (all of them when NULL), with its utility and
-- like probability: what the 1:1 upper bound ranks (its best 3 per user).
-- Users without a truth are left out.
CREATE FUNCTION ootd_truth.utilities(p_pool_date date, p_user_ids bigint[] DEFAULT NULL)
RETURNS TABLE (user_id bigint, outfit_id bigint, utility double precision, like_probability double precision)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT t.user_id, o.id, u.utility, ootd_truth.like_probability(u.utility)
    FROM ootd_truth.users t
    CROSS JOIN ootd.outfits o
    JOIN ootd.pools p ON p.pool_date = o.pool_date AND p.cluster_id = o.cluster_id
    CROSS JOIN LATERAL (SELECT ootd_truth.utility(t, o, p.archetype) AS utility) u
    WHERE o.pool_date = p_pool_date
      AND (p_user_ids IS NULL OR t.user_id = ANY (p_user_ids))
$$;
COMMENT ON FUNCTION ootd_truth.utilities(date, bigint[]) IS
    'Every outfit of a pool date for every listed simulated user (NULL: all), with its true utility and like probability.';

-- Only the owner (and its members: DATABASE_URL's user) reads the truth; no role is granted anything.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd_truth FROM PUBLIC;

RESET ROLE;

SELECT pg_catalog.set_config('citus.enable_ddl_propagation', pg_catalog.current_setting('ootd.truth_ddl_propagation'), true)
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus');
