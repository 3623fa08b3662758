-- =============================================================================
-- ootd: likes (implicit feedback)
-- A like teaches the user's profile in a trigger on ootd.likes, whoever writes
-- it: ootd.like / ootd.unlike (what the API calls), a direct INSERT, UPDATE or
-- DELETE, COPY, a cascade from a deleted user, TRUNCATE.  The learned profile
-- is a function of the stated profile (kept while the user has likes) and the
-- user's current likes, derived afresh from them on every change: any mix of
-- writers, orders and batches gives the same profile, and an unlike restores
-- it bit for bit.
-- On Citus the triggers run on the shards (citus.enable_unsafe_triggers,
-- db/citus.sql): likes and users are co-located by user id, so the update
-- they make is to the user's shard on the same worker (docs/scaling.md).
-- =============================================================================

-- ------------------------------------------------------------------- tables --
CREATE TABLE ootd.likes (
    user_id   bigint NOT NULL REFERENCES ootd.users (id) ON DELETE CASCADE,
    outfit_id bigint NOT NULL REFERENCES ootd.outfits (id),
    liked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, outfit_id)
);
CREATE INDEX likes_outfit_id_idx ON ootd.likes (outfit_id);
COMMENT ON TABLE ootd.likes IS 'Implicit feedback: a row per liked outfit; its triggers teach the user''s profile.';

-- ootd._learned_mean(stated, sum, likes): a mean as served: the stated value
-- (one observation; 0.5 when none is stated) and the likes' sum over 1 + likes
-- observations, in numeric, clamped to 0..1, rounded to 12 decimals (trailing
-- zeros trimmed).  (No SET clause: the planner inlines it.)
CREATE FUNCTION ootd._learned_mean(p_stated jsonb, p_sum numeric, p_likes integer)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT trim_scale(round(least(1, greatest(0, (coalesce(p_stated::numeric, 0.5) + p_sum) / (1 + p_likes))), 12))
$$;
COMMENT ON FUNCTION ootd._learned_mean(jsonb, numeric, integer) IS
    'Private: a mean of the stated value and the likes'' sum (numeric, 0..1, 12 decimals).';

-- ootd._archetype_affinities(dna): the profile's affinity to each archetype,
-- as the score reads it and learning starts from: style_dna.archetype_affinity
-- when the profile has one (learned, or stated), else the stated archetype
-- (the default archetype without one: the archetype whose pool the user is
-- served) seeded at 1, as one like of it.  The one home of that seed.  (No
-- SET clause: the planner inlines it.)
CREATE FUNCTION ootd._archetype_affinities(p_dna jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(p_dna -> 'archetype_affinity',
                    jsonb_build_object(coalesce(p_dna ->> 'archetype', ootd.default_archetype()), 1))
$$;
COMMENT ON FUNCTION ootd._archetype_affinities(jsonb) IS
    'Private: archetype -> affinity of a profile: style_dna.archetype_affinity, else {stated archetype: 1}.';

-- ootd._archetype_affinity(affinities, archetype): the affinity to one
-- archetype in a profile's ootd._archetype_affinities (0 when it has none, or
-- for NULL).  The document is an argument so that a ranking computes it once.
CREATE FUNCTION ootd._archetype_affinity(p_affinities jsonb, p_archetype text)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT greatest(coalesce((p_affinities ->> p_archetype)::double precision, 0), 0)
$$;
COMMENT ON FUNCTION ootd._archetype_affinity(jsonb, text) IS
    'Private: the affinity to an archetype in a profile''s ootd._archetype_affinities, 0 without one.';

-- ootd._learn(user): the one home of learning.  The user's profile from their
-- stated profile and their current likes, under a lock on the user row (FOR
-- NO KEY UPDATE; the likes are read by the next statement, afresh, so a
-- concurrent like of the same user that committed first is counted).  With n
-- likes and W = 1 + n (the stated profile counts as one observation):
--   likes_count         n
--   stated_dna,         the profile as stated, kept from the first like on
--   stated_taste(_norm) (NULL again when no like is left)
--   vibe, trend, dare   (stated value, 0.5 if none + sum of the likes' values)
--                       / W, in numeric, clamped to 0..1, 12 decimals
--   taste, taste_norm   direction (unit) and length of (stated taste x stated
--                       norm + sum of the liked embeddings, added in outfit id
--                       order) / W; the stated taste stays where that is ~0
--   category_affinity   stated + the likes of each category
--   color_affinity      stated (else the stated preferred colors seeded at
--                       0.5, 0.499, ... in stated order, so they rank below any
--                       liked color and keep their order) + the likes of each
--   preferred_colors    the strongest 8 of color_affinity by strength, then
--                       the latest like of the color (liked_at), then name
--   archetype_affinity  stated (ootd._archetype_affinities: else the stated
--                       archetype seeded at 1) + the likes of outfits drawn
--                       from a pool of each archetype (outfit -> ootd.pools)
-- With no like left, the stated profile comes back verbatim.  Every value is
-- derived afresh from the stated profile and the current likes (exact sums,
-- a fixed order for the float ones): it does not depend on who wrote the
-- likes, in what order or in how many statements.  One query reads the likes
-- (each liked outfit by its key: LATERAL ... OFFSET 0 keeps that plan
-- whatever the statistics of a fresh likes table say), one UPDATE writes;
-- the users CHECK validates it like any other.
CREATE FUNCTION ootd._learn(p_user_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u       ootd.users;
    v_dna   jsonb;                     -- the profile as stated
    v_taste public.vector;
    v_norm  real;
    v       record;
    v_total public.vector;
BEGIN
    SELECT * INTO u FROM ootd.users WHERE id = p_user_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;                        -- the user is being deleted (their likes cascade)
    END IF;
    v_dna   := coalesce(u.stated_dna, u.style_dna);
    v_taste := CASE WHEN u.stated_dna IS NULL THEN u.taste ELSE u.stated_taste END;
    v_norm  := CASE WHEN u.stated_dna IS NULL THEN u.taste_norm ELSE u.stated_taste_norm END;
    WITH liked AS MATERIALIZED (
        SELECT x.id, x.category, x.color, x.vibe, x.trend, x.dare, x.embedding, l.liked_at,
               (SELECT p.archetype FROM ootd.pools p WHERE p.pool_date = x.pool_date AND p.cluster_id = x.cluster_id)
                   AS archetype
        FROM ootd.likes l
        CROSS JOIN LATERAL (SELECT o.* FROM ootd.outfits o WHERE o.id = l.outfit_id OFFSET 0) x
        WHERE l.user_id = p_user_id),
    colors AS (
        SELECT c.key, sum(c.strength) AS strength, max(c.liked_at) AS last_liked
        FROM (SELECT e.key, e.value::numeric AS strength, NULL::timestamptz AS liked_at
              FROM jsonb_each(v_dna -> 'color_affinity') e
              UNION ALL
              SELECT e.color, trim_scale(0.5 - 0.001 * (e.i - 1)), NULL
              FROM jsonb_array_elements_text(CASE WHEN NOT v_dna ? 'color_affinity' THEN v_dna -> 'preferred_colors' END)
                   WITH ORDINALITY AS e(color, i)
              UNION ALL
              SELECT k.color, 1, k.liked_at FROM liked k) c
        GROUP BY c.key)
    SELECT (SELECT count(*)::integer FROM liked) AS n,
           (SELECT sum(k.vibe::numeric) FROM liked k) AS vibe,
           (SELECT sum(k.trend::numeric) FROM liked k) AS trend,
           (SELECT sum(k.dare::numeric) FROM liked k) AS dare,
           (SELECT public.sum(k.embedding ORDER BY k.id) FROM liked k) AS embedding,
           (SELECT coalesce(jsonb_object_agg(c.key, c.total) FILTER (WHERE c.total > 0), '{}')
            FROM (SELECT c.key, sum(c.n) AS total
                  FROM (SELECT e.key, e.value::numeric AS n FROM jsonb_each(v_dna -> 'category_affinity') e
                        UNION ALL
                        SELECT k.category, 1 FROM liked k) c
                  GROUP BY c.key) c) AS category_affinity,
           (SELECT coalesce(jsonb_object_agg(c.key, c.strength) FILTER (WHERE c.strength > 0), '{}')
            FROM colors c) AS color_affinity,
           (SELECT coalesce(jsonb_object_agg(c.key, c.total) FILTER (WHERE c.total > 0), '{}')
            FROM (SELECT c.key, sum(c.n) AS total
                  FROM (SELECT e.key, e.value::numeric AS n FROM jsonb_each(ootd._archetype_affinities(v_dna)) e
                        UNION ALL
                        SELECT k.archetype, 1 FROM liked k WHERE k.archetype IS NOT NULL) c
                  GROUP BY c.key) c) AS archetype_affinity,
           (SELECT coalesce(jsonb_agg(t.key ORDER BY t.strength DESC, t.last_liked DESC NULLS LAST, t.key), '[]')
            FROM (SELECT c.key, c.strength, c.last_liked FROM colors c WHERE c.strength > 0
                  ORDER BY c.strength DESC, c.last_liked DESC NULLS LAST, c.key LIMIT 8) t) AS preferred_colors
      INTO v;
    IF v.n = 0 THEN
        PERFORM ootd._forget_likes(p_user_id);
        RETURN;
    END IF;
    v_total := CASE WHEN v_taste IS NULL THEN v.embedding
                    ELSE v_taste OPERATOR(public.*) array_fill(v_norm, ARRAY[public.vector_dims(v_taste)])::public.vector
                         OPERATOR(public.+) v.embedding END;
    UPDATE ootd.users
    SET style_dna         = v_dna || jsonb_build_object(
                                'category_affinity', v.category_affinity,
                                'color_affinity', v.color_affinity,
                                'preferred_colors', v.preferred_colors,
                                'archetype_affinity', v.archetype_affinity,
                                'vibe', ootd._learned_mean(v_dna -> 'vibe', v.vibe, v.n),
                                'trend', ootd._learned_mean(v_dna -> 'trend', v.trend, v.n),
                                'dare', ootd._learned_mean(v_dna -> 'dare', v.dare, v.n)),
        taste             = CASE WHEN public.vector_norm(v_total) > 1e-6 * (1 + v.n) THEN public.l2_normalize(v_total)
                                 ELSE v_taste END,
        taste_norm        = CASE WHEN public.vector_norm(v_total) > 1e-6 * (1 + v.n)
                                 THEN (public.vector_norm(v_total) / (1 + v.n))::real ELSE v_norm END,
        likes_count       = v.n,
        stated_dna        = v_dna,
        stated_taste      = v_taste,
        stated_taste_norm = v_norm,
        updated_at        = now()
    WHERE id = p_user_id;
END
$$;
COMMENT ON FUNCTION ootd._learn(bigint) IS
    'Private: a user''s profile from their stated profile and current likes, under a row lock: the one home of learning.';

-- ootd._forget_likes(user): the user has no like left: the stated profile
-- comes back verbatim (style_dna, taste, taste_norm) and the learning state
-- empties.  A user without learning state keeps their profile.
CREATE FUNCTION ootd._forget_likes(p_user_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE ootd.users
    SET style_dna         = coalesce(stated_dna, style_dna),
        taste             = CASE WHEN stated_dna IS NULL THEN taste ELSE stated_taste END,
        taste_norm        = coalesce(stated_taste_norm, taste_norm),
        likes_count       = 0,
        stated_dna        = NULL,
        stated_taste      = NULL,
        stated_taste_norm = NULL,
        updated_at        = now()
    WHERE id = p_user_id;
END
$$;
COMMENT ON FUNCTION ootd._forget_likes(bigint) IS
    'Private: a user whose last like went: the stated profile back verbatim, the learning state emptied.';

-- ootd._likes_changed(): the likes triggers (statement level, with transition
-- tables "added" and "removed"): each user whose likes changed is learned
-- once, in user id order (two statements over the same users lock them in the
-- same order: no deadlock), by ootd._learn.  SECURITY DEFINER: whoever may
-- write a like, the profile learns it.
-- The users go into an array first: Citus cannot ship a named tuplestore
-- inside a query over a distributed table ("executor could not find named
-- tuplestore"), and ootd._learn's queries are routed to the user's shard.
CREATE FUNCTION ootd._likes_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_users bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT a.user_id ORDER BY a.user_id) INTO v_users FROM added a;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT r.user_id ORDER BY r.user_id) INTO v_users FROM removed r;
    ELSE                               -- UPDATE: the users of the old rows and of the new ones
        SELECT array_agg(DISTINCT c.user_id ORDER BY c.user_id) INTO v_users
        FROM (SELECT r.user_id FROM removed r UNION ALL SELECT a.user_id FROM added a) c;
    END IF;
    FOR i IN 1 .. coalesce(cardinality(v_users), 0) LOOP
        PERFORM ootd._learn(v_users[i]);
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._likes_changed() IS
    'Private: the likes triggers: learn each user whose likes a statement changed (ootd._learn), in user id order.';

-- ootd._likes_truncated(): after TRUNCATE ootd.likes nobody has a like:
-- every user's stated profile comes back (ootd._forget_likes).  On Citus the
-- trigger fires on the coordinator's table and on each shard, where a query
-- over every user is refused: TRUNCATE is refused on any Citus node (0A000,
-- nothing changes), and DELETE FROM ootd.likes unlearns shard by shard instead.
CREATE FUNCTION ootd._likes_truncated()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_users bigint[];
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus') THEN
        RAISE EXCEPTION 'TRUNCATE ootd.likes cannot take back what the likes taught on a Citus cluster'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'DELETE FROM ootd.likes takes every like back and restores each stated profile.';
    END IF;
    SELECT array_agg(u.id ORDER BY u.id) INTO v_users FROM ootd.users u WHERE u.likes_count > 0;
    FOR i IN 1 .. coalesce(cardinality(v_users), 0) LOOP
        PERFORM ootd._forget_likes(v_users[i]);
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._likes_truncated() IS
    'Private: the TRUNCATE trigger of ootd.likes: every user''s stated profile comes back.';

-- ootd.like(user, outfit): record a like; true if it is new, false if the user
-- had already liked the outfit (then nothing changes).  The likes trigger
-- learns it in the same statement.  Unknown user or outfit: 23503
-- foreign_key_violation.  On Citus it runs on the worker that holds the user
-- (distributed by p_user_id, co-located with ootd.users).
CREATE FUNCTION ootd.like(p_user_id bigint, p_outfit_id bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_like_target(p_user_id, p_outfit_id);
    INSERT INTO ootd.likes (user_id, outfit_id) VALUES (p_user_id, p_outfit_id)
    ON CONFLICT (user_id, outfit_id) DO NOTHING;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION ootd.like(bigint, bigint) IS
    'Like an outfit: true if new, false if already liked; the likes trigger updates style_dna and taste.';

-- ootd.unlike(user, outfit): take a like back; true if there was one.  The
-- likes trigger takes its effect on the profile back in the same statement.
-- Unknown user or outfit: 23503 foreign_key_violation.
CREATE FUNCTION ootd.unlike(p_user_id bigint, p_outfit_id bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_like_target(p_user_id, p_outfit_id);
    DELETE FROM ootd.likes l WHERE l.user_id = p_user_id AND l.outfit_id = p_outfit_id;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION ootd.unlike(bigint, bigint) IS
    'Take a like back: true if the user had liked the outfit; the likes trigger reverses its effect on the profile.';

-- ootd._check_like_target(user, outfit): the readable errors of like/unlike.
CREATE FUNCTION ootd._check_like_target(p_user_id bigint, p_outfit_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ootd.users u WHERE u.id = p_user_id) THEN
        RAISE EXCEPTION 'unknown user %', coalesce(p_user_id::text, 'NULL')
            USING ERRCODE = 'foreign_key_violation', TABLE = 'users', SCHEMA = 'ootd';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ootd.outfits o WHERE o.id = p_outfit_id) THEN
        RAISE EXCEPTION 'unknown outfit %', coalesce(p_outfit_id::text, 'NULL')
            USING ERRCODE = 'foreign_key_violation', TABLE = 'outfits', SCHEMA = 'ootd';
    END IF;
END
$$;
COMMENT ON FUNCTION ootd._check_like_target(bigint, bigint) IS
    'Private: raises 23503 naming the unknown user or outfit of a like/unlike.';

-- ----------------------------------------------------------------- triggers --
-- Statement level, with transition tables: a COPY of 100,000 likes learns each
-- user once (bench/likes.py).  (A transition table serves one event only,
-- hence one trigger per event.)
CREATE TRIGGER likes_learn_deleted AFTER DELETE ON ootd.likes
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION ootd._likes_changed();
CREATE TRIGGER likes_learn_inserted AFTER INSERT ON ootd.likes
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION ootd._likes_changed();
CREATE TRIGGER likes_learn_updated AFTER UPDATE ON ootd.likes
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION ootd._likes_changed();
CREATE TRIGGER likes_learn_truncated AFTER TRUNCATE ON ootd.likes
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._likes_truncated();
