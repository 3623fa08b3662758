-- Revision 0004, downgrade: remove likes learning; style_dna loses color_affinity.
SET ROLE ootd_owner;
DROP TRIGGER likes_learn_delete ON ootd.likes;
DROP TRIGGER likes_learn_insert ON ootd.likes;
DROP FUNCTION ootd.serving_status(timestamptz);
DROP FUNCTION ootd.unlike(bigint, bigint);
DROP FUNCTION ootd.like(bigint, bigint);
DROP FUNCTION ootd._check_like_target(bigint, bigint);
DROP FUNCTION ootd._learn_from_likes();
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
