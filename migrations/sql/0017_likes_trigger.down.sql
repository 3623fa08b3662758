-- =============================================================================
-- Revision 0017 (down): back to 0016's explicit learning in ootd.like /
-- ootd.unlike (frozen).  The learned profiles stay as they are; the stated
-- profiles and the likes' sums go (the downgrade guard asks first when they
-- hold values), so an unlike after the downgrade takes back by 0014's
-- running-mean arithmetic.
-- =============================================================================
SET ROLE ootd_owner;

DROP TRIGGER likes_learn_truncated ON ootd.likes;
DROP TRIGGER likes_learn_updated ON ootd.likes;
DROP TRIGGER likes_learn_inserted ON ootd.likes;
DROP TRIGGER likes_learn_deleted ON ootd.likes;
ALTER TABLE ootd.users DROP CONSTRAINT users_learning_state;

-- ---------------------------------------------------------------- functions --
-- ootd._seed_colors(stated): the color_affinity a user's first like starts
-- from: each stated preferred color at 0.5, 0.499, ... in stated order, so
-- stated colors rank below any liked one and keep their order among themselves.
CREATE FUNCTION ootd._seed_colors(p_stated jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_object_agg(e.color, trim_scale(0.5 - 0.001 * (e.i - 1))), '{}')
    FROM jsonb_array_elements_text(coalesce(p_stated, '[]')) WITH ORDINALITY AS e(color, i)
$$;
COMMENT ON FUNCTION ootd._seed_colors(jsonb) IS
    'Private: color_affinity seeded from the stated preferred_colors (0.5, 0.499, ... in stated order).';

-- ootd._rank_colors(user, affinity, limit): preferred_colors recomputed from
-- color_affinity: by strength, then by the user's latest like of that color,
-- then by name; `limit` colors at most (NULL: all, as when no like is left and
-- the stated colors come back in their stated order).
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._rank_colors(p_user_id bigint, p_affinity jsonb, p_limit integer)
RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN (
        SELECT coalesce(jsonb_agg(t.key ORDER BY t.strength DESC, t.last_liked DESC NULLS LAST, t.key), '[]')
        FROM (SELECT e.key, e.value::numeric AS strength, rl.last_liked
              FROM jsonb_each(p_affinity) e
              LEFT JOIN (SELECT x.color, max(l.liked_at) AS last_liked
                         FROM ootd.likes l JOIN ootd.outfits x ON x.id = l.outfit_id
                         WHERE l.user_id = p_user_id
                         GROUP BY x.color) rl ON rl.color = e.key
              ORDER BY e.value::numeric DESC, rl.last_liked DESC NULLS LAST, e.key
              LIMIT p_limit) t);
END
$$;
COMMENT ON FUNCTION ootd._rank_colors(bigint, jsonb, integer) IS
    'Private: preferred_colors from color_affinity: by strength, latest like, name; p_limit at most.';

-- ootd._mean_step(mean, weight, value, sign): one step of a running mean of
-- `weight` observations: add (sign 1) or take back (sign -1) one value, which
-- counts with 6 decimals, so taking back what was added restores the mean.
-- The one home of the running-mean rule (vibe, trend, dare).
CREATE FUNCTION ootd._mean_step(p_mean double precision, p_weight double precision, p_value real,
                                p_sign integer)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT (p_weight * p_mean + p_sign * (round(p_value::double precision * 1e6) / 1e6)) / (p_weight + p_sign)
$$;
COMMENT ON FUNCTION ootd._mean_step(double precision, double precision, real, integer) IS
    'Private: a running mean of p_weight observations with one value (6 decimals) added (sign 1) or taken back (-1).';

-- ootd._stored_mean(mean): a mean as style_dna stores it: within 0..1,
-- rounded to 12 decimals.
CREATE FUNCTION ootd._stored_mean(p_mean double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT round(least(1, greatest(0, p_mean)) * 1e12) / 1e12
$$;
COMMENT ON FUNCTION ootd._stored_mean(double precision) IS 'Private: a running mean clamped to 0..1 and rounded to 12 decimals, as stored.';

-- ootd._place_color(list, affinity, color, strength): preferred_colors after
-- a like of `color`, whose strength is now `strength`: the color moves right
-- behind the colors of `affinity` that are stronger than it; 8 at most.
CREATE FUNCTION ootd._place_color(p_list jsonb, p_affinity jsonb, p_color text, p_strength numeric)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT jsonb_insert(p_list - p_color,
                        ARRAY[jsonb_array_length(jsonb_path_query_array(p_affinity, '$.* ? (@ > $s)',
                                                                        jsonb_build_object('s', p_strength)))::text],
                        to_jsonb(p_color)) - 8
$$;
COMMENT ON FUNCTION ootd._place_color(jsonb, jsonb, text, numeric) IS
    'Private: preferred_colors after a like: the liked color goes right behind the stronger colors; 8 at most.';

-- ootd._fold_likes(user, outfits, sign): one user's profile with the outfits
-- liked (sign 1) or unliked (sign -1), one at a time, in order; the user row
-- is locked FOR NO KEY UPDATE and updated.  ootd.unlike calls it (ootd.like
-- takes the one-UPDATE path of ootd._learn_like, which computes the same).
CREATE FUNCTION ootd._fold_likes(p_user_id bigint, p_outfits ootd.outfits[], p_sign integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u        ootd.users;
    o        ootd.outfits;
    v_dna    jsonb;
    v_cats   jsonb;
    v_colors jsonb;
    v_list   jsonb;
    v_w      double precision; -- observations behind the running means
    v_vibe   double precision;
    v_trend  double precision;
    v_dare   double precision;
    v_sum    public.vector;    -- W x the running mean of the taste
    v_left   numeric;
BEGIN
    SELECT * INTO u FROM ootd.users WHERE id = p_user_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;                        -- the user is being deleted (likes cascade)
    END IF;
    v_dna    := u.style_dna;
    v_cats   := coalesce(v_dna -> 'category_affinity', '{}');
    v_list   := coalesce(v_dna -> 'preferred_colors', '[]');
    v_colors := coalesce(v_dna -> 'color_affinity', ootd._seed_colors(v_list));
    v_w      := 1 + u.likes_count;
    v_vibe   := coalesce((v_dna ->> 'vibe')::double precision, 0.5);
    v_trend  := coalesce((v_dna ->> 'trend')::double precision, 0.5);
    v_dare   := coalesce((v_dna ->> 'dare')::double precision, 0.5);
    v_sum    := CASE WHEN u.taste IS NOT NULL THEN
                    u.taste OPERATOR(public.*)
                    array_fill((v_w * u.taste_norm)::real, ARRAY[public.vector_dims(u.taste)])::public.vector END;

    FOREACH o IN ARRAY p_outfits LOOP
        IF v_w + p_sign >= 1 THEN
            v_vibe  := ootd._mean_step(v_vibe, v_w, o.vibe, p_sign);
            v_trend := ootd._mean_step(v_trend, v_w, o.trend, p_sign);
            v_dare  := ootd._mean_step(v_dare, v_w, o.dare, p_sign);
            v_sum   := CASE WHEN v_sum IS NULL THEN CASE WHEN p_sign > 0 THEN o.embedding END
                            WHEN p_sign > 0 THEN v_sum OPERATOR(public.+) o.embedding
                            ELSE v_sum OPERATOR(public.-) o.embedding END;
            v_w := v_w + p_sign;
        END IF;
        v_left := coalesce((v_cats ->> o.category)::numeric, 0) + p_sign;
        v_cats := CASE WHEN v_left > 0 THEN jsonb_set(v_cats, ARRAY[o.category], to_jsonb(v_left))
                       ELSE v_cats - o.category END;
        v_left := coalesce((v_colors ->> o.color)::numeric, 0) + p_sign;
        v_colors := CASE WHEN v_left > 0 THEN jsonb_set(v_colors, ARRAY[o.color], to_jsonb(trim_scale(v_left)))
                         ELSE v_colors - o.color END;
        IF p_sign > 0 THEN
            v_list := ootd._place_color(v_list, v_colors, o.color, v_left);
        END IF;
    END LOOP;

    IF u.likes_count + p_sign * cardinality(p_outfits) <= 0 THEN
        v_list := ootd._rank_colors(u.id, v_colors, NULL);   -- no like left: the stated colors, in stated order
        v_dna  := v_dna - 'color_affinity';
    ELSE
        IF p_sign < 0 THEN
            v_list := ootd._rank_colors(u.id, v_colors, 8);
        END IF;
        v_dna := v_dna || jsonb_build_object('color_affinity', v_colors);
    END IF;
    UPDATE ootd.users
    SET style_dna   = v_dna || jsonb_build_object(
                          'preferred_colors', v_list, 'category_affinity', v_cats,
                          'vibe', ootd._stored_mean(v_vibe), 'trend', ootd._stored_mean(v_trend),
                          'dare', ootd._stored_mean(v_dare)),
        taste       = CASE WHEN public.vector_norm(v_sum) > 1e-6 THEN public.l2_normalize(v_sum) ELSE taste END,
        taste_norm  = CASE WHEN public.vector_norm(v_sum) > 1e-6 THEN public.vector_norm(v_sum) / v_w
                           ELSE taste_norm END,
        likes_count = greatest(0, likes_count + p_sign * cardinality(p_outfits)),
        updated_at  = now()
    WHERE id = u.id;
END
$$;
COMMENT ON FUNCTION ootd._fold_likes(bigint, ootd.outfits[], integer) IS
    'Private: fold a user''s liked (sign 1) or unliked (-1) outfits into their profile, under a row lock.';

-- ootd._learn_like(user, outfit): fold one new like into the user's profile,
-- called by ootd.like in the same transaction (ootd.unlike takes one back out
-- with ootd._fold_likes).  Its UPDATE of users is validated by the users
-- CHECK like any other.  One outfit at a time, with n the user's likes before
-- it and W = 1 + n observations (the stated profile counts as one):
--   likes_count          n + 1 (unlike: n - 1)
--   vibe, trend, dare    running means in double precision: (W x old +
--                        outfit's) / (W + 1), and (W x old - outfit's) / (W - 1)
--                        for an unlike, which restores the old value; the
--                        outfit's value (a real) counts with 6 decimals, a
--                        missing mean starts at 0.5, means are stored rounded
--                        to 12 decimals
--   taste, taste_norm    the same running mean of unit embeddings, kept as
--                        direction (taste, unit length; cosine needs nothing
--                        else) and length (taste_norm), so an unlike subtracts
--                        exactly what the like added
--   category_affinity    [category] + 1 (unlike: - 1; a key reaching 0 goes)
--   color_affinity       [color] + 1 (unlike: - 1); the first like seeds it with
--                        ootd._seed_colors(stated preferred_colors), so stated
--                        colors are never forgotten and undoing every like
--                        restores the stated list exactly
--   preferred_colors     the strongest 8 of color_affinity: by strength, then
--                        by the latest like of that color, then by name.  A like
--                        only moves its color up: it goes in front of its
--                        strength group, behind the colors that are stronger,
--                        so the list is updated in place; an unlike recomputes
--                        it from the user's remaining likes.
-- A like is one UPDATE whose SET computes the new profile from the row it
-- updates; an unlike goes through ootd._fold_likes.  Both compute the same
-- values (tests/test_likes.py).
-- Lost updates: the UPDATE locks its row and, if a concurrent like of the same
-- user committed first, re-reads the newest version and recomputes (READ
-- COMMITTED); ootd._fold_likes locks the user row FOR NO KEY UPDATE and
-- computes from that read.  Each call touches one user, so two calls cannot
-- deadlock on user rows.  (Under REPEATABLE READ a concurrent like of the
-- same user is a 40001 to retry.)
-- Precision: means are float8 rounded to 12 decimals and taste is float4, so
-- undoing likes restores the earlier values up to rounding that grows with
-- the likes in between: means within 1e-11 and taste (each component, and
-- taste_norm) within 1e-5 per like, e.g. 1e-9 and 1e-3 after 100 likes and
-- their unlikes; every other field is restored exactly (tests/test_likes.py).
CREATE FUNCTION ootd._learn_like(p_user_id bigint, p_outfit_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- ootd._fold_likes' arithmetic for one outfit, as one UPDATE of the row it reads.
    UPDATE ootd.users p
    SET (style_dna, taste, taste_norm, likes_count, updated_at) = (
        SELECT p.style_dna || jsonb_build_object(
                   'color_affinity', jsonb_set(z.seeded, ARRAY[x.color], to_jsonb(trim_scale(z.strength))),
                   'preferred_colors', ootd._place_color(coalesce(p.style_dna -> 'preferred_colors', '[]'),
                                                         z.seeded, x.color, z.strength),
                   'category_affinity',
                       jsonb_set(coalesce(p.style_dna -> 'category_affinity', '{}'), ARRAY[x.category],
                                 to_jsonb(coalesce((p.style_dna -> 'category_affinity' ->> x.category)::numeric, 0) + 1)),
                   'vibe',  ootd._stored_mean(ootd._mean_step(coalesce((p.style_dna ->> 'vibe')::float8, 0.5), z.w, x.vibe, 1)),
                   'trend', ootd._stored_mean(ootd._mean_step(coalesce((p.style_dna ->> 'trend')::float8, 0.5), z.w, x.trend, 1)),
                   'dare',  ootd._stored_mean(ootd._mean_step(coalesce((p.style_dna ->> 'dare')::float8, 0.5), z.w, x.dare, 1))),
               CASE WHEN public.vector_norm(z.total) > 1e-6 THEN public.l2_normalize(z.total) ELSE p.taste END,
               CASE WHEN public.vector_norm(z.total) > 1e-6 THEN public.vector_norm(z.total) / (z.w + 1)
                    ELSE p.taste_norm END,
               p.likes_count + 1,
               now()
        FROM ootd.outfits x,
             LATERAL (SELECT 1 + p.likes_count::float8 AS w, s.seeded,
                             coalesce((s.seeded ->> x.color)::numeric, 0) + 1 AS strength,
                             CASE WHEN p.taste IS NULL THEN x.embedding
                                  ELSE p.taste OPERATOR(public.*)
                                       array_fill(((1 + p.likes_count::float8) * p.taste_norm)::real,
                                                  ARRAY[public.vector_dims(p.taste)])::public.vector
                                       OPERATOR(public.+) x.embedding END AS total
                      FROM (SELECT coalesce(p.style_dna -> 'color_affinity',
                                            ootd._seed_colors(p.style_dna -> 'preferred_colors')) AS seeded) s
                      OFFSET 0) z              -- evaluated once, not once per use
        WHERE x.id = p_outfit_id)
    WHERE p.id = p_user_id;
END
$$;
COMMENT ON FUNCTION ootd._learn_like(bigint, bigint) IS
    'Private: fold one new like into the user''s style_dna and taste (one UPDATE of the row it reads: no lost update).';

-- ootd.like(user, outfit): record a like; true if it is new, false if the user
-- had already liked the outfit (then nothing changes).  A new like updates
-- the profile in the same transaction (ootd._learn_like).  Unknown user or
-- outfit: 23503 foreign_key_violation.  On Citus it runs on the worker that
-- holds the user (distributed by p_user_id, co-located with ootd.users).
CREATE OR REPLACE FUNCTION ootd.like(p_user_id bigint, p_outfit_id bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_like_target(p_user_id, p_outfit_id);
    INSERT INTO ootd.likes (user_id, outfit_id) VALUES (p_user_id, p_outfit_id)
    ON CONFLICT (user_id, outfit_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM ootd._learn_like(p_user_id, p_outfit_id);
    RETURN true;
END
$$;
COMMENT ON FUNCTION ootd.like(bigint, bigint) IS
    'Like an outfit: true if new, false if already liked; updates style_dna and taste in the same transaction.';

-- ootd.unlike(user, outfit): take a like back; true if there was one.  Its
-- effect on the profile is reversed in the same transaction
-- (ootd._fold_likes).  Unknown user or outfit: 23503 foreign_key_violation.
CREATE OR REPLACE FUNCTION ootd.unlike(p_user_id bigint, p_outfit_id bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_like_target(p_user_id, p_outfit_id);
    DELETE FROM ootd.likes l WHERE l.user_id = p_user_id AND l.outfit_id = p_outfit_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- ROW(x.*): a row of the table's type even where Citus reads a shard (whose row type differs)
    PERFORM ootd._fold_likes(p_user_id, ARRAY(SELECT ROW(x.*)::ootd.outfits FROM ootd.outfits x WHERE x.id = p_outfit_id),
                             -1);
    RETURN true;
END
$$;
COMMENT ON FUNCTION ootd.unlike(bigint, bigint) IS
    'Take a like back: true if the user had liked the outfit; reverses its effect on style_dna and taste.';

-- ootd.put_user(...): create a user, or update one.  A new user needs a city
-- (the time zone defaults to the city's).  An update changes only what is
-- given (NULL = keep): a new city moves the time zone with it unless one is
-- given; style_dna and style_rules are merged key by key, so setting
-- style_rules never touches the learned style_dna (and unlikes stay exact).
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
        style_dna   = u.style_dna || coalesce(p_style_dna, '{}'),
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

DROP FUNCTION ootd._likes_truncated();
DROP FUNCTION ootd._likes_changed();
DROP FUNCTION ootd._forget_likes(bigint);
DROP FUNCTION ootd._learned_mean(jsonb, numeric, integer);
DROP FUNCTION ootd._learn(bigint);
ALTER TABLE ootd.users DROP COLUMN stated_taste_norm, DROP COLUMN stated_taste, DROP COLUMN stated_dna;

COMMENT ON COLUMN ootd.users.likes_count IS 'Current likes; with the stated profile as one more observation, the weight of the running means ootd.like / ootd.unlike keep.';
COMMENT ON COLUMN ootd.users.taste_norm IS 'Length of the running mean of liked unit embeddings whose direction is taste (lets an unlike subtract exactly).';
COMMENT ON TABLE ootd.likes IS 'Implicit feedback: a row per liked outfit.';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;

RESET ROLE;
