-- =============================================================================
-- Revision 0004: likes (frozen)
-- ootd.like / ootd.unlike, the likes trigger that learns style_dna and taste,
-- ootd.feed split into a STABLE fast path and ootd._feed_compute,
-- ootd.serving_status.
-- =============================================================================
SET ROLE ootd_owner;

-- ---------------------------------------------------------------- tables ----
ALTER TABLE ootd.users
    ADD COLUMN likes_count integer NOT NULL DEFAULT 0 CHECK (likes_count >= 0),
    ADD COLUMN taste_norm  real NOT NULL DEFAULT 1 CHECK (taste_norm >= 0);
COMMENT ON COLUMN ootd.users.likes_count IS 'Current likes; with the stated profile as one more observation, the weight of the running means the likes trigger keeps.';
COMMENT ON COLUMN ootd.users.taste_norm IS 'Length of the running mean of liked unit embeddings whose direction is taste (lets an unlike subtract exactly).';

-- ------------------------------------------------------------- functions ----
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

CREATE OR REPLACE FUNCTION ootd._users_validate()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    bad     record;
    v_vocab jsonb;
BEGIN
    IF current_setting('ootd.learning', true) = 'on' THEN
        RETURN NULL;  -- ootd._learn_from_likes writes only values it validated
    END IF;
    v_vocab := ootd.vocabulary();  -- once per statement, not per row
    SELECT n.id, n.timezone INTO bad
    FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM ootd.timezones t WHERE t.name = n.timezone)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'user %: invalid time zone "%": not an IANA time zone name', bad.id, bad.timezone
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use a name such as America/Los_Angeles (see ootd.timezones); POSIX strings like UTC+5 have reversed signs and are rejected.';
    END IF;

    SELECT s.id, s.problem INTO bad
    FROM (SELECT n.id, ootd._style_shape_problem(n.style_dna, n.style_rules) AS problem
          FROM new_rows n) s
    WHERE s.problem IS NOT NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'user %: %', bad.id, bad.problem
            USING ERRCODE = 'check_violation', TABLE = 'users', SCHEMA = 'ootd';
    END IF;

    SELECT s.id, s.problem INTO bad
    FROM (SELECT n.id, ootd._style_vocabulary_problem(n.style_dna, n.style_rules, v_vocab) AS problem
          FROM new_rows n) s
    WHERE s.problem IS NOT NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'user %: %', bad.id, bad.problem
            USING ERRCODE = 'foreign_key_violation', TABLE = 'users', SCHEMA = 'ootd',
                  HINT = 'Known names are listed by SELECT ootd.vocabulary();';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION ootd._style_shape_problem(p_dna jsonb, p_rules jsonb)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(p_dna) IS DISTINCT FROM 'object' THEN
            'style_dna must be a JSON object'
        WHEN jsonb_typeof(p_rules) IS DISTINCT FROM 'object' THEN
            'style_rules must be a JSON object'
        WHEN p_dna - '{archetype,preferred_colors,category_affinity,color_affinity,vibe,trend,dare}'::text[] <> '{}' THEN
            format('style_dna has unknown key %s (known: archetype, preferred_colors, category_affinity, color_affinity, vibe, trend, dare)',
                   jsonb_path_query_first(p_dna - '{archetype,preferred_colors,category_affinity,color_affinity,vibe,trend,dare}'::text[],
                                          '$.keyvalue().key'))
        WHEN p_rules - '{liked_categories,disliked_categories,disliked_colors}'::text[] <> '{}' THEN
            format('style_rules has unknown key %s (known: liked_categories, disliked_categories, disliked_colors)',
                   jsonb_path_query_first(p_rules - '{liked_categories,disliked_categories,disliked_colors}'::text[],
                                          '$.keyvalue().key'))
        WHEN p_dna ? 'archetype' AND jsonb_typeof(p_dna -> 'archetype') <> 'string' THEN
            'style_dna.archetype must be a string'
        WHEN p_dna ? 'preferred_colors' AND (jsonb_typeof(p_dna -> 'preferred_colors') <> 'array'
              OR jsonb_path_exists(p_dna, '$.preferred_colors[*] ? (@.type() != "string")')) THEN
            'style_dna.preferred_colors must be an array of color names'
        WHEN p_dna ? 'category_affinity' AND (jsonb_typeof(p_dna -> 'category_affinity') <> 'object'
              OR jsonb_path_exists(p_dna, '$.category_affinity.* ? (@.type() != "number" || @ < 0)')) THEN
            'style_dna.category_affinity must map category names to numbers >= 0'
        WHEN p_dna ? 'color_affinity' AND (jsonb_typeof(p_dna -> 'color_affinity') <> 'object'
              OR jsonb_path_exists(p_dna, '$.color_affinity.* ? (@.type() != "number" || @ < 0)')) THEN
            'style_dna.color_affinity must map color names to numbers >= 0'
        WHEN jsonb_path_exists(p_dna, '$.vibe ? (@.type() != "number" || @ < 0 || @ > 1)') THEN
            'style_dna.vibe must be a number between 0 and 1'
        WHEN jsonb_path_exists(p_dna, '$.trend ? (@.type() != "number" || @ < 0 || @ > 1)') THEN
            'style_dna.trend must be a number between 0 and 1'
        WHEN jsonb_path_exists(p_dna, '$.dare ? (@.type() != "number" || @ < 0 || @ > 1)') THEN
            'style_dna.dare must be a number between 0 and 1'
        WHEN p_rules ? 'liked_categories' AND (jsonb_typeof(p_rules -> 'liked_categories') <> 'array'
              OR jsonb_path_exists(p_rules, '$.liked_categories[*] ? (@.type() != "string")')) THEN
            'style_rules.liked_categories must be an array of category names'
        WHEN p_rules ? 'disliked_categories' AND (jsonb_typeof(p_rules -> 'disliked_categories') <> 'array'
              OR jsonb_path_exists(p_rules, '$.disliked_categories[*] ? (@.type() != "string")')) THEN
            'style_rules.disliked_categories must be an array of category names'
        WHEN p_rules ? 'disliked_colors' AND (jsonb_typeof(p_rules -> 'disliked_colors') <> 'array'
              OR jsonb_path_exists(p_rules, '$.disliked_colors[*] ? (@.type() != "string")')) THEN
            'style_rules.disliked_colors must be an array of color names'
        WHEN jsonb_path_exists(p_rules, '$.liked_categories[*] ? (@ == $.disliked_categories[*])') THEN
            format('category %s is both liked and disliked in style_rules',
                   jsonb_path_query_first(p_rules, '$.liked_categories[*] ? (@ == $.disliked_categories[*])'))
    END
$$;

CREATE OR REPLACE FUNCTION ootd._style_vocabulary_problem(p_dna jsonb, p_rules jsonb, p_vocab jsonb)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_dna ? 'archetype' AND NOT (p_vocab -> 'archetypes') @> (p_dna -> 'archetype') THEN
            format('unknown archetype %s in style_dna.archetype', p_dna -> 'archetype')
        WHEN NOT (p_dna -> 'preferred_colors') <@ (p_vocab -> 'colors') THEN
            format('unknown color %s in style_dna.preferred_colors',
                   jsonb_path_query_first(p_dna, '$.preferred_colors[*] ? (!(@ == $colors[*]))', p_vocab))
        WHEN p_dna -> 'category_affinity' <> '{}'
             AND jsonb_path_exists(p_dna, '$.category_affinity.keyvalue() ? (!(@.key == $categories[*]))', p_vocab) THEN
            format('unknown category %s in style_dna.category_affinity',
                   jsonb_path_query_first(p_dna, '$.category_affinity.keyvalue() ? (!(@.key == $categories[*])).key', p_vocab))
        WHEN p_dna -> 'color_affinity' <> '{}'
             AND jsonb_path_exists(p_dna, '$.color_affinity.keyvalue() ? (!(@.key == $colors[*]))', p_vocab) THEN
            format('unknown color %s in style_dna.color_affinity',
                   jsonb_path_query_first(p_dna, '$.color_affinity.keyvalue() ? (!(@.key == $colors[*])).key', p_vocab))
        WHEN NOT (p_rules -> 'liked_categories') <@ (p_vocab -> 'categories') THEN
            format('unknown category %s in style_rules.liked_categories',
                   jsonb_path_query_first(p_rules, '$.liked_categories[*] ? (!(@ == $categories[*]))', p_vocab))
        WHEN NOT (p_rules -> 'disliked_categories') <@ (p_vocab -> 'categories') THEN
            format('unknown category %s in style_rules.disliked_categories',
                   jsonb_path_query_first(p_rules, '$.disliked_categories[*] ? (!(@ == $categories[*]))', p_vocab))
        WHEN NOT (p_rules -> 'disliked_colors') <@ (p_vocab -> 'colors') THEN
            format('unknown color %s in style_rules.disliked_colors',
                   jsonb_path_query_first(p_rules, '$.disliked_colors[*] ? (!(@ == $colors[*]))', p_vocab))
    END
$$;

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
CREATE FUNCTION ootd._learn_from_likes()
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

-- ootd.like(user, outfit): record a like; true if it is new, false if the user
-- had already liked the outfit (then nothing changes).  The likes trigger
-- updates the profile in the same transaction.  Unknown user or outfit:
-- 23503 foreign_key_violation.
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
    'Like an outfit: true if new, false if already liked; updates style_dna and taste in the same transaction.';

-- ootd.unlike(user, outfit): take a like back; true if there was one.  The
-- likes trigger reverses its effect on the profile.  Unknown user or outfit:
-- 23503 foreign_key_violation.
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
    'Take a like back: true if the user had liked the outfit; reverses its effect on style_dna and taste.';

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

-- ootd.serving_status(at): is serving ready, and how much comes from the cache.
-- pool_date is the UTC date of p_at (the nightly batch's default date);
-- fallback_pools are that date's pools missing from ootd.pool_cache (their
-- feeds are served from ootd.outfits: after a crash, or on a hot standby).
CREATE FUNCTION ootd.serving_status(p_at timestamptz DEFAULT now())
RETURNS TABLE (pool_date date, pools integer, cached_pools integer, fallback_pools integer, ready boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_day    date := (coalesce(p_at, now()) AT TIME ZONE 'UTC')::date;
    v_pools  integer;
    v_cached integer := 0;
BEGIN
    SELECT count(*) INTO v_pools FROM ootd.pools p WHERE p.pool_date = v_day;
    IF NOT pg_is_in_recovery() THEN           -- a standby cannot read UNLOGGED tables
        SELECT count(*) INTO v_cached
        FROM ootd.pools p
        WHERE p.pool_date = v_day
          AND EXISTS (SELECT 1 FROM ootd.pool_cache c WHERE c.pool_date = p.pool_date AND c.cluster_id = p.cluster_id);
    END IF;
    RETURN QUERY SELECT v_day, v_pools, v_cached, v_pools - v_cached, v_pools > 0;
END
$$;
COMMENT ON FUNCTION ootd.serving_status(timestamptz) IS
    'Readiness: pools generated for the UTC date of p_at, how many are cached, how many fall back to durable storage.';

-- ootd.feed_memo becomes a row per rank keyed by the priority window's instants.
DROP TABLE ootd.feed_memo;
-- Memoized feeds: one row per rank of what ootd.feed served a user for one
-- window of a local date and a limit.  A ranking holds for a priority window
-- (Daytime 00:00-15:00 local, NightOut 15:00-24:00), and is stored once per
-- headline window inside it (night 0-5, morning 5-12, afternoon 12-15 | 15-17,
-- evening 17-21, night 21-24: where ootd._daypart_word changes), with the
-- finished headline and the window's instants valid_from/valid_to, so a repeat
-- request is a single index range read with no time-zone or string work.  The memo keeps the day's answer stable, and tells
-- tomorrow's ranking what was served today (the served_decay); rows older
-- than yesterday are dropped when the user's feed is next computed.  UNLOGGED
-- like the cache: a crash empties it and feeds are recomputed (identically,
-- except that yesterday's served_decay is forgotten).
CREATE UNLOGGED TABLE ootd.feed_memo (
    user_id       bigint NOT NULL,
    row_limit     integer NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz NOT NULL,
    rank          integer NOT NULL,
    local_date    date NOT NULL,
    epoch         bigint NOT NULL,
    outfit_id     bigint NOT NULL,
    title         text NOT NULL,
    category      text NOT NULL,
    color         text NOT NULL,
    daypart       text NOT NULL,
    score         double precision NOT NULL,
    headline      text NOT NULL,
    cluster_id    text NOT NULL,
    relaxed_rules text[] NOT NULL,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, row_limit, valid_from, rank)
);
COMMENT ON TABLE ootd.feed_memo IS 'UNLOGGED memo of served feeds: a row per rank, per user, limit and headline window (valid_from, valid_to).';

-- ootd.feed_explain reads what was served yesterday from the new memo.
CREATE OR REPLACE FUNCTION ootd.feed_explain(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, served_penalty double precision, cosine double precision,
               daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[])
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u            ootd.users;
    v_local      timestamp;
    v_date       date;
    v_hour       integer;
    v_priority   text;
    v_archetype  text;
    v_weather    text;
    v_pool_date  date;
    v_cluster    text;
    v_pool_wx    text;
    v_source     text := 'durable';
    v_candidates ootd._candidate[];
    v_headline   text;
    v_adjectives text;
    v_order      text[];
    v_level      integer := 0;
    v_relaxed    text[] := '{}';
    v_served     bigint[];
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 20 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 20, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO u FROM ootd.users WHERE id = p_user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown user %', coalesce(p_user_id::text, 'NULL')
            USING ERRCODE = 'no_data_found';
    END IF;

    -- 1. local time
    v_local := coalesce(p_at, now()) AT TIME ZONE u.timezone;
    v_date := v_local::date;
    v_hour := extract(hour FROM v_local)::integer;
    v_priority := CASE WHEN v_local::time >= time '15:00' THEN 'NightOut' ELSE 'Daytime' END;
    v_archetype := coalesce(u.style_dna ->> 'archetype', ootd.default_archetype());
    SELECT array_agg(DISTINCT m.outfit_id) INTO v_served    -- what was served yesterday
    FROM ootd.feed_memo m
    WHERE m.user_id = u.id AND m.local_date = v_date - 1;
    SELECT w.condition INTO v_weather
    FROM ootd.weather_daily w WHERE w.city = u.city AND w.day <= v_date
    ORDER BY w.day DESC LIMIT 1;

    -- 2. pool choice (each branch is one index probe; the first that finds wins)
    SELECT s.pool_date, s.cluster_id, s.weather INTO v_pool_date, v_cluster, v_pool_wx
    FROM (
        (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
         WHERE p.archetype = v_archetype AND p.weather = v_weather AND p.pool_date <= v_date
         ORDER BY p.pool_date DESC LIMIT 1)
        UNION ALL
        (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
         WHERE p.archetype = v_archetype AND p.pool_date <= v_date
         ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
        UNION ALL
        (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
         WHERE p.pool_date <= v_date
         ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
        UNION ALL
        (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
         ORDER BY p.pool_date, p.members DESC, p.cluster_id LIMIT 1)
    ) s
    LIMIT 1;
    IF NOT FOUND THEN
        RETURN;  -- no pool exists anywhere yet
    END IF;

    IF NOT pg_is_in_recovery() THEN
        SELECT array_agg(ROW(c.outfit_id, c.daypart, c.title, c.category, c.color, c.embedding)::ootd._candidate)
        INTO v_candidates
        FROM ootd.pool_cache c WHERE c.pool_date = v_pool_date AND c.cluster_id = v_cluster;
        IF v_candidates IS NOT NULL THEN
            v_source := 'cache';
        END IF;
    END IF;
    IF v_candidates IS NULL THEN
        SELECT array_agg(ROW(o.id, o.daypart, o.title, o.category, o.color, o.embedding)::ootd._candidate)
        INTO v_candidates
        FROM ootd.outfits o WHERE o.pool_date = v_pool_date AND o.cluster_id = v_cluster;
    END IF;

    -- 5. headline: "A breezy minimalist look for your afternoon in Torrance"
    SELECT w.adjective || ' ' || a.adjective INTO v_adjectives
    FROM ootd.weather_conditions w, ootd.archetypes a
    WHERE w.name = coalesce(v_weather, v_pool_wx) AND a.name = v_archetype;
    v_headline := CASE WHEN v_adjectives ~* '^[aeiou]' THEN 'An ' ELSE 'A ' END || v_adjectives
                  || ' look for your ' || ootd._daypart_word(v_hour) || ' in ' || u.city;

    -- 3. veto cascade, computed only when the rules leave nothing at all:
    -- v_order lists the veto entries strictest first (most outfits blocked),
    -- and v_level is how many of them must be relaxed to fill the feed.
    IF NOT EXISTS (SELECT 1 FROM unnest(v_candidates) c
                   WHERE NOT coalesce(u.style_rules -> 'disliked_categories' ? c.category, false)
                     AND NOT coalesce(u.style_rules -> 'disliked_colors' ? c.color, false)) THEN
        SELECT array_agg(b.rule ORDER BY b.n DESC, b.rule) INTO v_order
        FROM (SELECT v.rule, count(*) AS n
              FROM unnest(v_candidates) c,
                   unnest(ARRAY['disliked_categories:' || c.category, 'disliked_colors:' || c.color]) AS v(rule)
              WHERE (v.rule LIKE 'disliked_categories:%' AND u.style_rules -> 'disliked_categories' ? c.category)
                 OR (v.rule LIKE 'disliked_colors:%' AND u.style_rules -> 'disliked_colors' ? c.color)
              GROUP BY v.rule) b;
        SELECT min(x.level) INTO v_level
        FROM (SELECT l.level, count(*) OVER (ORDER BY l.level) AS served_at_level
              FROM (SELECT greatest(array_position(v_order, 'disliked_categories:' || c.category),
                                    coalesce(array_position(v_order, 'disliked_colors:' || c.color), 0)) AS level
                    FROM unnest(v_candidates) c) l) x
        WHERE x.served_at_level >= least(p_limit, cardinality(v_candidates));
        v_relaxed := coalesce(v_order[1:v_level], '{}');
    END IF;

    RETURN QUERY
    WITH w AS (
        SELECT * FROM ootd.scoring_weights LIMIT 1
    ), scored AS (
        SELECT c.outfit_id, c.title, c.category, c.color, c.daypart,
               array_remove(ARRAY[
                   CASE WHEN u.style_rules -> 'disliked_categories' ? c.category
                        THEN 'disliked_categories:' || c.category END,
                   CASE WHEN u.style_rules -> 'disliked_colors' ? c.color
                        THEN 'disliked_colors:' || c.color END], NULL) AS violations,
               c.daypart = v_priority AS priority,
               CASE WHEN u.style_dna -> 'preferred_colors' ? c.color THEN w.preferred_color ELSE 1 END AS color_boost,
               CASE WHEN u.style_rules -> 'liked_categories' ? c.category THEN w.liked_category ELSE 1 END AS category_boost,
               1 + w.category_affinity * ln(1 + greatest(coalesce(
                   (u.style_dna -> 'category_affinity' ->> c.category)::double precision, 0), 0)) AS affinity_boost,
               CASE WHEN EXISTS (SELECT 1 FROM ootd.likes l WHERE l.user_id = u.id AND l.outfit_id = c.outfit_id)
                    THEN w.liked_decay ELSE 1 END AS liked_penalty,
               CASE WHEN c.outfit_id = ANY (v_served) THEN w.served_decay ELSE 1 END AS served_penalty,
               coalesce(1 - (u.taste OPERATOR(public.<=>) c.embedding), 0) AS cosine,
               CASE WHEN c.daypart = v_priority THEN w.daypart_priority ELSE 0 END AS daypart_bonus,
               w.jitter * (hashint8extended(c.outfit_id, u.id # (v_date - date '2000-01-01'))::double precision
                           / 9223372036854775808.0) AS jitter,
               w.cosine AS cosine_weight
        FROM unnest(v_candidates) c CROSS JOIN w
    ), totals AS (
        SELECT s.*,
               s.violations <@ v_relaxed AS served,
               s.color_boost * s.category_boost * s.affinity_boost * s.liked_penalty * s.served_penalty
               + s.cosine_weight * s.cosine + s.daypart_bonus + s.jitter AS score
        FROM scored s
    ), ordered AS (
        SELECT t.*,
               row_number() OVER (PARTITION BY t.served, t.priority, t.category
                                  ORDER BY t.score DESC, t.outfit_id) AS nth_of_category
        FROM totals t
    )
    SELECT CASE WHEN o.served
                THEN row_number() OVER (ORDER BY o.served DESC, o.priority DESC, (o.nth_of_category > 2),
                                                 o.score DESC, o.outfit_id)::integer END,
           o.outfit_id, o.title, o.category, o.color, o.daypart, o.violations, o.priority,
           o.color_boost, o.category_boost, o.affinity_boost, o.liked_penalty, o.served_penalty, o.cosine,
           o.daypart_bonus,
           o.jitter, o.score, v_headline, v_cluster, v_pool_date, v_source, v_relaxed
    FROM ordered o
    ORDER BY 1 NULLS LAST, o.score DESC, o.outfit_id;
END
$$;

-- ootd.feed gets a STABLE fast path (the memo read) and a VOLATILE slow path.
-- ootd._feed_compute(user, at, limit): ootd.feed's slow path: rank with
-- ootd.feed_explain and, where the server accepts writes, memoize the answer.
CREATE FUNCTION ootd._feed_compute(p_user_id bigint, p_at timestamptz, p_limit integer)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               score double precision, headline text, cluster_id text, relaxed_rules text[])
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_at      timestamptz := p_at;
    v_epoch   bigint;
    v_tz      text;
    v_city    text;
    v_from    timestamptz;
    v_to      timestamptz;
    v_local   timestamp;
    v_ids     bigint[];
    v_titles  text[];
    v_cats    text[];
    v_colors  text[];
    v_parts   text[];
    v_scores  double precision[];
    v_head    text;
    v_cluster text;
    v_relaxed text[];
BEGIN
    -- slow path: rank now (raises P0002 for an unknown user)
    SELECT s.epoch INTO v_epoch FROM ootd.serving_state s;
    SELECT array_agg(e.outfit_id ORDER BY e.rank), array_agg(e.title ORDER BY e.rank),
           array_agg(e.category ORDER BY e.rank), array_agg(e.color ORDER BY e.rank),
           array_agg(e.daypart ORDER BY e.rank), array_agg(e.score ORDER BY e.rank),
           min(e.headline), min(e.cluster_id), min(e.relaxed_rules)
    INTO v_ids, v_titles, v_cats, v_colors, v_parts, v_scores, v_head, v_cluster, v_relaxed
    FROM ootd.feed_explain(p_user_id, v_at, p_limit) e
    WHERE e.rank <= p_limit;
    IF v_ids IS NULL THEN
        RETURN;  -- no pool exists anywhere yet
    END IF;

    IF NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off' THEN
        SELECT u.timezone, u.city INTO v_tz, v_city FROM ootd.users u WHERE u.id = p_user_id;
        v_local := v_at AT TIME ZONE v_tz;
        IF v_local::time >= time '15:00' THEN         -- the NightOut window of the local date
            v_from := (v_local::date + time '15:00') AT TIME ZONE v_tz;
            v_to   := (v_local::date + 1)::timestamp AT TIME ZONE v_tz;
        ELSE                                          -- the Daytime window
            v_from := v_local::date::timestamp AT TIME ZONE v_tz;
            v_to   := (v_local::date + time '15:00') AT TIME ZONE v_tz;
        END IF;
        DELETE FROM ootd.feed_memo m
        WHERE m.user_id = p_user_id
          AND (m.local_date < v_local::date - 1
               OR (m.row_limit = p_limit AND m.valid_from >= v_from AND m.valid_from < v_to));
        -- the ranking, once per headline window of the priority window (hours
        -- where ootd._daypart_word or the priority changes)
        INSERT INTO ootd.feed_memo AS m (user_id, row_limit, valid_from, valid_to, rank, local_date, epoch,
                                         outfit_id, title, category, color, daypart, score, headline,
                                         cluster_id, relaxed_rules)
        SELECT p_user_id, p_limit,
               (v_local::date + make_interval(hours => w.from_hour)) AT TIME ZONE v_tz,
               (v_local::date + make_interval(hours => w.to_hour)) AT TIME ZONE v_tz,
               x.ord, v_local::date, v_epoch, x.oid, x.title, x.category, x.color, x.daypart, x.score,
               split_part(v_head, ' look for your ', 1) || ' look for your '
               || ootd._daypart_word(w.from_hour) || ' in ' || v_city,
               v_cluster, v_relaxed
        FROM (VALUES (0, 5), (5, 12), (12, 15), (15, 17), (17, 21), (21, 24)) AS w(from_hour, to_hour)
        CROSS JOIN unnest(v_ids, v_titles, v_cats, v_colors, v_parts, v_scores)
             WITH ORDINALITY AS x(oid, title, category, color, daypart, score, ord)
        WHERE (w.from_hour >= 15) = (v_local::time >= time '15:00')
        ON CONFLICT ON CONSTRAINT feed_memo_pkey DO UPDATE
            SET valid_to = excluded.valid_to, local_date = excluded.local_date, epoch = excluded.epoch,
                outfit_id = excluded.outfit_id, title = excluded.title, category = excluded.category,
                color = excluded.color, daypart = excluded.daypart, score = excluded.score,
                headline = excluded.headline, cluster_id = excluded.cluster_id,
                relaxed_rules = excluded.relaxed_rules, computed_at = now();
    END IF;

    RETURN QUERY
    SELECT x.ord::integer, x.oid, x.title, x.category, x.color, x.daypart, x.score, v_head, v_cluster, v_relaxed
    FROM unnest(v_ids, v_titles, v_cats, v_colors, v_parts, v_scores)
         WITH ORDINALITY AS x(oid, title, category, color, daypart, score, ord)
    ORDER BY x.ord;
END
$$;
COMMENT ON FUNCTION ootd._feed_compute(bigint, timestamptz, integer) IS
    'Private: ootd.feed''s slow path (rank, then memoize where writable).';

-- ootd.feed(user, at, limit): the user's feed, p_limit outfits (1..20), zero
-- LLM calls.  A repeat request within the same priority window (local date
-- and headline daypart) and limit is one index range read of ootd.feed_memo
-- (STABLE, no write, no time-zone or string work); otherwise
-- ootd._feed_compute ranks the pool with ootd.feed_explain (see its header
-- for the steps) and memoizes the answer.  Same answer all local day.
CREATE OR REPLACE FUNCTION ootd.feed(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               score double precision, headline text, cluster_id text, relaxed_rules text[])
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_at timestamptz := coalesce(p_at, now());
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 20 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 20, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    RETURN QUERY
    SELECT m.rank, m.outfit_id, m.title, m.category, m.color, m.daypart, m.score, m.headline,
           m.cluster_id, m.relaxed_rules
    FROM ootd.feed_memo m
    WHERE m.user_id = p_user_id
      AND m.row_limit = p_limit
      AND m.valid_from <= v_at AND v_at < m.valid_to
      AND m.epoch = (SELECT s.epoch FROM ootd.serving_state s)
    ORDER BY m.valid_from, m.rank;   -- one window matches: the primary key's order, no sort
    IF NOT FOUND THEN
        RETURN QUERY SELECT * FROM ootd._feed_compute(p_user_id, v_at, p_limit);
    END IF;
END
$$;

-- -------------------------------------------------------------- triggers ----
CREATE TRIGGER likes_learn_insert
    AFTER INSERT ON ootd.likes
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._learn_from_likes();
CREATE TRIGGER likes_learn_delete
    AFTER DELETE ON ootd.likes
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._learn_from_likes();

-- ------------------------------------------------------------ privileges ----
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ootd.like(bigint, bigint), ootd.unlike(bigint, bigint),
                          ootd.serving_status(timestamptz) TO ootd_api;
GRANT EXECUTE ON FUNCTION ootd.serving_status(timestamptz) TO ootd_analyst;

RESET ROLE;
