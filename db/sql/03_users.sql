-- =============================================================================
-- ootd: users and their validation
-- Users with their stated rules and learned style DNA, each row validated by
-- a CHECK constraint that no setting switches off.
-- =============================================================================

-- ------------------------------------------------------------------- tables --
-- style_dna:   {"archetype": "Minimal", "preferred_colors": ["Beige", ...],
--               "category_affinity": {"Dress": 2, ...},
--               "color_affinity": {"Beige": 2.5, ...},   (kept by the likes triggers)
--               "archetype_affinity": {"Minimal": 3, ...}, (kept by the likes triggers)
--               "vibe": 0.4, "trend": 0.6, "dare": 0.2}
-- style_rules: {"liked_categories": [...], "disliked_categories": [...],
--               "disliked_colors": [...]}
-- Both are validated by the CHECK constraint users_profile_valid (below):
-- shapes, known keys only, and names that exist in the reference tables.
CREATE TABLE ootd.users (
    id          bigint PRIMARY KEY CHECK (id > 0),
    city        text NOT NULL REFERENCES ootd.cities (name),
    timezone    text NOT NULL,
    style_dna   jsonb NOT NULL DEFAULT '{}',
    style_rules jsonb NOT NULL DEFAULT '{}',
    taste       public.vector(32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    likes_count integer NOT NULL DEFAULT 0 CHECK (likes_count >= 0),
    taste_norm  real NOT NULL DEFAULT 1 CHECK (taste_norm >= 0),
    stated_dna        jsonb,
    stated_taste      public.vector(32),
    stated_taste_norm real,
    CONSTRAINT users_learning_state CHECK (CASE WHEN likes_count = 0
        THEN stated_dna IS NULL AND stated_taste IS NULL AND stated_taste_norm IS NULL
        ELSE stated_dna IS NOT NULL AND stated_taste_norm IS NOT NULL END)
);
COMMENT ON TABLE ootd.users IS 'App users with their style DNA (learned), style rules (stated) and taste vector.';
COMMENT ON COLUMN ootd.users.timezone IS 'IANA zone name (see ootd.timezones); decides the user''s local date and daypart.';
COMMENT ON COLUMN ootd.users.taste IS 'Taste vector in the outfit-embedding space (32 dims); cosine against outfit embeddings.';
COMMENT ON COLUMN ootd.users.likes_count IS 'The user''s rows in ootd.likes (kept by the likes trigger); with the stated profile as one more observation, the weight of the learned means.';
COMMENT ON COLUMN ootd.users.taste_norm IS 'Length of the mean of the stated taste and the liked embeddings, whose direction is taste.';
COMMENT ON COLUMN ootd.users.stated_dna IS 'While the user has likes: style_dna as stated before the first (ootd.put_user edits it too); it comes back verbatim with the last unlike.  NULL without likes.';
COMMENT ON COLUMN ootd.users.stated_taste IS 'While the user has likes: taste as stated before the first.  NULL without likes (or without a stated taste).';
COMMENT ON COLUMN ootd.users.stated_taste_norm IS 'While the user has likes: taste_norm as stated before the first.  NULL without likes.';

-- ---------------------------------------------------------------- functions --
-- ootd._style_shape_problem(dna, rules): NULL when both documents have the
-- right shape, else a sentence naming the first problem.  Affinities are
-- numbers from 0 to 1000000 (ootd._weight_limits().largest, written out so
-- the expression stays a constant): a larger one overflows the feed's
-- scoring for that user (22003 on every request).  (Strict jsonpath:
-- lax mode would unwrap [0.5] into 0.5 and let a nested array pass).  One CASE
-- expression with no sub-selects, so the planner inlines it and validating a
-- million-row COPY costs a few C-level jsonb operations per row.
CREATE FUNCTION ootd._style_shape_problem(p_dna jsonb, p_rules jsonb)
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
CREATE FUNCTION ootd._style_vocabulary_problem(p_dna jsonb, p_rules jsonb, p_vocab jsonb)
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

-- ootd._vocabulary_snapshot(): the vocabulary users are validated against, as
-- a JSON literal: {"archetypes", "categories", "colors": [names],
-- "timezones": {name: true}}.  IMMUTABLE, so the users CHECK
-- (ootd._user_is_valid) folds it into a constant when its expression is
-- planned, and the time zone test is one binary search of an object's keys.  Its body is generated
-- by ootd.refresh_vocabulary() from the reference tables: this placeholder is
-- replaced when the schema is installed, and adding an archetype, category or
-- color takes INSERT + SELECT ootd.refresh_vocabulary() (until then users
-- naming the new one are rejected: the check fails closed).  A constant, not a
-- query, so the same check runs on every Citus worker's shards.
CREATE FUNCTION ootd._vocabulary_snapshot()
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN '{"archetypes": [], "categories": [], "colors": [], "timezones": {}}'::jsonb;
END
$$;
COMMENT ON FUNCTION ootd._vocabulary_snapshot() IS
    'Private: the vocabulary users are validated against, as a constant (regenerated by ootd.refresh_vocabulary()).';

-- ootd.refresh_vocabulary(): regenerate ootd._vocabulary_snapshot() from
-- ootd.vocabulary() and ootd.timezones; run it after adding an archetype,
-- category or color (on Citus, from the coordinator: the new body reaches
-- every worker).  Returns the new snapshot.  Owner only.  One call at a time
-- (an advisory lock).  A name the new snapshot would drop while a user still
-- names it is refused (23503, nothing changed): the users CHECK would refuse
-- every later write of that user, likes included; update those users first.
CREATE FUNCTION ootd.refresh_vocabulary()
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

SELECT ootd.refresh_vocabulary();

-- ootd._reject_user(id, sqlstate, problem): raise `user <id>: <problem>` with
-- the SQLSTATE (and hint) of its kind; the users CHECK calls it for a bad row
-- only.  Never returns.
--   22023 invalid_parameter_value  time zone is not an IANA zone name
--   23514 check_violation          style_dna / style_rules have the wrong shape
--   23503 foreign_key_violation    an archetype, category or color is unknown
CREATE FUNCTION ootd._reject_user(p_id bigint, p_sqlstate text, p_problem text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'user %: %', p_id, p_problem
        USING ERRCODE = p_sqlstate, TABLE = 'users', SCHEMA = 'ootd',
              HINT = CASE p_sqlstate
                         WHEN '22023' THEN 'Use a name such as America/Los_Angeles (see ootd.timezones); POSIX strings like UTC+5 have reversed signs and are rejected.'
                         WHEN '23503' THEN 'Known names are listed by SELECT ootd.vocabulary();'
                         ELSE '' END;
END
$$;
COMMENT ON FUNCTION ootd._reject_user(bigint, text, text) IS
    'Private: raises "user <id>: <problem>" with the given SQLSTATE (the users CHECK, for a bad row only).';

-- ootd._user_is_valid(id, timezone, dna, rules): true for a valid user row,
-- else raises the first problem (time zone, then shape, then vocabulary).
-- The users table's CHECK constraint: evaluated for every row every INSERT,
-- UPDATE and COPY writes, on a single node and on each Citus shard alike, and
-- no session setting switches it off.  One CASE expression over inlined
-- helpers; the vocabulary folds into a constant.  PL/pgSQL, not SQL: its
-- expression is planned once per session (an inlined SQL function would be
-- re-planned, its jsonpath literals re-parsed, for every statement: twice the
-- cost of a like), and then costs a few C-level jsonb tests per row (the
-- culprit is searched for only in a bad row).
CREATE FUNCTION ootd._user_is_valid(p_id bigint, p_timezone text, p_dna jsonb, p_rules jsonb)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN CASE
        WHEN NOT ((ootd._vocabulary_snapshot() -> 'timezones') ? p_timezone) THEN
            ootd._reject_user(p_id, '22023', format('invalid time zone "%s": not an IANA time zone name', p_timezone))
        WHEN ootd._style_shape_problem(p_dna, p_rules) IS NOT NULL THEN
            ootd._reject_user(p_id, '23514', ootd._style_shape_problem(p_dna, p_rules))
        WHEN ootd._style_vocabulary_problem(p_dna, p_rules, ootd._vocabulary_snapshot()) IS NOT NULL THEN
            ootd._reject_user(p_id, '23503',
                              ootd._style_vocabulary_problem(p_dna, p_rules, ootd._vocabulary_snapshot()))
        ELSE true
    END;
END
$$;
COMMENT ON FUNCTION ootd._user_is_valid(bigint, text, jsonb, jsonb) IS
    'Private: the users CHECK: true, or raises the row''s first problem (22023 time zone, 23514 shape, 23503 vocabulary).';

-- ootd.put_user(...): create a user, or update one.  A new user needs a city
-- (the time zone defaults to the city's).  An update changes only what is
-- given (NULL = keep): a new city moves the time zone with it unless one is
-- given; style_dna and style_rules are merged key by key, so setting
-- style_rules never touches the learned style_dna.  A user with likes edits
-- their stated profile (users.stated_dna): the learned one is derived from it
-- and the likes again at once (ootd._learn), and the edited profile is what
-- comes back when the last like goes.
-- Cities match whatever the case.  Errors: 22023 bad id, 23502 new user
-- without a city, 23503 unknown city; the users CHECK checks the rest.
CREATE FUNCTION ootd.put_user(
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
        stated_dna  = u.stated_dna || coalesce(p_style_dna, '{}'),
        style_rules = u.style_rules || coalesce(p_style_rules, '{}'),
        updated_at  = now()
    WHERE u.id = p_id
    RETURNING u.* INTO v_user;
    IF FOUND THEN
        IF v_user.stated_dna IS NOT NULL AND p_style_dna IS NOT NULL THEN
            PERFORM ootd._learn(p_id);     -- the learned profile from the edited stated one
            SELECT * INTO v_user FROM ootd.users u WHERE u.id = p_id;
        END IF;
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

-- -------------------------------------------------------------- constraints --
-- (After the functions it calls; a constraint, not a trigger: Citus runs it on
-- the shards, and nothing but ALTER TABLE can take it away.)
ALTER TABLE ootd.users ADD CONSTRAINT users_profile_valid
    CHECK (ootd._user_is_valid(id, timezone, style_dna, style_rules));
