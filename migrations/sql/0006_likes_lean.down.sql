-- =============================================================================
-- Revision 0006 down: back to the 0004 likes trigger and the likes_forget_feeds
-- triggers of 0003 (frozen)
-- =============================================================================
SET ROLE ootd_owner;

-- ootd._learn_from_likes(): statement-level trigger on ootd.likes, for INSERT
-- and for DELETE (transition table `changed`).  In the same transaction it
-- folds the statement's likes into each user's profile (or takes unliked ones
-- back out).  One outfit at a time, with n the user's likes before it and
-- W = 1 + n observations (the stated profile counts as one):
--   likes_count          n + 1 (unlike: n - 1)
--   vibe, trend, dare    running means: (W x old + outfit's) / (W + 1), and
--                        (W x old - outfit's) / (W - 1) for an unlike, which
--                        restores the old value; a missing value starts at 0.5
--   taste, taste_norm    the same running mean of unit embeddings, kept as
--                        direction (taste, unit length; cosine needs nothing
--                        else) and length (taste_norm), so an unlike subtracts
--                        exactly what the like added
--   category_affinity    [category] + 1 (unlike: - 1; a key reaching 0 goes)
--   color_affinity       [color] + 1 (unlike: - 1); the first like seeds it with
--                        the stated preferred_colors at 0.5, 0.499, ... in
--                        stated order, so stated colors are never forgotten and
--                        undoing every like restores the stated list exactly
--   preferred_colors     the strongest 8 of color_affinity: by strength, then
--                        by the latest like of that color, then by name.  A like
--                        only moves its color up (to the front of its strength
--                        group), so the list is updated in place; an unlike
--                        recomputes it from the user's remaining likes.
-- Lost updates and deadlocks: each user row is locked FOR NO KEY UPDATE, in
-- user-id order, and that read returns the newest committed version (READ
-- COMMITTED); every change is computed from it while the lock is held.
-- Concurrent likes of one user queue on the row lock; statements touching
-- several users lock them in the same order, so they cannot deadlock.  (Under
-- REPEATABLE READ a concurrent like of the same user is a 40001 to retry.)
-- The values written come from the validated row and from ootd.outfits (whose
-- category and color reference the vocabulary), so the users validation
-- trigger is told to skip this UPDATE (ootd.learning).
CREATE OR REPLACE FUNCTION ootd._learn_from_likes()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sign   integer := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
    r        record;
    o        ootd.outfits;
    u        ootd.users;
    v_dna    jsonb;
    v_cats   jsonb;
    v_colors jsonb;
    v_list   jsonb;
    v_w      double precision; -- observations behind the running means
    v_vibe   double precision;
    v_trend  double precision;
    v_dare   double precision;
    v_sum    public.vector;    -- W x the running mean of the taste
    v_taste  public.vector;
    v_norm   real;
    v_left   numeric;
    v_pos    integer;
    v_flag   text;
BEGIN
    FOR r IN
        SELECT c.user_id, array_agg(x ORDER BY c.liked_at, c.outfit_id) AS outfits
        FROM changed c JOIN ootd.outfits x ON x.id = c.outfit_id
        GROUP BY c.user_id
        ORDER BY c.user_id
    LOOP
        SELECT * INTO u FROM ootd.users WHERE id = r.user_id FOR NO KEY UPDATE;
        CONTINUE WHEN NOT FOUND;       -- the user is being deleted (likes cascade)
        v_dna    := u.style_dna;
        v_cats   := coalesce(v_dna -> 'category_affinity', '{}');
        v_list   := coalesce(v_dna -> 'preferred_colors', '[]');
        v_colors := v_dna -> 'color_affinity';
        IF v_colors IS NULL THEN       -- first like: seed the stated colors (no query: plain expressions)
            v_colors := '{}';
            FOR i IN 0 .. jsonb_array_length(v_list) - 1 LOOP
                v_colors := v_colors || jsonb_build_object(v_list ->> i, trim_scale(0.5 - 0.001 * i));
            END LOOP;
        END IF;
        v_w      := 1 + u.likes_count;
        v_vibe   := coalesce((v_dna ->> 'vibe')::double precision, 0.5);
        v_trend  := coalesce((v_dna ->> 'trend')::double precision, 0.5);
        v_dare   := coalesce((v_dna ->> 'dare')::double precision, 0.5);
        v_sum    := CASE WHEN u.taste IS NOT NULL THEN
                        u.taste OPERATOR(public.*)
                        array_fill((v_w * u.taste_norm)::real, ARRAY[public.vector_dims(u.taste)])::public.vector END;

        FOREACH o IN ARRAY r.outfits LOOP
            IF v_w + v_sign >= 1 THEN
                v_vibe  := (v_w * v_vibe  + v_sign * o.vibe::numeric::double precision)  / (v_w + v_sign);
                v_trend := (v_w * v_trend + v_sign * o.trend::numeric::double precision) / (v_w + v_sign);
                v_dare  := (v_w * v_dare  + v_sign * o.dare::numeric::double precision)  / (v_w + v_sign);
                v_sum   := CASE WHEN v_sum IS NULL THEN CASE WHEN v_sign > 0 THEN o.embedding END
                                WHEN v_sign > 0 THEN v_sum OPERATOR(public.+) o.embedding
                                ELSE v_sum OPERATOR(public.-) o.embedding END;
                v_w := v_w + v_sign;
            END IF;
            v_left := coalesce((v_cats ->> o.category)::numeric, 0) + v_sign;
            v_cats := CASE WHEN v_left > 0 THEN jsonb_set(v_cats, ARRAY[o.category], to_jsonb(v_left))
                           ELSE v_cats - o.category END;
            v_left := coalesce((v_colors ->> o.color)::numeric, 0) + v_sign;
            v_colors := CASE WHEN v_left > 0 THEN jsonb_set(v_colors, ARRAY[o.color], to_jsonb(trim_scale(v_left)))
                             ELSE v_colors - o.color END;
            IF v_sign > 0 THEN
                -- the liked color goes to the front of its strength group
                v_list := v_list - o.color;
                v_pos := 0;
                WHILE v_pos < jsonb_array_length(v_list)
                      AND (v_colors ->> (v_list ->> v_pos))::numeric > v_left LOOP
                    v_pos := v_pos + 1;
                END LOOP;
                v_list := jsonb_insert(v_list, ARRAY[v_pos::text], to_jsonb(o.color));
                IF jsonb_array_length(v_list) > 8 THEN
                    v_list := v_list - 8;
                END IF;
            END IF;
        END LOOP;

        IF u.likes_count + v_sign * cardinality(r.outfits) <= 0 THEN
            -- no likes left: back to the stated colors, in stated order
            v_list := (SELECT coalesce(jsonb_agg(e.key ORDER BY e.value::numeric DESC, e.key), '[]')
                       FROM jsonb_each(v_colors) e);
            v_dna := v_dna - 'color_affinity';
        ELSE
            IF v_sign < 0 THEN
                v_list := (SELECT coalesce(jsonb_agg(t.key ORDER BY t.strength DESC, t.last_liked DESC NULLS LAST, t.key), '[]')
                           FROM (SELECT e.key, e.value::numeric AS strength, rl.last_liked
                                 FROM jsonb_each(v_colors) e
                                 LEFT JOIN (SELECT x.color, max(l.liked_at) AS last_liked
                                            FROM ootd.likes l JOIN ootd.outfits x ON x.id = l.outfit_id
                                            WHERE l.user_id = u.id
                                            GROUP BY x.color) rl ON rl.color = e.key
                                 ORDER BY e.value::numeric DESC, rl.last_liked DESC NULLS LAST, e.key
                                 LIMIT 8) t);
            END IF;
            v_dna := v_dna || jsonb_build_object('color_affinity', v_colors);
        END IF;
        v_dna := v_dna || jsonb_build_object(
            'preferred_colors', v_list,
            'category_affinity', v_cats,
            'vibe',  trim_scale(round(least(1, greatest(0, v_vibe))::numeric, 12)),
            'trend', trim_scale(round(least(1, greatest(0, v_trend))::numeric, 12)),
            'dare',  trim_scale(round(least(1, greatest(0, v_dare))::numeric, 12)));
        v_taste := u.taste;
        v_norm  := u.taste_norm;
        IF v_sum IS NOT NULL AND public.vector_norm(v_sum) > 1e-6 THEN
            v_taste := public.l2_normalize(v_sum);
            v_norm  := public.vector_norm(v_sum) / v_w;
        END IF;

        v_flag := set_config('ootd.learning', 'on', true);   -- an assignment: no SPI query
        UPDATE ootd.users
        SET style_dna   = v_dna,
            taste       = v_taste,
            taste_norm  = v_norm,
            likes_count = greatest(0, likes_count + v_sign * cardinality(r.outfits)),
            updated_at  = now()
        WHERE id = u.id;
        v_flag := set_config('ootd.learning', 'off', true);
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._learn_from_likes() IS
    'Private trigger: folds liked (or unliked) outfits into the user''s style_dna and taste, lock-ordered, no lost updates.';

-- style_dna gains color_affinity (kept by the likes trigger).
-- The likes trigger's own UPDATE of users skips validation and feed forgetting
-- (ootd.learning); the likes triggers forget those feeds.
CREATE OR REPLACE FUNCTION ootd._forget_feeds()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_TABLE_NAME = 'users' THEN
        IF current_setting('ootd.learning', true) = 'on' THEN
            RETURN NULL;  -- a like changed the profile; the likes trigger forgets those feeds
        END IF;
        UPDATE ootd.feed_memo m SET epoch = 0 WHERE m.user_id IN (SELECT c.id FROM changed c) AND m.epoch <> 0;
    ELSE
        UPDATE ootd.feed_memo m SET epoch = 0 WHERE m.user_id IN (SELECT c.user_id FROM changed c) AND m.epoch <> 0;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._forget_feeds() IS 'Private trigger: a user''s profile or likes changed, so their memoized feeds are stale.';

DROP FUNCTION ootd._seed_colors(jsonb);

CREATE TRIGGER likes_forget_feeds_insert
    AFTER INSERT ON ootd.likes
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._forget_feeds();
CREATE TRIGGER likes_forget_feeds_delete
    AFTER DELETE ON ootd.likes
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._forget_feeds();

RESET ROLE;
