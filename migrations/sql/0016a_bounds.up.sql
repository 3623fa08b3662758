-- =============================================================================
-- Revision 0016, part a: bounds (frozen)
-- One home for the numbers the ranking's double precision arithmetic takes
-- (ootd._weight_limits): every scoring weight's range is capped at 1e6 and a
-- non-zero weight is at least 1e-12 in size (the table's CHECK, experiments'
-- and what-if weights alike); profile affinities are capped at 1e6 by the
-- users CHECK.  Experiment results give counts only below a minimum exposure
-- (ootd._experiment_min_days: setting ootd.experiment_min_days, default 1
-- day); an evaluation reads at most 300000 feeds (users x local times).
-- Stored rows the new bounds refuse stop the upgrade (nothing changed).
-- =============================================================================
SET ROLE ootd_owner;

-- ------------------------------------------------------------------ weights --
CREATE FUNCTION ootd._weight_limits(OUT smallest double precision, OUT largest double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT 1e-12::double precision, 1e6::double precision
$$;
COMMENT ON FUNCTION ootd._weight_limits() IS
    'Private: a weight is 0 or between smallest (1e-12) and largest (1e6) in size: past them the ranking overflows or underflows.';

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
                 (7, 'jitter', 0, true, 1e-6)) AS r(n, name, min_value, min_inclusive, max_value)
    CROSS JOIN ootd._weight_limits() l
    ORDER BY r.n
$$;
COMMENT ON FUNCTION ootd._weight_ranges() IS
    'Private: each numeric scoring weight''s range (min, whether min is allowed, max: at most ootd._weight_limits().largest).';

CREATE OR REPLACE FUNCTION ootd._weights_doc_problem(p_weights jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        (SELECT CASE
                    WHEN v.value <> 0 AND abs(v.value) < l.smallest
                         AND v.value >= r.min_value AND v.value <= r.max_value THEN
                        format('%s must be 0 or at least %s in size (smaller weights underflow the ranking), got %s',
                               r.name, l.smallest, v.value)
                    ELSE
                        format('%s must be %s, got %s', r.name,
                               CASE WHEN r.max_value < l.largest
                                        THEN format('between %s and %s', r.min_value, r.max_value)
                                    WHEN v.value > r.max_value
                                        THEN format('at most %s (larger weights overflow the ranking)',
                                                    r.max_value::numeric)
                                    WHEN r.min_inclusive THEN format('>= %s', r.min_value)
                                    ELSE format('> %s', r.min_value) END,
                               coalesce(v.value::text, 'NULL'))
                END
         FROM ootd._weight_ranges() WITH ORDINALITY AS r(name, min_value, min_inclusive, max_value, n)
         CROSS JOIN ootd._weight_limits() l
         CROSS JOIN LATERAL (SELECT (p_weights ->> r.name)::double precision AS value) v
         WHERE v.value IS NULL OR v.value < r.min_value OR (v.value = r.min_value AND NOT r.min_inclusive)
            OR v.value > r.max_value OR (v.value <> 0 AND abs(v.value) < l.smallest)
         ORDER BY r.n LIMIT 1),
        CASE WHEN jsonb_typeof(p_weights -> 'neighbour_pools') IS DISTINCT FROM 'boolean'
             THEN 'neighbour_pools must be true or false' END)
$$;
COMMENT ON FUNCTION ootd._weights_doc_problem(jsonb) IS
    'Private: NULL if every scoring weight of a JSON object is in range (ootd._weight_ranges, ootd._weight_limits), else the first problem.';

DO $check$
DECLARE
    v_row     ootd.scoring_weights;  -- the row read column by column: on Citus a whole-row reference
    v_problem text;                  -- would name the shard's row type, which the function does not take
BEGIN
    SELECT w.* INTO v_row FROM ootd.scoring_weights w;
    v_problem := ootd._weights_problem(v_row);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'ootd.scoring_weights is out of range: %', v_problem
            USING ERRCODE = 'check_violation',
                  HINT = 'UPDATE ootd.scoring_weights into range on the old version, then upgrade again.';
    END IF;
END
$check$;

-- -------------------------------------------------------------------- users --
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
              OR jsonb_path_exists(p_dna, 'strict $.preferred_colors[*] ? (@.type() != "string")', '{}', true)) THEN
            'style_dna.preferred_colors must be an array of color names'
        WHEN p_dna ? 'category_affinity' AND (jsonb_typeof(p_dna -> 'category_affinity') <> 'object'
              OR jsonb_path_exists(p_dna, 'strict $.category_affinity.* ? (@.type() != "number" || @ < 0)', '{}', true)) THEN
            'style_dna.category_affinity must map category names to numbers >= 0'
        WHEN p_dna ? 'color_affinity' AND (jsonb_typeof(p_dna -> 'color_affinity') <> 'object'
              OR jsonb_path_exists(p_dna, 'strict $.color_affinity.* ? (@.type() != "number" || @ < 0)', '{}', true)) THEN
            'style_dna.color_affinity must map color names to numbers >= 0'
        WHEN jsonb_path_exists(p_dna, 'strict $.category_affinity.* ? (@ > 1000000)', '{}', true) THEN
            format('style_dna.category_affinity must map category names to numbers between 0 and 1000000 (%s is larger)',
                   jsonb_path_query_first(p_dna, 'strict $.category_affinity.keyvalue() ? (@.value > 1000000).key'))
        WHEN jsonb_path_exists(p_dna, 'strict $.color_affinity.* ? (@ > 1000000)', '{}', true) THEN
            format('style_dna.color_affinity must map color names to numbers between 0 and 1000000 (%s is larger)',
                   jsonb_path_query_first(p_dna, 'strict $.color_affinity.keyvalue() ? (@.value > 1000000).key'))
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

DO $check$
DECLARE
    v_user record;
BEGIN
    SELECT u.id, ootd._style_shape_problem(u.style_dna, u.style_rules) AS problem INTO v_user
    FROM ootd.users u
    WHERE jsonb_path_exists(u.style_dna, 'strict $.category_affinity.* ? (@ > 1000000)', '{}', true)
       OR jsonb_path_exists(u.style_dna, 'strict $.color_affinity.* ? (@ > 1000000)', '{}', true)
    ORDER BY u.id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'user %: %', v_user.id, v_user.problem
            USING ERRCODE = 'check_violation',
                  HINT = 'Bring the user''s affinities into range (ootd.put_user) on the old version, then upgrade again.';
    END IF;
END
$check$;

-- -------------------------------------------------------------- experiments --
DROP VIEW ootd.experiment_results;
DROP FUNCTION ootd._experiment_results(text);

CREATE FUNCTION ootd._experiment_min_days()
RETURNS double precision
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_text text := nullif(btrim(current_setting('ootd.experiment_min_days', true)), '');
BEGIN
    IF v_text IS NULL THEN
        RETURN 1;
    END IF;
    IF v_text !~ '^([0-9]{1,4}(\.[0-9]{0,6})?|\.[0-9]{1,6})$' OR v_text::numeric > 3650 THEN
        RAISE EXCEPTION 'ootd.experiment_min_days must be a number of days from 0 to 3650, got "%"', v_text
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_text::double precision;
END
$$;
COMMENT ON FUNCTION ootd._experiment_min_days() IS
    'Private: the exposure (days) below which experiment results give counts only: setting ootd.experiment_min_days, default 1.';

CREATE FUNCTION ootd._experiment_results(p_experiment text)
RETURNS TABLE (variant text, control boolean, share numeric, running boolean, since timestamptz,
               until timestamptz, days double precision, users bigint, likes bigint,
               likes_per_user_day double precision, diff_likes_per_user_day double precision,
               diff_ci95_low double precision, diff_ci95_high double precision, users_liking bigint,
               liking_share double precision, diff_liking_share double precision,
               liking_ci95_low double precision, liking_ci95_high double precision,
               min_days double precision, meaningful boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    e       ootd.experiments;
    a       record;
    v_until timestamptz;
    v_min   double precision := ootd._experiment_min_days();
    v_ok    boolean;
    z       constant double precision := 1.959963984540054;   -- the standard normal's 97.5% quantile
BEGIN
    SELECT * INTO e FROM ootd.experiments x WHERE x.name = p_experiment;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_until := coalesce(e.ended_at, now());
    v_ok := extract(epoch FROM v_until - e.allocated_at)::double precision / 86400 >= v_min;
    a := ootd._allocation(e.name);
    RETURN QUERY
    WITH per_user AS (
        SELECT u.id, count(k.user_id) AS likes
        FROM ootd.users u
        LEFT JOIN ootd.likes k ON k.user_id = u.id AND k.liked_at >= e.allocated_at AND k.liked_at < v_until
        GROUP BY u.id
    ), per_variant AS (
        SELECT ootd._variant_at(e.name, p.id, a.variants, a.starts) AS variant, count(*) AS users,
               sum(p.likes) AS likes, sum(p.likes * p.likes) AS likes_sq, count(*) FILTER (WHERE p.likes > 0) AS liking
        FROM per_user p
        GROUP BY 1
    ), s AS (
        SELECT v.variant, v.position, v.control, v.share,
               extract(epoch FROM v_until - e.allocated_at)::double precision / 86400 AS days,
               coalesce(p.users, 0) AS users, coalesce(p.likes, 0)::bigint AS likes, coalesce(p.liking, 0) AS liking,
               p.likes::double precision / p.users AS mean,
               (p.likes_sq - p.likes::numeric * p.likes / p.users)::double precision / nullif(p.users - 1, 0) AS var,
               p.liking::double precision / p.users AS rate
        FROM ootd.experiment_variants v
        LEFT JOIN per_variant p ON p.variant = v.variant
        WHERE v.experiment = e.name
    ), d AS (
        SELECT s.*, s.mean / nullif(s.days, 0) AS per_day,
               CASE WHEN NOT s.control THEN (s.mean - c.mean) / nullif(s.days, 0) END AS diff,
               CASE WHEN NOT s.control THEN sqrt(s.var / s.users + c.var / c.users) / nullif(s.days, 0) END AS se,
               CASE WHEN NOT s.control THEN s.rate - c.rate END AS diff_rate,
               CASE WHEN NOT s.control
                    THEN sqrt(s.rate * (1 - s.rate) / s.users + c.rate * (1 - c.rate) / c.users) END AS se_rate
        FROM s CROSS JOIN (SELECT * FROM s WHERE s.control) c
    )
    SELECT d.variant, d.control, d.share, e.ended_at IS NULL, e.allocated_at, v_until, d.days, d.users, d.likes,
           CASE WHEN v_ok THEN d.per_day END, CASE WHEN v_ok THEN d.diff END,
           CASE WHEN v_ok THEN d.diff - z * nullif(d.se, 0) END, CASE WHEN v_ok THEN d.diff + z * nullif(d.se, 0) END,
           d.liking, CASE WHEN v_ok THEN d.rate END, CASE WHEN v_ok THEN d.diff_rate END,
           CASE WHEN v_ok THEN d.diff_rate - z * nullif(d.se_rate, 0) END,
           CASE WHEN v_ok THEN d.diff_rate + z * nullif(d.se_rate, 0) END,
           v_min, v_ok
    FROM d ORDER BY d.position;
END
$$;
COMMENT ON FUNCTION ootd._experiment_results(text) IS
    'Private: ootd.experiment_results'' rows of one experiment (per variant: users, likes per user per day, differences to control with 95% CIs; counts only below the minimum exposure).';

CREATE VIEW ootd.experiment_results AS
SELECT e.name AS experiment, r.*
FROM ootd.experiments e
CROSS JOIN LATERAL ootd._experiment_results(e.name) r;
COMMENT ON VIEW ootd.experiment_results IS
    'Per experiment and variant, over the allocation period: users, likes, likes per user per day, share of users who liked, each variant''s difference to control with a 95% CI (Welch normal for likes per user per day, two-proportion z for the share who liked); below min_days of exposure (ootd.experiment_min_days, default 1) counts only: meaningful false, rates NULL.';

-- --------------------------------------------------------------- evaluation --
CREATE OR REPLACE FUNCTION ootd._check_evaluation(p_users integer, p_times time[], p_limit integer, p_date date)
RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF to_regclass('pg_catalog.pg_dist_node') IS NOT NULL THEN  -- docs/scaling.md: not supported on Citus
        RAISE EXCEPTION 'the evaluation runs on a single node only, and this database is a Citus node'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Run it on a single-node copy: a replica of a single node, or a pg_dump of a sample.';
    END IF;
    IF p_users IS NULL OR p_users NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'users must be between 1 and 100000, got %', coalesce(p_users::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_times), 0) = 0 OR array_position(p_times, NULL) IS NOT NULL
       OR (SELECT count(DISTINCT t) FROM unnest(p_times) t) <> cardinality(p_times) THEN
        RAISE EXCEPTION 'local times must be distinct and not NULL, got %', coalesce(p_times::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_users::bigint * cardinality(p_times) > 300000 THEN
        RAISE EXCEPTION 'an evaluation reads at most 300000 feeds (users x local times), got % x % = %',
            p_users, cardinality(p_times), p_users::bigint * cardinality(p_times)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Sample fewer users or fewer local times; split a larger study into runs.';
    END IF;
    PERFORM ootd._check_limit(p_limit);
    IF NOT EXISTS (SELECT 1 FROM ootd.pools p WHERE p.pool_date = p_date) THEN
        RAISE EXCEPTION 'no pools for %', coalesce(p_date::text, 'any date') USING ERRCODE = 'no_data_found';
    END IF;
END
$$;
COMMENT ON FUNCTION ootd._check_evaluation(integer, time[], integer, date) IS
    'Private: raises 0A000 on Citus, 22023 or P0002 unless the evaluation''s users, local times (users x times at most 300000), limit and date are valid.';

REVOKE EXECUTE ON FUNCTION ootd._weight_limits(), ootd._experiment_min_days(), ootd._experiment_results(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ootd._experiment_results(text) TO ootd_analyst;
GRANT SELECT ON ootd.experiment_results TO ootd_analyst;

RESET ROLE;
