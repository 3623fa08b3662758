-- =============================================================================
-- ootd: the scoring weights (ootd.scoring_weights) and their rules
-- One row, tuned by analysts with UPDATE (or per experiment variant, or per
-- what-if call through ootd._weights_with); read by the ranking on every
-- feed.  The ranking itself: 06_serving.sql; experiments: 07_experiments.sql.
-- =============================================================================

-- ------------------------------------------------------------------ tables --
-- One row, tuned by analysts with UPDATE; read by ootd.feed() on every call.
CREATE TABLE ootd.scoring_weights (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    preferred_color    double precision NOT NULL DEFAULT 1.25,
    liked_category     double precision NOT NULL DEFAULT 1.20,
    category_affinity  double precision NOT NULL DEFAULT 0.05,
    cosine             double precision NOT NULL DEFAULT 0.50,
    daypart_priority   double precision NOT NULL DEFAULT 1.00,
    liked_decay        double precision NOT NULL DEFAULT 0.50,
    jitter             double precision NOT NULL DEFAULT 1e-9,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    neighbour_pools    boolean NOT NULL DEFAULT false,
    archetype          double precision NOT NULL DEFAULT 1.00
);
COMMENT ON TABLE ootd.scoring_weights IS 'The feed''s scoring weights (exactly one row); tune with UPDATE, no deploy needed.';
COMMENT ON COLUMN ootd.scoring_weights.preferred_color IS 'Multiplier when the outfit''s color is in style_dna.preferred_colors.';
COMMENT ON COLUMN ootd.scoring_weights.liked_category IS 'Multiplier when the outfit''s category is in style_rules.liked_categories.';
COMMENT ON COLUMN ootd.scoring_weights.category_affinity IS 'Multiplier step per unit of style_dna.category_affinity[category]: 1 + w * ln(1 + affinity).';
COMMENT ON COLUMN ootd.scoring_weights.cosine IS 'Weight of cosine similarity between users.taste and the outfit embedding (added, in [-w, w]).';
COMMENT ON COLUMN ootd.scoring_weights.daypart_priority IS 'Bonus added to outfits of the daypart that has priority at the user''s local time.';
COMMENT ON COLUMN ootd.scoring_weights.liked_decay IS 'Multiplier for outfits the user already liked (1 = no penalty).';
COMMENT ON COLUMN ootd.scoring_weights.jitter IS 'Scale of the deterministic tie-break hash(user, outfit, local date).';
COMMENT ON COLUMN ootd.scoring_weights.neighbour_pools IS
    'Also draw the priority daypart''s candidates from the other pools of the served pool''s date and weather '
    '(off by default: simulated users did not reward it, docs/evaluation.md).';
COMMENT ON COLUMN ootd.scoring_weights.archetype IS
    'Multiplier step per unit of affinity to the archetype of the pool an outfit was drawn from: 1 + w * ln(1 + affinity).';

-- ootd._weight_limits(): what the ranking's double precision arithmetic
-- takes of any weight: 0, or a size from `smallest` to `largest`.  Past
-- them, products and sums of weights and profile numbers overflow or
-- underflow (PostgreSQL's bare 22003 "value out of range" in every feed
-- scored with them).  The one home of these two numbers: every weight's
-- range (ootd._weight_ranges) is capped at `largest`, and the users CHECK
-- caps profile numbers at the same `largest` (ootd._style_shape_problem).
CREATE FUNCTION ootd._weight_limits(OUT smallest double precision, OUT largest double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT 1e-12::double precision, 1e6::double precision
$$;
COMMENT ON FUNCTION ootd._weight_limits() IS
    'Private: a weight is 0 or between smallest (1e-12) and largest (1e6) in size: past them the ranking overflows or underflows.';

-- ootd._weight_ranges(): the range of every numeric weight, in column
-- order: the one home of the ranges (the table's CHECK through
-- ootd._weights_doc_problem, experiments' and what-if weights through
-- ootd._weights_with, the simulator's sliders through ootd.weight_catalog).
-- A weight without a range of its own stops at ootd._weight_limits().largest.
CREATE FUNCTION ootd._weight_ranges()
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

-- ootd._weights_doc_problem(weights): NULL when every weight of the JSON
-- object (keys: ootd.scoring_weights columns) is in range, else a sentence
-- naming the first one that is not: outside its range, or a size below
-- ootd._weight_limits().smallest other than 0.  A function of the values,
-- not of the row, so the table's CHECK passes its columns (Citus cannot
-- deparse a whole-row reference in a reference table's CHECK).
CREATE FUNCTION ootd._weights_doc_problem(p_weights jsonb)
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

-- ootd._weights_problem(weights): the same for a row of ootd.scoring_weights.
CREATE FUNCTION ootd._weights_problem(w ootd.scoring_weights)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ootd._weights_doc_problem(to_jsonb(w))
$$;
COMMENT ON FUNCTION ootd._weights_problem(ootd.scoring_weights) IS
    'Private: NULL if every scoring weight is in range (ootd._weight_ranges), else the first problem.';

ALTER TABLE ootd.scoring_weights ADD CONSTRAINT scoring_weights_in_range CHECK (ootd._weights_doc_problem(jsonb_build_object(
    'preferred_color', preferred_color, 'liked_category', liked_category, 'category_affinity', category_affinity,
    'cosine', cosine, 'daypart_priority', daypart_priority, 'liked_decay', liked_decay, 'jitter', jitter,
    'neighbour_pools', neighbour_pools, 'archetype', archetype)) IS NULL);

-- ootd._weights_with(overrides, weights): the weights with some replaced
-- (what-if weights, an experiment's variant; never written): keys are
-- ootd.scoring_weights columns.  Errors 22023: not an object, an unknown or
-- non-weight key, a value of the wrong type or out of range.
CREATE FUNCTION ootd._weights_with(p_overrides jsonb, w ootd.scoring_weights)
RETURNS ootd.scoring_weights
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v_key   text;
    v_error text;
BEGIN
    IF p_overrides IS NULL OR p_overrides = '{}' THEN
        RETURN w;
    END IF;
    IF jsonb_typeof(p_overrides) <> 'object' THEN
        RAISE EXCEPTION 'weights must be a JSON object, got %', p_overrides USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT k INTO v_key FROM jsonb_object_keys(p_overrides) k
    WHERE k IN ('singleton', 'updated_at') OR k NOT IN (SELECT a.attname FROM pg_attribute a
                                                        WHERE a.attrelid = 'ootd.scoring_weights'::regclass
                                                          AND a.attnum > 0 AND NOT a.attisdropped)
    ORDER BY k LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown weight "%" (known: %)', v_key,
            (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a
             WHERE a.attrelid = 'ootd.scoring_weights'::regclass AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attname NOT IN ('singleton', 'updated_at'))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        w := jsonb_populate_record(w, p_overrides);
    EXCEPTION WHEN data_exception THEN
        GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT;
        RAISE EXCEPTION 'bad weight value in %: %', p_overrides, v_error USING ERRCODE = 'invalid_parameter_value';
    END;
    v_error := ootd._weights_problem(w);
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION 'bad weights: %', v_error USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN w;
END
$$;
COMMENT ON FUNCTION ootd._weights_with(jsonb, ootd.scoring_weights) IS
    'Private: scoring weights with the given keys replaced, validated (22023), never written.';

INSERT INTO ootd.scoring_weights DEFAULT VALUES;
