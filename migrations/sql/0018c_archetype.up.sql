-- =============================================================================
-- Revision 0018, part c (up): the archetype term of the score (frozen; issue 27)
-- The score gains a multiplier for the profile's affinity to the archetype of
-- the pool each outfit was drawn from, 1 + scoring_weights.archetype x
-- ln(1 + affinity): style_dna.archetype_affinity, which the likes trigger
-- learns (the stated archetype seeded at 1, + 1 per like of an outfit of a
-- pool of that archetype), or, without it, the stated archetype at 1.  The
-- headline names the archetype more than half of the items shown were drawn
-- from (none when no archetype has them).  ootd.ranked_outfit (feed_explain,
-- simulate) gains the archetype_boost component, last.  Users with likes are
-- re-learned, so their archetype affinity counts what they liked.
-- On a distributed schema (Citus) a distributed or reference table's ALTER
-- and COMMENT go one by one, through EXECUTE (Citus forwards the statement's
-- text to the workers), and the re-learning comes after every DDL.
-- =============================================================================
SET ROLE ootd_owner;

-- ---------------------------------------------------------- scoring weights --
DO $ddl$
BEGIN
    EXECUTE $sql$ALTER TABLE ootd.scoring_weights ADD COLUMN archetype double precision NOT NULL DEFAULT 1.00$sql$;
    EXECUTE $sql$COMMENT ON COLUMN ootd.scoring_weights.archetype IS
    'Multiplier step per unit of affinity to the archetype of the pool an outfit was drawn from: 1 + w * ln(1 + affinity).'$sql$;
    EXECUTE $sql$ALTER TABLE ootd.scoring_weights DROP CONSTRAINT scoring_weights_in_range$sql$;
END
$ddl$;

-- ootd._weight_ranges(): the range of every numeric weight, in column
-- order: the one home of the ranges (the table's CHECK through
-- ootd._weights_doc_problem, experiments' and what-if weights through
-- ootd._weights_with, the simulator's sliders through ootd.weight_catalog).
-- A weight without a range of its own stops at ootd._weight_limits().largest.
CREATE OR REPLACE FUNCTION ootd._weight_ranges()
RETURNS TABLE (name text, min_value double precision, min_inclusive boolean, max_value double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT r.name, r.min_value, r.min_inclusive, coalesce(r.max_value, l.largest)
    FROM (VALUES (1, 'preferred_color', 0::double precision, false, NULL::double precision),
                 (2, 'liked_category', 0, false, NULL),
                 (3, 'category_affinity', 0, true, NULL),
                 (4, 'cosine', 0, true, NULL),
                 (5, 'daypart_priority', 0, true, NULL),
                 (6, 'liked_decay', 0, true, 1),
                 (7, 'jitter', 0, true, 1e-6),
                 (8, 'archetype', 0, true, NULL)) AS r(n, name, min_value, min_inclusive, max_value)
    CROSS JOIN ootd._weight_limits() l
    ORDER BY r.n
$$;
COMMENT ON FUNCTION ootd._weight_ranges() IS
    'Private: each numeric scoring weight''s range (min, whether min is allowed, max: at most ootd._weight_limits().largest).';

DO $ddl$
BEGIN
    EXECUTE $sql$ALTER TABLE ootd.scoring_weights ADD CONSTRAINT scoring_weights_in_range CHECK (ootd._weights_doc_problem(jsonb_build_object(
    'preferred_color', preferred_color, 'liked_category', liked_category, 'category_affinity', category_affinity,
    'cosine', cosine, 'daypart_priority', daypart_priority, 'liked_decay', liked_decay, 'jitter', jitter,
    'neighbour_pools', neighbour_pools, 'archetype', archetype)) IS NULL)$sql$;
    EXECUTE $sql$ALTER TYPE ootd.ranked_outfit ADD ATTRIBUTE archetype_boost double precision$sql$;
    EXECUTE $sql$COMMENT ON TYPE ootd.ranked_outfit IS
    'A ranked candidate: rank (NULL = vetoed), vetoes, score components and total, headline, pool, source, drawn_from, variant, archetype_boost.'$sql$;
END
$ddl$;

-- -------------------------------------------------------------------- users --
-- ---------------------------------------------------------------- functions --
-- ootd._style_shape_problem(dna, rules): NULL when both documents have the
-- right shape, else a sentence naming the first problem.  Affinities are
-- numbers from 0 to 1000000 (ootd._weight_limits().largest, written out so
-- the expression stays a constant): a larger one overflows the feed's
-- scoring for that user (22003 on every request).  (Strict jsonpath:
-- lax mode would unwrap [0.5] into 0.5 and let a nested array pass).  One CASE
-- expression with no sub-selects, so the planner inlines it and validating a
-- million-row COPY costs a few C-level jsonb operations per row.
CREATE OR REPLACE FUNCTION ootd._style_shape_problem(p_dna jsonb, p_rules jsonb)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(p_dna) IS DISTINCT FROM 'object' THEN
            'style_dna must be a JSON object'
        WHEN jsonb_typeof(p_rules) IS DISTINCT FROM 'object' THEN
            'style_rules must be a JSON object'
        WHEN p_dna - '{archetype,preferred_colors,category_affinity,color_affinity,archetype_affinity,vibe,trend,dare}'::text[] <> '{}' THEN
            format('style_dna has unknown key %s (known: archetype, preferred_colors, category_affinity, color_affinity, archetype_affinity, vibe, trend, dare)',
                   jsonb_path_query_first(p_dna - '{archetype,preferred_colors,category_affinity,color_affinity,archetype_affinity,vibe,trend,dare}'::text[],
                                          '$.keyvalue().key'))
        WHEN p_rules - '{liked_categories,disliked_categories,disliked_colors}'::text[] <> '{}' THEN
            format('style_rules has unknown key %s (known: liked_categories, disliked_categories, disliked_colors)',
                   jsonb_path_query_first(p_rules - '{liked_categories,disliked_categories,disliked_colors}'::text[],
                                          '$.keyvalue().key'))
        WHEN p_dna ? 'archetype' AND jsonb_typeof(p_dna -> 'archetype') <> 'string' THEN
            'style_dna.archetype must be a string'
        WHEN p_dna ? 'preferred_colors' AND (jsonb_typeof(p_dna -> 'preferred_colors') <> 'array'
              OR jsonb_path_exists(p_dna, 'strict $.preferred_colors[*] ? (@.type() != "string")', '{}', true)) THEN
            'style_dna.preferred_colors must be an array of color names'
        WHEN p_dna ? 'category_affinity' AND (jsonb_typeof(p_dna -> 'category_affinity') <> 'object'
              OR jsonb_path_exists(p_dna, 'strict $.category_affinity.* ? (@.type() != "number" || @ < 0)', '{}', true)) THEN
            'style_dna.category_affinity must map category names to numbers >= 0'
        WHEN p_dna ? 'color_affinity' AND (jsonb_typeof(p_dna -> 'color_affinity') <> 'object'
              OR jsonb_path_exists(p_dna, 'strict $.color_affinity.* ? (@.type() != "number" || @ < 0)', '{}', true)) THEN
            'style_dna.color_affinity must map color names to numbers >= 0'
        WHEN p_dna ? 'archetype_affinity' AND (jsonb_typeof(p_dna -> 'archetype_affinity') <> 'object'
              OR jsonb_path_exists(p_dna, 'strict $.archetype_affinity.* ? (@.type() != "number" || @ < 0)', '{}', true)) THEN
            'style_dna.archetype_affinity must map archetype names to numbers >= 0'
        WHEN jsonb_path_exists(p_dna, 'strict $.category_affinity.* ? (@ > 1000000)', '{}', true) THEN
            format('style_dna.category_affinity must map category names to numbers between 0 and 1000000 (%s is larger)',
                   jsonb_path_query_first(p_dna, 'strict $.category_affinity.keyvalue() ? (@.value > 1000000).key'))
        WHEN jsonb_path_exists(p_dna, 'strict $.color_affinity.* ? (@ > 1000000)', '{}', true) THEN
            format('style_dna.color_affinity must map color names to numbers between 0 and 1000000 (%s is larger)',
                   jsonb_path_query_first(p_dna, 'strict $.color_affinity.keyvalue() ? (@.value > 1000000).key'))
        WHEN jsonb_path_exists(p_dna, 'strict $.archetype_affinity.* ? (@ > 1000000)', '{}', true) THEN
            format('style_dna.archetype_affinity must map archetype names to numbers between 0 and 1000000 (%s is larger)',
                   jsonb_path_query_first(p_dna, 'strict $.archetype_affinity.keyvalue() ? (@.value > 1000000).key'))
        WHEN jsonb_path_exists(p_dna, 'strict $.vibe ? (@.type() != "number" || @ < 0 || @ > 1)', '{}', true) THEN
            'style_dna.vibe must be a number between 0 and 1'
        WHEN jsonb_path_exists(p_dna, 'strict $.trend ? (@.type() != "number" || @ < 0 || @ > 1)', '{}', true) THEN
            'style_dna.trend must be a number between 0 and 1'
        WHEN jsonb_path_exists(p_dna, 'strict $.dare ? (@.type() != "number" || @ < 0 || @ > 1)', '{}', true) THEN
            'style_dna.dare must be a number between 0 and 1'
        WHEN p_rules ? 'liked_categories' AND (jsonb_typeof(p_rules -> 'liked_categories') <> 'array'
              OR jsonb_path_exists(p_rules, 'strict $.liked_categories[*] ? (@.type() != "string")', '{}', true)) THEN
            'style_rules.liked_categories must be an array of category names'
        WHEN p_rules ? 'disliked_categories' AND (jsonb_typeof(p_rules -> 'disliked_categories') <> 'array'
              OR jsonb_path_exists(p_rules, 'strict $.disliked_categories[*] ? (@.type() != "string")', '{}', true)) THEN
            'style_rules.disliked_categories must be an array of category names'
        WHEN p_rules ? 'disliked_colors' AND (jsonb_typeof(p_rules -> 'disliked_colors') <> 'array'
              OR jsonb_path_exists(p_rules, 'strict $.disliked_colors[*] ? (@.type() != "string")', '{}', true)) THEN
            'style_rules.disliked_colors must be an array of color names'
        WHEN jsonb_path_exists(p_rules, '$.liked_categories[*] ? (@ == $.disliked_categories[*])') THEN
            format('category %s is both liked and disliked in style_rules',
                   jsonb_path_query_first(p_rules, '$.liked_categories[*] ? (@ == $.disliked_categories[*])'))
    END
$$;
COMMENT ON FUNCTION ootd._style_shape_problem(jsonb, jsonb) IS
    'Private: NULL if style_dna/style_rules have a valid shape, else the first problem (used by the users CHECK).';

-- ootd._style_vocabulary_problem(dna, rules, vocab): NULL when every name in
-- the (well-shaped) documents exists in the vocabulary, else a sentence naming
-- the first unknown one.  The WHEN tests are C-level containment checks; the
-- jsonpath that finds the culprit runs only for a bad row.
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
        WHEN p_dna -> 'archetype_affinity' <> '{}'
             AND jsonb_path_exists(p_dna, '$.archetype_affinity.keyvalue() ? (!(@.key == $archetypes[*]))', p_vocab) THEN
            format('unknown archetype %s in style_dna.archetype_affinity',
                   jsonb_path_query_first(p_dna, '$.archetype_affinity.keyvalue() ? (!(@.key == $archetypes[*])).key', p_vocab))
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
COMMENT ON FUNCTION ootd._style_vocabulary_problem(jsonb, jsonb, jsonb) IS
    'Private: NULL if every archetype, category and color named in style_dna/style_rules exists, else the first unknown one.';

-- ootd.refresh_vocabulary(): regenerate ootd._vocabulary_snapshot() from
-- ootd.vocabulary() and ootd.timezones; run it after adding an archetype,
-- category or color (on Citus, from the coordinator: the new body reaches
-- every worker).  Returns the new snapshot.  Owner only.  One call at a time
-- (an advisory lock).  A name the new snapshot would drop while a user still
-- names it is refused (23503, nothing changed): the users CHECK would refuse
-- every later write of that user, likes included; update those users first.
CREATE OR REPLACE FUNCTION ootd.refresh_vocabulary()
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_snapshot jsonb;
    v_old      jsonb := ootd._vocabulary_snapshot();
    v_dropped  jsonb;
    v_used     record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('ootd.refresh_vocabulary'));
    SELECT ootd.vocabulary() - 'weather'
           || jsonb_build_object('timezones', (SELECT coalesce(jsonb_object_agg(t.name, true ORDER BY t.name), '{}')
                                               FROM ootd.timezones t))
    INTO v_snapshot;
    SELECT coalesce(jsonb_agg(jsonb_build_object('kind', d.kind, 'name', d.name)), '[]') INTO v_dropped
    FROM (SELECT 'archetype' AS kind, a.name FROM jsonb_array_elements_text(v_old -> 'archetypes') a(name)
          WHERE NOT (v_snapshot -> 'archetypes') ? a.name
          UNION ALL
          SELECT 'category', c.name FROM jsonb_array_elements_text(v_old -> 'categories') c(name)
          WHERE NOT (v_snapshot -> 'categories') ? c.name
          UNION ALL
          SELECT 'color', c.name FROM jsonb_array_elements_text(v_old -> 'colors') c(name)
          WHERE NOT (v_snapshot -> 'colors') ? c.name
          UNION ALL
          SELECT 'time zone', t.name FROM jsonb_object_keys(v_old -> 'timezones') t(name)
          WHERE NOT (v_snapshot -> 'timezones') ? t.name) d;
    -- the DDL first: on Citus a function command cannot follow a multi-shard query in a transaction
    EXECUTE format($ddl$CREATE OR REPLACE FUNCTION ootd._vocabulary_snapshot()
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN %L::jsonb;
END
$$$ddl$, v_snapshot::text);
    IF v_dropped = '[]' THEN           -- the usual case (a name added): no scan of the users
        RETURN v_snapshot;
    END IF;
    SELECT d.kind, d.name, count(*) AS users, min(u.id) AS example INTO v_used
    FROM jsonb_to_recordset(v_dropped) AS d(kind text, name text)
    JOIN ootd.users u
      ON CASE d.kind
             WHEN 'archetype' THEN u.style_dna ->> 'archetype' = d.name OR u.style_dna -> 'archetype_affinity' ? d.name
             WHEN 'category' THEN u.style_dna -> 'category_affinity' ? d.name
                                  OR u.style_rules -> 'liked_categories' ? d.name
                                  OR u.style_rules -> 'disliked_categories' ? d.name
             WHEN 'color' THEN u.style_dna -> 'preferred_colors' ? d.name OR u.style_dna -> 'color_affinity' ? d.name
                               OR u.style_rules -> 'disliked_colors' ? d.name
             ELSE u.timezone = d.name
         END
    GROUP BY d.kind, d.name
    ORDER BY d.kind, d.name
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'cannot drop % "%" from the vocabulary: % user(s) name it (user % among them)',
            v_used.kind, v_used.name, v_used.users, v_used.example
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'Update those users first (ootd.put_user), or put the name back; nothing was changed.';
    END IF;
    RETURN v_snapshot;                 -- (the raise above rolls the new body back)
END
$fn$;
COMMENT ON FUNCTION ootd.refresh_vocabulary() IS
    'Regenerate the vocabulary users are validated against (run after adding an archetype, category or color).';

-- -------------------------------------------------------------------- likes --
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
CREATE OR REPLACE FUNCTION ootd._learn(p_user_id bigint)
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

-- --------------------------------------------------------------------- feed --
-- ootd._served_archetype(archetypes): the archetype the items shown are,
-- as the headline names it, from the archetypes of the pools they were drawn
-- from (in rank order): the one more than half of them share; NULL when none
-- does (three items of three archetypes), so the headline names no archetype
-- rather than one most items are not.  So a headline never contradicts its
-- items' archetype either.
-- (PL/pgSQL: its query is planned once per session, not on every feed.)
CREATE FUNCTION ootd._served_archetype(p_archetypes text[])
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN (SELECT a.archetype
            FROM unnest(p_archetypes) AS a(archetype)
            GROUP BY a.archetype
            HAVING 2 * count(*) > cardinality(p_archetypes));
END
$$;
COMMENT ON FUNCTION ootd._served_archetype(text[]) IS
    'Private: the archetype more than half of the items shown were drawn from, else NULL (the headline names none).';

-- ootd._headline(weather adjective, archetype adjective, occasion, city):
-- "A breezy minimalist look for tonight in Torrance"; without an archetype
-- adjective (the items shown share no archetype) "A breezy look for tonight
-- in Torrance".  The one home of the headline's wording; the weather is the
-- served pool's, the archetype the items' (ootd._served_archetype).
CREATE OR REPLACE FUNCTION ootd._headline(p_weather text, p_archetype text, p_occasion text, p_city text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_weather ~* '^[aeiou]' THEN 'An ' ELSE 'A ' END || p_weather || coalesce(' ' || p_archetype, '')
           || ' look for ' || p_occasion || ' in ' || p_city
$$;
COMMENT ON FUNCTION ootd._headline(text, text, text, text) IS
    'Private: the feed headline from the served pool''s weather adjective, the items'' archetype adjective (if any), the occasion and the city.';

DROP FUNCTION ootd._outfit_score(ootd.scoring_weights, bigint, jsonb, jsonb, public.vector, timestamp, boolean,
                                 bigint, text, text, text, public.vector);
DROP FUNCTION ootd._score(ootd.scoring_weights, bigint, jsonb, jsonb, public.vector, date, text, boolean, bigint,
                          text, text, text, public.vector);

-- ------------------------------------------------------------------ ranking --
-- ootd._score(weights, user, dna, rules, taste, local date, priority daypart,
-- liked, outfit, category, color, daypart, embedding, archetype affinity): an
-- outfit's score for a user, component by component, and the total:
-- preferred_color x liked_category x (1 + category_affinity x ln(1 +
-- affinity)) x (1 + archetype x ln(1 + archetype affinity)) x liked_decay
-- (already liked) + cosine x cos(taste, embedding) (0 without a taste, or for
-- a zero vector, whose cosine pgvector gives as NaN) + daypart_priority (the
-- priority daypart) + jitter.  The archetype affinity is the profile's to the
-- archetype of the pool the outfit was drawn from (ootd._archetype_affinity:
-- the stated archetype at 1 until likes teach more), passed as a number so
-- the caller looks it up once per candidate.  The one home of the scoring
-- formula: the feed (ootd._ranked) and the evaluation's oracle use it.
CREATE FUNCTION ootd._score(w ootd.scoring_weights, p_user_id bigint, p_dna jsonb, p_rules jsonb,
                            p_taste public.vector, p_local_date date, p_priority text, p_liked boolean,
                            p_outfit_id bigint, p_category text, p_color text, p_daypart text,
                            p_embedding public.vector, p_archetype_affinity double precision)
RETURNS TABLE (color_boost double precision, category_boost double precision, affinity_boost double precision,
               archetype_boost double precision, liked_penalty double precision, cosine double precision,
               daypart_bonus double precision, jitter double precision, score double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT s.*, s.color_boost * s.category_boost * s.affinity_boost * s.archetype_boost * s.liked_penalty
                + w.cosine * s.cosine + s.daypart_bonus + s.jitter
    FROM (SELECT CASE WHEN p_dna -> 'preferred_colors' ? p_color THEN w.preferred_color ELSE 1 END AS color_boost,
                 CASE WHEN p_rules -> 'liked_categories' ? p_category THEN w.liked_category ELSE 1 END
                     AS category_boost,
                 1 + w.category_affinity * ln(1 + greatest(coalesce(
                     (p_dna -> 'category_affinity' ->> p_category)::double precision, 0), 0)) AS affinity_boost,
                 1 + w.archetype * ln(1 + greatest(coalesce(p_archetype_affinity, 0), 0)) AS archetype_boost,
                 CASE WHEN p_liked THEN w.liked_decay ELSE 1 END AS liked_penalty,
                 coalesce(nullif(1 - (p_taste OPERATOR(public.<=>) p_embedding), 'NaN'), 0) AS cosine,
                 CASE WHEN p_daypart = p_priority THEN w.daypart_priority ELSE 0 END AS daypart_bonus,
                 ootd._jitter(w.jitter, p_user_id, p_outfit_id, p_local_date) AS jitter) s
$$;
COMMENT ON FUNCTION ootd._score(ootd.scoring_weights, bigint, jsonb, jsonb, public.vector, date, text, boolean, bigint,
                                text, text, text, public.vector, double precision) IS
    'Private: an outfit''s score components for a user and their total (the one home of the scoring formula).';

-- ootd._rank(context..., weights, limit, variant): the whole last mile as
-- one set-based query: every candidate with each score component and its
-- rank, as ootd.ranked_outfit rows (variant: the experiment variant whose
-- weights these are, reported as given).
-- The context comes as the fields of an ootd.serving_context (liked: the
-- profile's liked outfit ids), so each candidate reads plain values.
--  1. the candidates (ootd._pool_rows): the served pool, and the priority
--     daypart's outfits of its same-weather neighbours (weights.neighbour_pools);
--  2. hard veto: an outfit in a disliked category or color is not served,
--     unless fewer than p_limit survive: then ootd._relax_vetoes relaxes
--     entries, strictest first, until p_limit outfits (or all candidates)
--     are served;
--  3. score: ootd._score (each component and the total; the archetype term
--     reads the archetype of the pool each candidate was drawn from);
--  4. order: outfits that break no veto first, then the relaxed ones; then
--     the priority daypart first; within it each category's best outfit
--     before any category's second, and among those, each color's best
--     before its second (diversity: three categories and three colors in a
--     top-3 whenever the candidates' best per category span three colors);
--     then score; then outfit id;
--  5. headline, computed once: the served pool's weather, the archetype the
--     first p_limit served outfits were drawn from (ootd._served_archetype:
--     more than half of them; else none), their occasion (ootd._occasion)
--     and the city.
-- Vetoed candidates have a NULL rank.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE OR REPLACE FUNCTION ootd._rank(p_user_id bigint, p_dna jsonb, p_rules jsonb, p_taste public.vector, p_liked bigint[],
                           p_local timestamp, p_local_date date, p_priority text, p_pool_date date,
                           p_cluster_id text, p_city text, p_weather_adjective text, w ootd.scoring_weights,
                           p_limit integer, p_variant text)
RETURNS SETOF ootd.ranked_outfit
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    v_affinities jsonb := ootd._archetype_affinities(p_dna);   -- once, not per candidate
BEGIN
    RETURN QUERY
    WITH c AS (
        SELECT c.*, array_remove(ARRAY[
                   CASE WHEN p_rules -> 'disliked_categories' ? c.category THEN 'disliked_categories:' || c.category END,
                   CASE WHEN p_rules -> 'disliked_colors' ? c.color THEN 'disliked_colors:' || c.color END],
                   NULL) AS violations,
               c.outfit_id = ANY (p_liked) AS liked,
               a.archetype, ootd._archetype_affinity(v_affinities, a.archetype) AS archetype_affinity
        FROM ootd._pool_rows(p_pool_date, p_cluster_id, p_priority, w.neighbour_pools) c
        LEFT JOIN LATERAL (SELECT p.archetype FROM ootd.pools p
                           WHERE p.pool_date = p_pool_date AND p.cluster_id = c.drawn_from) a ON true
    ), relaxed AS (
        SELECT CASE WHEN count(*) FILTER (WHERE cardinality(c.violations) = 0) >= least(p_limit, count(*))
                    THEN '{}'::text[]
                    ELSE ootd._relax_vetoes((SELECT jsonb_agg(to_jsonb(v.violations)) FROM c v), p_limit) END AS rules
        FROM c                 -- (the sub-select runs only when some rule must be relaxed)
    ), scored AS (             -- fixed-width sort keys first: the sorts below deform them for every comparison
        SELECT c.violations <@ r.rules AS served, cardinality(c.violations) = 0 AS clean,
               c.daypart = p_priority AS priority, p.score, c.outfit_id, p.color_boost, p.category_boost,
               p.affinity_boost, p.archetype_boost, p.liked_penalty, p.cosine, p.daypart_bonus, p.jitter,
               c.category, c.color, c.title, c.daypart, c.violations, c.source, c.drawn_from, c.archetype,
               r.rules AS relaxed_rules
        FROM c CROSS JOIN relaxed r
        CROSS JOIN LATERAL ootd._score(w, p_user_id, p_dna, p_rules, p_taste, p_local_date, p_priority,
                                       c.liked, c.outfit_id, c.category, c.color, c.daypart, c.embedding,
                                       c.archetype_affinity) p
    ), by_category AS (
        SELECT row_number() OVER (PARTITION BY s.served, s.clean, s.priority, s.category
                                  ORDER BY s.score DESC, s.outfit_id) > 1 AS second_of_category,
               s.*
        FROM scored s
    ), ordered AS (            -- colors repeat among each category's best, or among the rest
        SELECT row_number() OVER (PARTITION BY s.served, s.clean, s.priority, s.second_of_category, s.color
                                  ORDER BY s.score DESC, s.outfit_id) > 1 AS second_of_color,
               s.*
        FROM by_category s
    ), ranked AS (
        SELECT CASE WHEN o.served THEN row_number() OVER (
                   ORDER BY o.served DESC, o.clean DESC, o.priority DESC, o.second_of_category, o.second_of_color,
                            o.score DESC, o.outfit_id)::integer END AS rank,
               o.*
        FROM ordered o
    ), head AS (
        SELECT ootd._served_archetype(array_agg(r.archetype ORDER BY r.rank)) AS archetype,
               ootd._occasion(p_local, array_agg(r.daypart ORDER BY r.rank)) AS occasion
        FROM ranked r
        WHERE r.rank <= p_limit
    ), headline AS (
        SELECT ootd._headline(p_weather_adjective, a.adjective, h.occasion, p_city) AS text
        FROM head h
        LEFT JOIN ootd.archetypes a ON a.name = h.archetype
    )
    SELECT r.rank, r.outfit_id, r.title, r.category, r.color, r.daypart, r.violations, r.priority,
           r.color_boost, r.category_boost, r.affinity_boost, r.liked_penalty, r.cosine, r.daypart_bonus,
           r.jitter, r.score, h.text, p_cluster_id, p_pool_date, r.source, r.relaxed_rules, r.drawn_from, p_variant,
           r.archetype_boost
    FROM ranked r CROSS JOIN headline h;
END
$$;
COMMENT ON FUNCTION ootd._rank(bigint, jsonb, jsonb, public.vector, bigint[], timestamp, date, text, date, text, text, text,
                               ootd.scoring_weights, integer, text) IS
    'Private: every candidate with each score component and its rank (NULL = vetoed), and the headline; the ranking''s one home.';

-- --------------------------------------------------------------- evaluation --
-- ----------------------------------------------------------------- helpers --
-- ootd._outfit_score(weights, user, dna, rules, taste, local, liked, outfit,
-- category, color, daypart, embedding, archetype): the feed's score of any
-- outfit for a user at a local time (ootd._score, the formula's one home;
-- archetype: that of the outfit's pool), so the oracle can score outfits of
-- pools the user is not served.
CREATE FUNCTION ootd._outfit_score(w ootd.scoring_weights, p_user_id bigint, p_dna jsonb, p_rules jsonb,
                                   p_taste public.vector, p_local timestamp, p_liked boolean,
                                   p_outfit_id bigint, p_category text, p_color text, p_daypart text,
                                   p_embedding public.vector, p_archetype text)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT s.score
    FROM ootd._score(w, p_user_id, p_dna, p_rules, p_taste, p_local::date, ootd._priority_daypart(p_local), p_liked,
                     p_outfit_id, p_category, p_color, p_daypart, p_embedding,
                     ootd._archetype_affinity(ootd._archetype_affinities(p_dna), p_archetype)) s
$$;
COMMENT ON FUNCTION ootd._outfit_score(ootd.scoring_weights, bigint, jsonb, jsonb, public.vector, timestamp, boolean,
                                       bigint, text, text, text, public.vector, text) IS
    'Private: the feed''s score of any outfit for a user at a local time (ootd._ranked''s formula), for the oracle.';

-- -------------------------------------------------------------- measurement --
-- ootd._evaluate_feed(user, at, k): one served feed, measured.  The oracle's
-- candidates are every outfit of the local day's pools whose weather is the
-- user's (the city's latest forecast up to that day, as ootd.feed reads it)
-- plus the served pool and the candidates ootd._ranked read for it (the same
-- outfits, except in a sweep, where other outfits stand in for the pool),
-- minus those breaking a veto the feed did not relax; gain = max(0, the
-- feed's score with the weights the user is served) (ootd._outfit_score,
-- ootd._assignment).  ndcg = DCG(served) / DCG(best k of the oracle);
-- pool_ceiling = DCG(best k of the candidates read) / the same.  No row
-- without a pool.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE OR REPLACE FUNCTION ootd._evaluate_feed(p_user_id bigint, p_at timestamptz, p_k integer)
RETURNS SETOF ootd.evaluation_feed
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    w ootd.scoring_weights := (ootd._assignment(p_user_id)).weights;   -- the weights the user is served
BEGIN
    RETURN QUERY
    WITH r AS (
        SELECT * FROM ootd._ranked(p_user_id, p_at, p_k)
    ), f AS (
        SELECT r.cluster_id, r.pool_date, r.headline, r.relaxed_rules, count(*)::integer AS pool_size
        FROM r GROUP BY r.cluster_id, r.pool_date, r.headline, r.relaxed_rules
    ), u AS (
        SELECT u.id, u.style_dna AS dna, u.style_rules AS rules, u.taste, t.local,
               (SELECT w.condition FROM ootd.weather_daily w
                WHERE w.city = u.city AND w.day <= t.local::date ORDER BY w.day DESC LIMIT 1) AS weather
        FROM ootd.users u CROSS JOIN LATERAL (SELECT p_at AT TIME ZONE u.timezone AS local) t
        WHERE u.id = p_user_id
    ), pools AS (
        SELECT f.pool_date, f.cluster_id FROM f
        UNION
        SELECT p.pool_date, p.cluster_id FROM ootd.pools p, u WHERE p.pool_date = u.local::date AND p.weather = u.weather
    ), ids AS (
        SELECT o.id FROM pools p JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id
        UNION
        SELECT r.outfit_id FROM r
    ), c AS (
        SELECT o.id, o.category, o.color, o.daypart, o.embedding,
               o.id IN (SELECT r.outfit_id FROM r) AS own,
               NOT ootd._vetoed(u.rules, f.relaxed_rules, o.category, o.color) AS admissible,
               greatest(ootd._outfit_score(w, u.id, u.dna, u.rules, u.taste, u.local,
                                           EXISTS (SELECT 1 FROM ootd.likes k WHERE k.user_id = u.id AND k.outfit_id = o.id),
                                           o.id, o.category, o.color, o.daypart, o.embedding,
                                           (SELECT p.archetype FROM ootd.pools p
                                            WHERE p.pool_date = o.pool_date AND p.cluster_id = o.cluster_id)), 0) AS gain
        FROM ids JOIN ootd.outfits o ON o.id = ids.id
        CROSS JOIN u CROSS JOIN f
    ), s AS (                -- scalar lookups: a join lets the planner hash c on a wild row estimate
        SELECT r.rank, r.outfit_id, r.category, r.color, r.daypart,
               (SELECT c.gain FROM c WHERE c.id = r.outfit_id) AS gain,
               (SELECT c.embedding FROM c WHERE c.id = r.outfit_id) AS embedding
        FROM r
        WHERE r.rank <= p_k
    ), ideal AS (
        SELECT ootd._dcg(ARRAY(SELECT c.gain FROM c WHERE c.admissible ORDER BY c.gain DESC LIMIT p_k)) AS oracle,
               ootd._dcg(ARRAY(SELECT c.gain FROM c WHERE c.admissible AND c.own ORDER BY c.gain DESC LIMIT p_k)) AS pool
    )
    SELECT u.id, u.local::time, p_at, p_k, f.cluster_id, f.pool_date, f.headline, f.relaxed_rules,
           ARRAY(SELECT s.outfit_id FROM s ORDER BY s.rank),
           ARRAY(SELECT s.category FROM s ORDER BY s.rank),
           ARRAY(SELECT s.color FROM s ORDER BY s.rank),
           ARRAY(SELECT s.daypart FROM s ORDER BY s.rank),
           f.pool_size,
           (SELECT count(*) FROM s WHERE ootd._vetoed(u.rules, f.relaxed_rules, s.category, s.color))::integer,
           EXISTS (SELECT 1 FROM s WHERE s.daypart <> ootd._headline_occasion(f.headline)),
           ootd._dcg(ARRAY(SELECT s.gain FROM s ORDER BY s.rank)) / nullif(i.oracle, 0),
           i.pool / nullif(i.oracle, 0),
           (SELECT avg(a.embedding OPERATOR(public.<=>) b.embedding) FROM s a JOIN s b ON a.rank < b.rank)
    FROM u CROSS JOIN f CROSS JOIN ideal i;
END
$$;
COMMENT ON FUNCTION ootd._evaluate_feed(bigint, timestamptz, integer) IS
    'Private: one served feed measured: NDCG@k against the 1:1 oracle, pool ceiling, vetoes, headline, diversity.';

-- ------------------------------------------------------------- re-learning --
-- Every user with likes is learned again (ootd._learn), in user id order: their
-- archetype affinity counts the likes they have.
DO $relearn$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT u.id FROM ootd.users u WHERE u.likes_count > 0 ORDER BY u.id LOOP
        PERFORM ootd._learn(r.id);
    END LOOP;
END
$relearn$;

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;

RESET ROLE;
