-- =============================================================================
-- Revision 0008: serving rebuilt as a pure read (frozen)
-- ootd.feed computes every request in one set-based query (ootd._ranked,
-- inlined) and writes nothing: the memo (feed_memo, serving_state, epochs,
-- forget triggers, _feed_compute) and the served-yesterday decay are gone
-- ("don't repeat yesterday" is a generation concern now).  It runs in
-- read-only transactions and on hot standbys (ootd._pool_rows reads the
-- durable pools there).  Helpers for the 15:00 boundary, the headline, the
-- jitter and the veto cascade; the likes trigger's running means and color
-- ranking each get one helper both of its paths use.
-- =============================================================================
SET ROLE ootd_owner;

-- ------------------------------------------------------------- the memo ----
DROP TRIGGER users_forget_feeds ON ootd.users;
DROP TRIGGER pool_cache_bump_epoch_insert ON ootd.pool_cache;
DROP TRIGGER pool_cache_bump_epoch_delete ON ootd.pool_cache;
DROP TRIGGER scoring_weights_bump_epoch ON ootd.scoring_weights;
DROP FUNCTION ootd.feed(bigint, timestamptz, integer);
DROP FUNCTION ootd._feed_compute(bigint, timestamptz, integer);
DROP FUNCTION ootd.feed_explain(bigint, timestamptz, integer);
DROP FUNCTION ootd._forget_feeds();
DROP FUNCTION ootd._bump_serving_epoch();
DROP TABLE ootd.feed_memo;
DROP TABLE ootd.serving_state;
ALTER TABLE ootd.scoring_weights DROP COLUMN served_decay;
DROP TYPE ootd._candidate;

-- ---------------------------------------------------------------- types ----

-- One candidate outfit of the pool being served, and where it was read.
CREATE TYPE ootd._candidate AS (
    outfit_id bigint,
    daypart   text,
    title     text,
    category  text,
    color     text,
    embedding public.vector(32),
    source    text
);
COMMENT ON TYPE ootd._candidate IS 'Private: one outfit of the pool being served; source is cache or durable.';

-- -------------------------------------------------------------- functions ----

-- ootd._priority_daypart(local): the daypart ranked first at a local time:
-- NightOut from 15:00, Daytime before.  The one home of the 15:00 boundary.
CREATE FUNCTION ootd._priority_daypart(p_local timestamp)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_local::time >= time '15:00' THEN 'NightOut' ELSE 'Daytime' END
$$;
COMMENT ON FUNCTION ootd._priority_daypart(timestamp) IS 'Private: NightOut from 15:00 local time, Daytime before (the one 15:00 boundary).';

-- ootd._headline(weather adjective, archetype adjective, local hour, city):
-- "A breezy minimalist look for your afternoon in Torrance".  The one home of
-- the headline's wording.
CREATE FUNCTION ootd._headline(p_weather text, p_archetype text, p_hour integer, p_city text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_weather ~* '^[aeiou]' THEN 'An ' ELSE 'A ' END || p_weather || ' ' || p_archetype
           || ' look for your ' || ootd._daypart_word(p_hour) || ' in ' || p_city
$$;
COMMENT ON FUNCTION ootd._headline(text, text, integer, text) IS
    'Private: the feed headline from the weather and archetype adjectives, the local hour and the city.';

-- ootd._jitter(scale, user, outfit, local date): the deterministic tie-break,
-- scale x a hash of (user, outfit, local date) in [-1, 1): the same all local
-- day (no flicker, unlike random()), different for every user.
CREATE FUNCTION ootd._jitter(p_scale double precision, p_user_id bigint, p_outfit_id bigint, p_local_date date)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_scale * (hashint8extended(p_outfit_id, p_user_id # (p_local_date - date '2000-01-01'))::double precision
                      / 9223372036854775808.0)
$$;
COMMENT ON FUNCTION ootd._jitter(double precision, bigint, bigint, date) IS
    'Private: deterministic tie-break, scale x hash(user, outfit, local date) in [-1, 1).';

-- ootd._relax_vetoes(violations, limit): the veto cascade, for when no
-- candidate survives the vetoes.  violations holds one JSON array per
-- candidate of the veto entries it breaks ("disliked_categories:Dress").
-- Returns the entries to relax, strictest first (the entry blocking the most
-- candidates; ties by name): the fewest that serve least(limit, candidates).
CREATE FUNCTION ootd._relax_vetoes(p_violations jsonb, p_limit integer)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    WITH c AS (
        SELECT v.n, v.rules FROM jsonb_array_elements(p_violations) WITH ORDINALITY AS v(rules, n)
    ), strictness AS (
        SELECT e.rule, row_number() OVER (ORDER BY count(*) DESC, e.rule) AS pos
        FROM c CROSS JOIN LATERAL jsonb_array_elements_text(c.rules) AS e(rule)
        GROUP BY e.rule
    ), levels AS (              -- entries to relax before each candidate is served
        SELECT coalesce(max(s.pos), 0) AS level
        FROM c LEFT JOIN LATERAL jsonb_array_elements_text(c.rules) AS e(rule) ON true
        LEFT JOIN strictness s ON s.rule = e.rule
        GROUP BY c.n
    ), needed AS (
        SELECT min(l.level) AS level
        FROM (SELECT l.level, count(*) OVER (ORDER BY l.level) AS served FROM levels l) l
        WHERE l.served >= least(p_limit, (SELECT count(*) FROM c))
    )
    SELECT coalesce(array_agg(s.rule ORDER BY s.pos), '{}')
    FROM strictness s, needed n
    WHERE s.pos <= n.level
$$;
COMMENT ON FUNCTION ootd._relax_vetoes(jsonb, integer) IS
    'Private: the veto entries to relax, strictest first, so that least(limit, candidates) outfits are served.';

-- ootd._pool_rows(pool date, cluster): the pool's 20 candidates, from the
-- UNLOGGED cache when it holds them, else from durable ootd.outfits (after a
-- crash; always on a hot standby, which cannot read UNLOGGED tables: this is
-- PL/pgSQL so that a standby never even plans the cache query).
CREATE FUNCTION ootd._pool_rows(p_pool_date date, p_cluster_id text)
RETURNS SETOF ootd._candidate
LANGUAGE plpgsql STABLE ROWS 20
AS $$
BEGIN
    IF NOT pg_is_in_recovery() THEN
        RETURN QUERY SELECT c.outfit_id, c.daypart, c.title, c.category, c.color, c.embedding, 'cache'
                     FROM ootd.pool_cache c WHERE c.pool_date = p_pool_date AND c.cluster_id = p_cluster_id;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT o.id, o.daypart, o.title, o.category, o.color, o.embedding, 'durable'
                 FROM ootd.outfits o WHERE o.pool_date = p_pool_date AND o.cluster_id = p_cluster_id;
END
$$;
COMMENT ON FUNCTION ootd._pool_rows(date, text) IS
    'Private: a pool''s candidates from the cache, else (after a crash, on a standby) from durable ootd.outfits.';

-- ootd._serving_context(user, at): what the ranking needs to know about the
-- user at an instant, as one row: profile, local date, priority daypart, the
-- pool to serve and the headline.  Pool: the user's cluster (archetype x the
-- city's weather on the local date); else the latest earlier pool of the
-- same archetype and weather; else the same archetype, any weather; else any
-- pool (latest up to the local date, then the earliest after it); each branch
-- is one index probe and the first that finds wins.  No row: unknown user or
-- no pool at all.
CREATE FUNCTION ootd._serving_context(p_user_id bigint, p_at timestamptz)
RETURNS TABLE (user_id bigint, dna jsonb, rules jsonb, taste public.vector, local_date date,
               priority_daypart text, pool_date date, cluster_id text, headline text)
LANGUAGE sql STABLE
AS $$
    SELECT u.id, u.style_dna, u.style_rules, u.taste, t.local::date, ootd._priority_daypart(t.local),
           p.pool_date, p.cluster_id,
           ootd._headline(wc.adjective, ar.adjective, extract(hour FROM t.local)::integer, u.city)
    FROM ootd.users u
    CROSS JOIN LATERAL (SELECT p_at AT TIME ZONE u.timezone AS local,
                               coalesce(u.style_dna ->> 'archetype', ootd.default_archetype()) AS archetype) t
    LEFT JOIN LATERAL (SELECT w.condition FROM ootd.weather_daily w
                       WHERE w.city = u.city AND w.day <= t.local::date
                       ORDER BY w.day DESC LIMIT 1) wx ON true
    CROSS JOIN LATERAL (
        SELECT s.pool_date, s.cluster_id, s.weather
        FROM ((SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p.archetype = t.archetype AND p.weather = wx.condition AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p.archetype = t.archetype AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               ORDER BY p.pool_date, p.members DESC, p.cluster_id LIMIT 1)) s
        LIMIT 1) p
    LEFT JOIN ootd.weather_conditions wc ON wc.name = coalesce(wx.condition, p.weather)
    LEFT JOIN ootd.archetypes ar ON ar.name = t.archetype
    WHERE u.id = p_user_id
$$;
COMMENT ON FUNCTION ootd._serving_context(bigint, timestamptz) IS
    'Private: the user at an instant: profile, local date, priority daypart, pool to serve, headline (inlined into ootd._ranked).';

-- ootd._ranked(user, at, limit): the whole last mile as one set-based query
-- (inlined into ootd.feed and ootd.feed_explain, so each caches one plan):
-- every candidate of the user's pool with each score component and its rank.
--  1. local time from the user's IANA zone; the priority daypart;
--  2. the pool (ootd._serving_context), read by ootd._pool_rows;
--  3. hard veto: an outfit in a disliked category or color is not served,
--     unless nothing survives: then ootd._relax_vetoes relaxes entries,
--     strictest first, until p_limit outfits (or the whole pool) are served;
--  4. score = preferred_color x liked_category x (1 + category_affinity x
--     ln(1 + affinity)) x liked_decay (already liked) + cosine x cos(taste,
--     embedding) + daypart_priority (priority daypart) + jitter;
--  5. order: priority daypart first; within it at most two outfits of a
--     category before any third (diversity); then score; then outfit id.
-- Vetoed candidates have a NULL rank.
CREATE FUNCTION ootd._ranked(p_user_id bigint, p_at timestamptz, p_limit integer)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[])
LANGUAGE sql STABLE
AS $$
    WITH x AS (
        SELECT * FROM ootd._serving_context(p_user_id, p_at)
    ), c AS (
        SELECT c.*, array_remove(ARRAY[
                   CASE WHEN x.rules -> 'disliked_categories' ? c.category THEN 'disliked_categories:' || c.category END,
                   CASE WHEN x.rules -> 'disliked_colors' ? c.color THEN 'disliked_colors:' || c.color END],
                   NULL) AS violations
        FROM x CROSS JOIN LATERAL ootd._pool_rows(x.pool_date, x.cluster_id) c
    ), relaxed AS (
        SELECT CASE WHEN bool_or(cardinality(c.violations) = 0) THEN '{}'::text[]
                    ELSE ootd._relax_vetoes(jsonb_agg(to_jsonb(c.violations)), p_limit) END AS rules
        FROM c
    ), scored AS (
        SELECT c.outfit_id, c.title, c.category, c.color, c.daypart, c.violations, c.source,
               c.violations <@ r.rules AS served, c.daypart = x.priority_daypart AS priority,
               CASE WHEN x.dna -> 'preferred_colors' ? c.color THEN w.preferred_color ELSE 1 END AS color_boost,
               CASE WHEN x.rules -> 'liked_categories' ? c.category THEN w.liked_category ELSE 1 END AS category_boost,
               1 + w.category_affinity * ln(1 + greatest(coalesce(
                   (x.dna -> 'category_affinity' ->> c.category)::double precision, 0), 0)) AS affinity_boost,
               CASE WHEN c.outfit_id IN (SELECT k.outfit_id FROM ootd.likes k WHERE k.user_id = x.user_id)
                    THEN w.liked_decay ELSE 1 END AS liked_penalty,
               coalesce(1 - (x.taste OPERATOR(public.<=>) c.embedding), 0) AS cosine,
               CASE WHEN c.daypart = x.priority_daypart THEN w.daypart_priority ELSE 0 END AS daypart_bonus,
               ootd._jitter(w.jitter, x.user_id, c.outfit_id, x.local_date) AS jitter,
               w.cosine AS cosine_weight, r.rules AS relaxed_rules
        FROM c CROSS JOIN x CROSS JOIN relaxed r CROSS JOIN ootd.scoring_weights w
    ), ordered AS (
        SELECT s.*, row_number() OVER (PARTITION BY s.served, s.priority, s.category
                                       ORDER BY s.score DESC, s.outfit_id) AS nth_of_category
        FROM (SELECT s.*, s.color_boost * s.category_boost * s.affinity_boost * s.liked_penalty
                          + s.cosine_weight * s.cosine + s.daypart_bonus + s.jitter AS score
              FROM scored s) s
    )
    SELECT CASE WHEN o.served
                THEN row_number() OVER (ORDER BY o.served DESC, o.priority DESC, (o.nth_of_category > 2),
                                                 o.score DESC, o.outfit_id)::integer END,
           o.outfit_id, o.title, o.category, o.color, o.daypart, o.violations, o.priority,
           o.color_boost, o.category_boost, o.affinity_boost, o.liked_penalty, o.cosine, o.daypart_bonus,
           o.jitter, o.score, x.headline, x.cluster_id, x.pool_date, o.source, o.relaxed_rules
    FROM ordered o CROSS JOIN x
$$;
COMMENT ON FUNCTION ootd._ranked(bigint, timestamptz, integer) IS
    'Private: every candidate of the user''s pool with each score component and its rank (NULL = vetoed); the ranking''s one home.';

-- ootd._check_limit(limit): p_limit of feed and feed_explain, or 22023 outside 1..20.
CREATE FUNCTION ootd._check_limit(p_limit integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 20 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 20, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_limit;
END
$$;
COMMENT ON FUNCTION ootd._check_limit(integer) IS 'Private: p_limit, or 22023 when it is outside 1..20.';

-- ootd._check_user(user): P0002 unless the user exists.
CREATE FUNCTION ootd._check_user(p_user_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ootd.users u WHERE u.id = p_user_id) THEN
        RAISE EXCEPTION 'unknown user %', coalesce(p_user_id::text, 'NULL') USING ERRCODE = 'no_data_found';
    END IF;
END
$$;
COMMENT ON FUNCTION ootd._check_user(bigint) IS 'Private: raises P0002 (unknown user N) unless the user exists.';

-- ootd.feed(user, at, limit): the user's feed, p_limit outfits (1..20), zero
-- LLM calls: the served rows of ootd._ranked (see its header for the steps).
-- A pure read, computed on every call.  Errors: unknown user P0002; p_limit
-- outside 1..20 22023.  With no pools at all the result is empty.
CREATE FUNCTION ootd.feed(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               score double precision, headline text, cluster_id text, relaxed_rules text[])
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_limit(p_limit);
    RETURN QUERY
    SELECT r.rank, r.outfit_id, r.title, r.category, r.color, r.daypart, r.score, r.headline, r.cluster_id,
           r.relaxed_rules
    FROM ootd._ranked(p_user_id, coalesce(p_at, now()), p_limit) r
    WHERE r.rank <= p_limit
    ORDER BY r.rank;
    IF NOT FOUND THEN
        PERFORM ootd._check_user(p_user_id);   -- no rows: an unknown user (P0002), or no pool at all
    END IF;
END
$$;
COMMENT ON FUNCTION ootd.feed(bigint, timestamptz, integer) IS
    'The user''s Outfit-of-the-Day feed at a moment: ranked outfits, headline, cluster, relaxed veto rules; a pure read.';

-- ootd.feed_explain(user, at, limit): every candidate of the user's pool with
-- each score component, veto and rank (NULL = vetoed), the pool and where it
-- was read; ootd.feed returns the rows with a rank <= p_limit.
CREATE FUNCTION ootd.feed_explain(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[])
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_limit(p_limit), ootd._check_user(p_user_id);
    RETURN QUERY
    SELECT r.* FROM ootd._ranked(p_user_id, coalesce(p_at, now()), p_limit) r
    ORDER BY r.rank NULLS LAST, r.score DESC, r.outfit_id;
END
$$;
COMMENT ON FUNCTION ootd.feed_explain(bigint, timestamptz, integer) IS
    'Every candidate of the user''s pool with each score component, veto and rank (NULL rank = vetoed); for analysts.';


-- ------------------------------------------------ likes: one home per rule ----
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


-- ootd._rank_colors(user, affinity, limit): preferred_colors recomputed from
-- color_affinity: by strength, then by the user's latest like of that color,
-- then by name; `limit` colors at most (NULL: all, as when no like is left and
-- the stated colors come back in their stated order).
CREATE FUNCTION ootd._rank_colors(p_user_id bigint, p_affinity jsonb, p_limit integer)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(jsonb_agg(t.key ORDER BY t.strength DESC, t.last_liked DESC NULLS LAST, t.key), '[]')
    FROM (SELECT e.key, e.value::numeric AS strength, rl.last_liked
          FROM jsonb_each(p_affinity) e
          LEFT JOIN (SELECT x.color, max(l.liked_at) AS last_liked
                     FROM ootd.likes l JOIN ootd.outfits x ON x.id = l.outfit_id
                     WHERE l.user_id = p_user_id
                     GROUP BY x.color) rl ON rl.color = e.key
          ORDER BY e.value::numeric DESC, rl.last_liked DESC NULLS LAST, e.key
          LIMIT p_limit) t
$$;
COMMENT ON FUNCTION ootd._rank_colors(bigint, jsonb, integer) IS
    'Private: preferred_colors from color_affinity: by strength, latest like, name; p_limit at most.';


-- ootd._fold_likes(user, outfits, sign): one user's profile with the outfits
-- liked (sign 1) or unliked (sign -1), one at a time, in order; the user row
-- is locked FOR NO KEY UPDATE and updated.  ootd._learn_from_likes calls it in
-- user-id order for every statement but a single like.
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


-- ootd._learn_from_likes(): statement-level trigger on ootd.likes, for INSERT
-- and for DELETE (transition table `changed`).  In the same transaction it
-- folds the statement's likes into each user's profile (or takes unliked ones
-- back out); its UPDATE of users goes through the users triggers like any
-- other (validated, memoized feeds forgotten).  One outfit at a time,
-- with n the user's likes before it and W = 1 + n observations (the stated
-- profile counts as one):
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
-- One like (the common statement) is one UPDATE whose SET computes the new
-- profile from the row it updates; every other statement goes through the
-- loop, one user at a time.  Both compute the same values.
-- Lost updates and deadlocks: the single-like UPDATE locks its row and, if a
-- concurrent like of the same user committed first, re-reads the newest
-- version and recomputes (READ COMMITTED); the loop locks each user row FOR
-- NO KEY UPDATE, in user-id order, and computes from that read.  Statements
-- touching several users lock them in the same order, so they cannot
-- deadlock.  (Under REPEATABLE READ a concurrent like of the same user is a
-- 40001 to retry.)
-- Precision: means are float8 rounded to 12 decimals and taste is float4, so
-- undoing likes restores the earlier values up to rounding that grows with
-- the likes in between: means within 1e-11 and taste (each component, and
-- taste_norm) within 1e-5 per like, e.g. 1e-9 and 1e-3 after 100 likes and
-- their unlikes; every other field is restored exactly (tests/test_likes.py).
CREATE OR REPLACE FUNCTION ootd._learn_from_likes()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sign   integer := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
    v_rows   bigint;
    v_user   bigint;
    v_outfit bigint;
    r        record;
BEGIN
    SELECT count(*), min(c.user_id), min(c.outfit_id) INTO v_rows, v_user, v_outfit FROM changed c;
    IF v_rows = 0 THEN
        RETURN NULL;                   -- nothing changed (a repeated like)
    ELSIF v_rows = 1 AND v_sign > 0 THEN
        -- One like: ootd._fold_likes' arithmetic for one outfit, as one UPDATE of the row it reads.
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
            WHERE x.id = v_outfit)
        WHERE p.id = v_user;
        RETURN NULL;
    END IF;
    FOR r IN
        SELECT c.user_id, array_agg(x ORDER BY c.liked_at, c.outfit_id) AS outfits
        FROM changed c JOIN ootd.outfits x ON x.id = c.outfit_id
        GROUP BY c.user_id
        ORDER BY c.user_id              -- the same lock order in every statement: no deadlock
    LOOP
        PERFORM ootd._fold_likes(r.user_id, r.outfits, v_sign);
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._learn_from_likes() IS
    'Private trigger: folds liked (or unliked) outfits into the user''s style_dna and taste; no lost updates, no deadlocks.';


-- ------------------------------------------ rehydration on a standby ----
-- ootd.rehydrate_cache(day, days): after an unclean shutdown (crash recovery
-- empties UNLOGGED tables) copy the durable pools of the local dates being
-- served around `day` (day - days .. day + 1) back into the cache.
-- Idempotent, and writes nothing when the cache already holds them (or on a
-- hot standby, which cannot write), so `ootd db start`, `ootd serve` and `ootd nightly` call it every time.
-- Returns rows added.  Feeds never need it to be correct, only to be served
-- from the cache.
CREATE OR REPLACE FUNCTION ootd.rehydrate_cache(p_day date DEFAULT current_date, p_days integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rows integer;
BEGIN
    IF pg_is_in_recovery() THEN
        RETURN 0;                      -- a standby can neither read nor write UNLOGGED tables
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ootd.outfits o
                   WHERE o.pool_date BETWEEN p_day - p_days AND p_day + 1
                     AND NOT EXISTS (SELECT 1 FROM ootd.pool_cache c
                                     WHERE c.pool_date = o.pool_date AND c.cluster_id = o.cluster_id
                                       AND c.outfit_id = o.id)) THEN
        RETURN 0;                      -- nothing missing: no write
    END IF;
    INSERT INTO ootd.pool_cache (pool_date, cluster_id, outfit_id, slot, daypart, title, category, color,
                                 vibe, trend, dare, embedding)
    SELECT o.pool_date, o.cluster_id, o.id, o.slot, o.daypart, o.title, o.category, o.color,
           o.vibe, o.trend, o.dare, o.embedding
    FROM ootd.outfits o
    WHERE o.pool_date BETWEEN p_day - p_days AND p_day + 1
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION ootd.rehydrate_cache(date, integer) IS
    'Refill ootd.pool_cache with the durable pools of day - days .. day + 1 (after a crash emptied it); returns rows added, 0 without writing when none is missing.';

-- ------------------------------------------------------------ privileges ----
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ootd.feed(bigint, timestamptz, integer) TO ootd_api, ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.feed_explain(bigint, timestamptz, integer) TO ootd_analyst;

RESET ROLE;
