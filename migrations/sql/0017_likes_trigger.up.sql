-- =============================================================================
-- Revision 0017: likes learn in a trigger again, exactly (frozen)
-- Statement-level triggers on ootd.likes are the one home of learning
-- (ootd._learn): every writer learns, COPY and DELETE included.  Users keep
-- their stated profile (stated_dna, stated_taste, stated_taste_norm) and
-- exact sums over their likes (like_sums) while they have likes, so an
-- unlike restores the profile bit for bit.  Users who had likes are
-- re-learned from their likes: their current profile, with the likes it
-- counted taken back by 0014's arithmetic, becomes the stated one.
-- On a distributed schema (Citus) `ootd migrate` runs this revision with
-- citus.enable_unsafe_triggers on (db/citus.py).
-- =============================================================================
SET ROLE ootd_owner;

ALTER TABLE ootd.users
    ADD COLUMN stated_dna jsonb,
    ADD COLUMN stated_taste public.vector(32),
    ADD COLUMN stated_taste_norm real,
    ADD COLUMN like_sums numeric[];

COMMENT ON COLUMN ootd.users.likes_count IS 'The user''s rows in ootd.likes (kept by the likes trigger); with the stated profile as one more observation, the weight of the learned means.';
COMMENT ON COLUMN ootd.users.taste_norm IS 'Length of the mean of the stated taste and the liked embeddings, whose direction is taste.';
COMMENT ON COLUMN ootd.users.stated_dna IS 'While the user has likes: style_dna as stated before the first (ootd.put_user edits it too); it comes back verbatim with the last unlike.  NULL without likes.';
COMMENT ON COLUMN ootd.users.stated_taste IS 'While the user has likes: taste as stated before the first.  NULL without likes (or without a stated taste).';
COMMENT ON COLUMN ootd.users.stated_taste_norm IS 'While the user has likes: taste_norm as stated before the first.  NULL without likes.';
COMMENT ON COLUMN ootd.users.like_sums IS 'While the user has likes: exact sums over them of each liked outfit''s vibe, trend, dare and 32 embedding components (ootd._like_features), from which the means and taste derive.  NULL without likes.';
COMMENT ON TABLE ootd.likes IS 'Implicit feedback: a row per liked outfit; its triggers teach the user''s profile.';

-- ootd._add_counts(counts, delta): a {name: number} object with delta's
-- numbers added, key by key; a key reaching 0 or less goes.  Exact (numeric),
-- so adding a delta and then its opposite gives the object back verbatim.
CREATE FUNCTION ootd._add_counts(p_counts jsonb, p_delta jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_object_agg(t.key, t.total) FILTER (WHERE t.total > 0), '{}')
    FROM (SELECT key, coalesce(c.value::numeric, 0) + coalesce(d.value::numeric, 0) AS total
          FROM jsonb_each(coalesce(p_counts, '{}')) c FULL JOIN jsonb_each(coalesce(p_delta, '{}')) d USING (key)) t
$$;
COMMENT ON FUNCTION ootd._add_counts(jsonb, jsonb) IS
    'Private: counts plus delta, key by key (numeric, exact); keys reaching 0 or less go.';

-- ootd._learned_means(stated, sums, likes): vibe, trend and dare as served:
-- the mean of the stated value (one observation; 0.5 when none is stated)
-- and the likes' values, from the exact sums (users.like_sums[1:3]), in
-- numeric, clamped to 0..1 and rounded to 12 decimals (trailing zeros
-- trimmed).  '{}' for a user
-- without likes (sums NULL), whose style_dna is the stated one.
CREATE FUNCTION ootd._learned_means(p_stated jsonb, p_sums numeric[], p_likes integer)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_object_agg(m.key, trim_scale(round(least(1, greatest(0,
                        (coalesce((p_stated ->> m.key)::numeric, 0.5) + p_sums[m.i]) / (1 + p_likes))), 12))), '{}')
    FROM unnest(ARRAY['vibe', 'trend', 'dare']) WITH ORDINALITY AS m(key, i)
    WHERE p_sums IS NOT NULL
$$;
COMMENT ON FUNCTION ootd._learned_means(jsonb, numeric[], integer) IS
    'Private: {"vibe", "trend", "dare"}: the means of the stated values and the likes'' exact sums (12 decimals).';

-- ootd._learned_taste(stated taste, stated norm, sums, likes): taste as
-- served: the direction (unit, float4) and length (taste_norm) of the mean of
-- the stated taste (one observation of length stated_norm) and the liked
-- embeddings, from their exact sums (users.like_sums[4:35]).  Where that
-- mean vanishes (length <= 1e-6 per observation) the stated taste stays.
CREATE FUNCTION ootd._learned_taste(p_stated public.vector, p_stated_norm real, p_sums numeric[], p_likes integer,
                                    OUT taste public.vector, OUT taste_norm real)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN public.vector_norm(t.total) > 1e-6 * (1 + p_likes) THEN public.l2_normalize(t.total) ELSE p_stated END,
           CASE WHEN public.vector_norm(t.total) > 1e-6 * (1 + p_likes) THEN (public.vector_norm(t.total) / (1 + p_likes))::real
                ELSE p_stated_norm END
    FROM (SELECT array_agg(coalesce(s.value::numeric * p_stated_norm::numeric, 0) + e.value ORDER BY e.i)::real[]::public.vector AS total
          FROM unnest(p_sums[4:35]) WITH ORDINALITY AS e(value, i)
          LEFT JOIN unnest(p_stated::real[]) WITH ORDINALITY AS s(value, i) USING (i)) t
$$;
COMMENT ON FUNCTION ootd._learned_taste(public.vector, real, numeric[], integer) IS
    'Private: taste (unit) and taste_norm: the mean of the stated taste and the liked embeddings, from exact sums.';

-- ootd._learn(user, outfits, signs): the one home of learning.  Folds the
-- outfits liked (sign 1) or unliked (-1) by one user into their profile,
-- under a lock on the user row (FOR NO KEY UPDATE, then each statement reads
-- afresh: a concurrent like of the same user that committed first is seen,
-- never lost).  With n the user's likes and W = 1 + n (the stated profile
-- counts as one observation):
--   likes_count         n
--   stated_dna,         the profile as stated, kept from the first like on
--   stated_taste(_norm) (NULL again when no like is left)
--   like_sums           exact sums (numeric) over the likes of vibe, trend,
--                       dare and the 32 embedding components
--   vibe, trend, dare   (stated + sum) / W, rounded to 12 decimals
--                       (ootd._learned_means; a missing stated value is 0.5)
--   taste, taste_norm   the direction and length of (stated taste x stated
--                       norm + sum of embeddings) / W (ootd._learned_taste)
--   category_affinity   [category] + 1 per like, - 1 per unlike
--   color_affinity      [color] + 1 / - 1, from the stated preferred colors
--                       seeded at 0.5, 0.499, ... (ootd._seed_colors)
--   preferred_colors    the strongest 8 of color_affinity by strength, latest
--                       like, name (ootd._rank_colors)
-- With no like left, the stated profile comes back verbatim.  Every number is
-- exact or derived from exact ones, so the profile depends only on the stated
-- profile and the current likes: not on who wrote them, in what order or in
-- how many statements.  The users CHECK validates the UPDATE like any other.
CREATE FUNCTION ootd._learn(p_user_id bigint, p_outfits bigint[], p_signs integer[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u        ootd.users;
    v_change integer;
    v_cats   jsonb;
    v_colors jsonb;
    v_delta  numeric[];
    v_sums   numeric[];
    v_likes  integer;
    v_taste  record;
BEGIN
    SELECT * INTO u FROM ootd.users WHERE id = p_user_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;                        -- the user is being deleted (their likes cascade)
    END IF;
    -- The change, from the outfits (a reference table on Citus): the likes
    -- added minus those taken back, per category, per color and per feature.
    WITH changes AS (
        SELECT x.category, x.color, s.sign, ARRAY[x.vibe, x.trend, x.dare] || x.embedding::real[] AS features
        FROM unnest(p_outfits, p_signs) AS s(outfit_id, sign) JOIN ootd.outfits x ON x.id = s.outfit_id)
    SELECT (SELECT sum(c.sign) FROM changes c),
           (SELECT jsonb_object_agg(g.category, g.n) FROM (SELECT c.category, sum(c.sign) AS n FROM changes c GROUP BY 1) g),
           (SELECT jsonb_object_agg(g.color, g.n) FROM (SELECT c.color, sum(c.sign) AS n FROM changes c GROUP BY 1) g),
           (SELECT array_agg(f.total ORDER BY f.i)
            FROM (SELECT e.i, sum(c.sign * e.value::numeric) AS total
                  FROM changes c, unnest(c.features) WITH ORDINALITY AS e(value, i) GROUP BY e.i) f)
      INTO v_change, v_cats, v_colors, v_delta;
    v_likes := u.likes_count + coalesce(v_change, 0);
    IF v_likes <= 0 THEN
        PERFORM ootd._forget_likes(p_user_id);
        RETURN;
    END IF;
    IF u.stated_dna IS NULL THEN       -- the first like: keep the profile as stated
        u.stated_dna        := u.style_dna;
        u.stated_taste      := u.taste;
        u.stated_taste_norm := u.taste_norm;
    END IF;
    -- trim_scale: one representation per number, so taking back what was added gives the same bytes
    v_sums := ARRAY(SELECT trim_scale(coalesce(a.value, 0) + coalesce(d.value, 0))
                    FROM unnest(coalesce(u.like_sums, array_fill(0::numeric, ARRAY[35]))) WITH ORDINALITY AS a(value, i)
                    FULL JOIN unnest(v_delta) WITH ORDINALITY AS d(value, i) USING (i)
                    ORDER BY i);
    v_cats   := ootd._add_counts(u.style_dna -> 'category_affinity', v_cats);
    v_colors := ootd._add_counts(coalesce(u.style_dna -> 'color_affinity', ootd._seed_colors(u.style_dna -> 'preferred_colors')),
                                 v_colors);
    SELECT * INTO v_taste FROM ootd._learned_taste(u.stated_taste, u.stated_taste_norm, v_sums, v_likes);
    UPDATE ootd.users
    SET style_dna         = u.style_dna || ootd._learned_means(u.stated_dna, v_sums, v_likes)
                            || jsonb_build_object('category_affinity', v_cats, 'color_affinity', v_colors,
                                                  'preferred_colors', ootd._rank_colors(p_user_id, v_colors, 8)),
        taste             = v_taste.taste,
        taste_norm        = v_taste.taste_norm,
        likes_count       = v_likes,
        stated_dna        = u.stated_dna,
        stated_taste      = u.stated_taste,
        stated_taste_norm = u.stated_taste_norm,
        like_sums         = v_sums,
        updated_at        = now()
    WHERE id = p_user_id;
END
$$;
COMMENT ON FUNCTION ootd._learn(bigint, bigint[], integer[]) IS
    'Private: fold one user''s liked (sign 1) and unliked (-1) outfits into their profile, under a row lock: the one home of learning.';

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
        like_sums         = NULL,
        updated_at        = now()
    WHERE id = p_user_id;
END
$$;
COMMENT ON FUNCTION ootd._forget_likes(bigint) IS
    'Private: a user whose last like went: the stated profile back verbatim, the learning state emptied.';

-- ootd._likes_changed(): the likes triggers (statement level, with transition
-- tables "added" and "removed"): each user whose likes changed is folded
-- once, in user id order (two statements over the same users lock them in
-- the same order: no deadlock), by ootd._learn.  SECURITY DEFINER: whoever
-- may write a like, the profile learns it.
-- The transition tables go into arrays first: Citus cannot ship a named
-- tuplestore inside a query over a distributed table ("executor could not
-- find named tuplestore"), and ootd._learn's queries are routed to the
-- user's shard.
CREATE FUNCTION ootd._likes_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_users   bigint[];
    v_outfits bigint[];
    v_signs   integer[];
    v_first   integer := 1;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(a.user_id ORDER BY a.user_id, a.outfit_id), array_agg(a.outfit_id ORDER BY a.user_id, a.outfit_id),
               array_fill(1, ARRAY[count(*)::integer])
          INTO v_users, v_outfits, v_signs
        FROM added a;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(r.user_id ORDER BY r.user_id, r.outfit_id), array_agg(r.outfit_id ORDER BY r.user_id, r.outfit_id),
               array_fill(-1, ARRAY[count(*)::integer])
          INTO v_users, v_outfits, v_signs
        FROM removed r;
    ELSE                               -- UPDATE: the old rows taken back, the new ones learned
        SELECT array_agg(c.user_id ORDER BY c.user_id, c.sign, c.outfit_id),
               array_agg(c.outfit_id ORDER BY c.user_id, c.sign, c.outfit_id),
               array_agg(c.sign ORDER BY c.user_id, c.sign, c.outfit_id)
          INTO v_users, v_outfits, v_signs
        FROM (SELECT r.user_id, r.outfit_id, -1 AS sign FROM removed r
              UNION ALL
              SELECT a.user_id, a.outfit_id, 1 FROM added a) c;
    END IF;
    FOR i IN 1 .. coalesce(cardinality(v_users), 0) LOOP
        IF i = cardinality(v_users) OR v_users[i + 1] <> v_users[i] THEN
            PERFORM ootd._learn(v_users[i], v_outfits[v_first:i], v_signs[v_first:i]);
            v_first := i + 1;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._likes_changed() IS
    'Private: the likes triggers: fold each user''s added and removed likes into their profile (ootd._learn), in user id order.';

-- ootd._likes_truncated(): after TRUNCATE ootd.likes nobody has a like:
-- every user's stated profile comes back (ootd._forget_likes).  On Citus the
-- trigger fires on each shard of ootd.likes (named likes_<shard id>), where a
-- query over every user is refused: TRUNCATE is refused there (0A000, nothing
-- changes), and DELETE FROM ootd.likes unlearns shard by shard instead.
CREATE FUNCTION ootd._likes_truncated()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_users bigint[];
BEGIN
    IF TG_TABLE_NAME <> 'likes' THEN
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

-- Re-learn the users who have likes: take back what their profile counted
-- (0014's ootd._fold_likes, the most recent likes_count likes), then learn
-- every like they have (ootd._learn), in user id order.
DO $relearn$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT u.id, u.likes_count,
                    ARRAY(SELECT l.outfit_id FROM ootd.likes l WHERE l.user_id = u.id ORDER BY l.liked_at, l.outfit_id) AS liked
             FROM ootd.users u
             WHERE u.likes_count > 0 OR EXISTS (SELECT 1 FROM ootd.likes l WHERE l.user_id = u.id)
             ORDER BY u.id LOOP
        IF r.likes_count > 0 THEN
            PERFORM ootd._fold_likes(r.id, ARRAY(SELECT ROW(x.*)::ootd.outfits
                                                 FROM unnest(r.liked[greatest(1, cardinality(r.liked) - r.likes_count + 1):])
                                                      AS c(outfit_id)
                                                 JOIN ootd.outfits x ON x.id = c.outfit_id), -1);
            UPDATE ootd.users SET likes_count = 0 WHERE id = r.id;
        END IF;
        IF cardinality(r.liked) > 0 THEN
            PERFORM ootd._learn(r.id, r.liked, array_fill(1, ARRAY[cardinality(r.liked)]));
        END IF;
    END LOOP;
END
$relearn$;

ALTER TABLE ootd.users ADD CONSTRAINT users_learning_state CHECK (CASE WHEN likes_count = 0
        THEN stated_dna IS NULL AND stated_taste IS NULL AND stated_taste_norm IS NULL AND like_sums IS NULL
        ELSE stated_dna IS NOT NULL AND stated_taste_norm IS NOT NULL AND cardinality(like_sums) = 35 END);

DROP FUNCTION ootd._learn_like(bigint, bigint);
DROP FUNCTION ootd._fold_likes(bigint, ootd.outfits[], integer);
DROP FUNCTION ootd._place_color(jsonb, jsonb, text, numeric);
DROP FUNCTION ootd._stored_mean(double precision);
DROP FUNCTION ootd._mean_step(double precision, double precision, real, integer);

-- ootd.like(user, outfit): record a like; true if it is new, false if the user
-- had already liked the outfit (then nothing changes).  The likes trigger
-- learns it in the same statement.  Unknown user or outfit: 23503
-- foreign_key_violation.  On Citus it runs on the worker that holds the user
-- (distributed by p_user_id, co-located with ootd.users).
CREATE OR REPLACE FUNCTION ootd.like(p_user_id bigint, p_outfit_id bigint)
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
CREATE OR REPLACE FUNCTION ootd.unlike(p_user_id bigint, p_outfit_id bigint)
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

-- ootd.put_user(...): create a user, or update one.  A new user needs a city
-- (the time zone defaults to the city's).  An update changes only what is
-- given (NULL = keep): a new city moves the time zone with it unless one is
-- given; style_dna and style_rules are merged key by key, so setting
-- style_rules never touches the learned style_dna.  A user with likes edits
-- their stated profile (users.stated_dna) as well: a stated vibe, trend or
-- dare is averaged with the likes at once (ootd._learned_means), and the
-- edited profile is what comes back when the last like goes.
-- Cities match whatever the case.  Errors: 22023 bad id, 23502 new user
-- without a city, 23503 unknown city; the users CHECK checks the rest.
CREATE OR REPLACE FUNCTION ootd.put_user(
    p_id          bigint,
    p_city        text DEFAULT NULL,
    p_timezone    text DEFAULT NULL,
    p_style_dna   jsonb DEFAULT NULL,
    p_style_rules jsonb DEFAULT NULL
)
RETURNS ootd.users
LANGUAGE plpgsql
AS $$
DECLARE
    v_city ootd.cities;
    v_user ootd.users;
BEGIN
    IF p_id IS NULL OR p_id <= 0 THEN
        RAISE EXCEPTION 'user id must be a positive integer, got %', coalesce(p_id::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_city IS NOT NULL THEN
        SELECT r.name, r.timezone INTO v_city.name, v_city.timezone FROM ootd._resolve_city(p_city) r;
    END IF;
    UPDATE ootd.users u
    SET city        = coalesce(v_city.name, u.city),
        timezone    = coalesce(p_timezone, v_city.timezone, u.timezone),
        style_dna   = u.style_dna || coalesce(p_style_dna, '{}')
                      || ootd._learned_means(u.stated_dna || coalesce(p_style_dna, '{}'), u.like_sums, u.likes_count),
        stated_dna  = u.stated_dna || coalesce(p_style_dna, '{}'),
        style_rules = u.style_rules || coalesce(p_style_rules, '{}'),
        updated_at  = now()
    WHERE u.id = p_id
    RETURNING u.* INTO v_user;
    IF FOUND THEN
        RETURN v_user;
    END IF;
    IF p_city IS NULL THEN
        RAISE EXCEPTION 'user % does not exist: a new user needs a city', p_id
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Give one, e.g. ootd user ID --city Torrance.';
    END IF;
    INSERT INTO ootd.users AS u (id, city, timezone, style_dna, style_rules)
    VALUES (p_id, v_city.name, coalesce(p_timezone, v_city.timezone),
            coalesce(p_style_dna, '{}'), coalesce(p_style_rules, '{}'))
    RETURNING u.* INTO v_user;
    RETURN v_user;
END
$$;
COMMENT ON FUNCTION ootd.put_user(bigint, text, text, jsonb, jsonb) IS
    'Create a user (needs a city) or update one: only the arguments given change, style documents merge key by key.';

-- ----------------------------------------------------------------- triggers --
-- Statement level, with transition tables: a COPY of 100,000 likes folds each
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

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;

RESET ROLE;
