-- Revision 0004, downgrade: remove likes learning; style_dna loses color_affinity.
SET ROLE ootd_owner;
DROP TRIGGER likes_learn_delete ON ootd.likes;
DROP TRIGGER likes_learn_insert ON ootd.likes;
DROP FUNCTION ootd.serving_status(timestamptz);
DROP FUNCTION ootd.unlike(bigint, bigint);
DROP FUNCTION ootd.like(bigint, bigint);
DROP FUNCTION ootd._check_like_target(bigint, bigint);
DROP FUNCTION ootd._learn_from_likes();
CREATE OR REPLACE FUNCTION ootd.feed(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               score double precision, headline text, cluster_id text, relaxed_rules text[])
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_at      timestamptz := coalesce(p_at, now());
    v_epoch   bigint;
    v_tz      text;
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
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 20 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 20, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- fast path: the memoized answer of this local date and daypart
    RETURN QUERY
    SELECT x.ord::integer, x.oid, x.title, x.category, x.color, x.daypart, x.score,
           regexp_replace(m.headline, ' look for your [a-z]+ in ', ' look for your '
                          || ootd._daypart_word(extract(hour FROM v_at AT TIME ZONE u.timezone)::integer) || ' in '),
           m.cluster_id, m.relaxed_rules
    FROM ootd.users u
    JOIN ootd.feed_memo m
      ON m.user_id = u.id
     AND m.local_date = (v_at AT TIME ZONE u.timezone)::date
     AND m.priority = CASE WHEN (v_at AT TIME ZONE u.timezone)::time >= time '15:00' THEN 'NightOut' ELSE 'Daytime' END
     AND m.row_limit = p_limit
     AND m.epoch = (SELECT s.epoch FROM ootd.serving_state s)
    CROSS JOIN LATERAL unnest(m.outfit_ids, m.titles, m.categories, m.colors, m.dayparts, m.scores)
         WITH ORDINALITY AS x(oid, title, category, color, daypart, score, ord)
    WHERE u.id = p_user_id
    ORDER BY x.ord;
    IF FOUND THEN
        RETURN;
    END IF;

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
        IF pg_current_xact_id_if_assigned() IS NULL THEN
            -- The memo is a disposable cache: when it is this transaction's only
            -- write, commit it without waiting for a WAL flush.
            PERFORM set_config('synchronous_commit', 'off', true);
        END IF;
        SELECT u.timezone INTO v_tz FROM ootd.users u WHERE u.id = p_user_id;
        v_local := v_at AT TIME ZONE v_tz;
        INSERT INTO ootd.feed_memo AS m (user_id, local_date, priority, row_limit, epoch, outfit_ids, titles,
                                         categories, colors, dayparts, scores, headline, cluster_id, relaxed_rules)
        VALUES (p_user_id, v_local::date,
                CASE WHEN v_local::time >= time '15:00' THEN 'NightOut' ELSE 'Daytime' END,
                p_limit, v_epoch, v_ids, v_titles, v_cats, v_colors, v_parts, v_scores, v_head, v_cluster, v_relaxed)
        ON CONFLICT (user_id, local_date, priority, row_limit) DO UPDATE
            SET epoch = excluded.epoch, outfit_ids = excluded.outfit_ids, titles = excluded.titles,
                categories = excluded.categories, colors = excluded.colors, dayparts = excluded.dayparts,
                scores = excluded.scores, headline = excluded.headline, cluster_id = excluded.cluster_id,
                relaxed_rules = excluded.relaxed_rules, computed_at = now();
    END IF;

    RETURN QUERY
    SELECT x.ord::integer, x.oid, x.title, x.category, x.color, x.daypart, x.score, v_head, v_cluster, v_relaxed
    FROM unnest(v_ids, v_titles, v_cats, v_colors, v_parts, v_scores)
         WITH ORDINALITY AS x(oid, title, category, color, daypart, score, ord)
    ORDER BY x.ord;
END
$$;
DROP FUNCTION ootd._feed_compute(bigint, timestamptz, integer);
DROP TABLE ootd.feed_memo;
-- Memoized feeds: what ootd.feed served a user for a local date, priority
-- daypart and limit.  Makes a repeat request one indexed read, keeps the day's
-- answer stable, and tells tomorrow's ranking what was served today (the
-- served_decay).  UNLOGGED like the cache: a crash empties it and feeds are
-- recomputed (identically, except that yesterday's served_decay is forgotten).
CREATE UNLOGGED TABLE ootd.feed_memo (
    user_id       bigint NOT NULL,
    local_date    date NOT NULL,
    priority      text NOT NULL,
    row_limit     integer NOT NULL,
    epoch         bigint NOT NULL,
    outfit_ids    bigint[] NOT NULL,
    titles        text[] NOT NULL,
    categories    text[] NOT NULL,
    colors        text[] NOT NULL,
    dayparts      text[] NOT NULL,
    scores        double precision[] NOT NULL,
    headline      text NOT NULL,
    cluster_id    text NOT NULL,
    relaxed_rules text[] NOT NULL,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, local_date, priority, row_limit)
);
COMMENT ON TABLE ootd.feed_memo IS 'UNLOGGED memo of served feeds per user, local date, priority daypart and limit.';

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
    SELECT array_agg(DISTINCT x.id) INTO v_served          -- what was served yesterday
    FROM ootd.feed_memo m, unnest(m.outfit_ids) AS x(id)
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

UPDATE ootd.users SET style_dna = style_dna - 'color_affinity' WHERE style_dna ? 'color_affinity';

CREATE OR REPLACE FUNCTION ootd._style_shape_problem(p_dna jsonb, p_rules jsonb)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(p_dna) IS DISTINCT FROM 'object' THEN
            'style_dna must be a JSON object'
        WHEN jsonb_typeof(p_rules) IS DISTINCT FROM 'object' THEN
            'style_rules must be a JSON object'
        WHEN p_dna - '{archetype,preferred_colors,category_affinity,vibe,trend,dare}'::text[] <> '{}' THEN
            format('style_dna has unknown key %s (known: archetype, preferred_colors, category_affinity, vibe, trend, dare)',
                   jsonb_path_query_first(p_dna - '{archetype,preferred_colors,category_affinity,vibe,trend,dare}'::text[],
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

CREATE OR REPLACE FUNCTION ootd._users_validate()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    bad     record;
    v_vocab jsonb := ootd.vocabulary();  -- once per statement, not per row
BEGIN
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

CREATE OR REPLACE FUNCTION ootd._forget_feeds()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_TABLE_NAME = 'users' THEN
        UPDATE ootd.feed_memo m SET epoch = 0 WHERE m.user_id IN (SELECT c.id FROM changed c) AND m.epoch <> 0;
    ELSE
        UPDATE ootd.feed_memo m SET epoch = 0 WHERE m.user_id IN (SELECT c.user_id FROM changed c) AND m.epoch <> 0;
    END IF;
    RETURN NULL;
END
$$;

ALTER TABLE ootd.users DROP COLUMN taste_norm, DROP COLUMN likes_count;
RESET ROLE;
