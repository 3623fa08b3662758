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
