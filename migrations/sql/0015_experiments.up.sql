-- =============================================================================
-- Revision 0015: A/B experiments on the scoring weights (frozen)
-- ootd.experiments, experiment_variants and experiment_changes;
-- ootd.start_experiment, set_experiment_shares, end_experiment,
-- experiment_of; the view ootd.experiment_results; ootd.evaluate_variants.
-- A user's variant is hash(user, experiment) over the variants' slices
-- (ootd._assignment): ootd.feed, ootd.feed_explain and ootd.simulate gain a
-- trailing variant column and serve the variant's weights; the evaluation's
-- oracle scores with them.  ootd._weights_with takes the weights it changes.
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd.feed(bigint, timestamptz, integer);
DROP FUNCTION ootd.feed_explain(bigint, timestamptz, integer);
DROP FUNCTION ootd.simulate(jsonb, timestamptz, jsonb, text, integer);
DROP FUNCTION ootd._ranked(bigint, timestamptz, integer);
DROP FUNCTION ootd._rank(bigint, jsonb, jsonb, public.vector, bigint[], timestamp, date, text, date, text, text, text,
                         ootd.scoring_weights, integer);
DROP FUNCTION ootd._weights_with(jsonb);

-- -------------------------------------------------------------- experiments --
-- ------------------------------------------------------------------ tables --
-- ootd._is_name(name): a name an experiment or a variant may have: a
-- lowercase letter, then up to 62 lowercase letters, digits or _ (the
-- tables' CHECKs, and the API functions' precise errors before them).
CREATE FUNCTION ootd._is_name(p_name text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_name ~ '^[a-z][a-z0-9_]{0,62}$'
$$;
COMMENT ON FUNCTION ootd._is_name(text) IS
    'Private: a valid experiment or variant name (a lowercase letter, then up to 62 lowercase letters, digits or _).';

-- One row per experiment ever started.  The allocation period, from
-- allocated_at (the start or the last change of shares) to ended_at (or
-- now), is what ootd.experiment_results measures.
CREATE TABLE ootd.experiments (
    name         text PRIMARY KEY CHECK (ootd._is_name(name)),
    started_at   timestamptz NOT NULL DEFAULT now(),
    allocated_at timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    CHECK (allocated_at >= started_at AND ended_at >= allocated_at)
);
-- At most one running experiment: every experiment covers every user.
CREATE UNIQUE INDEX experiments_one_running_idx ON ootd.experiments ((true)) WHERE ended_at IS NULL;
COMMENT ON TABLE ootd.experiments IS
    'A/B experiments on the scoring weights (ootd.start_experiment); at most one runs (ended_at NULL).';
COMMENT ON COLUMN ootd.experiments.allocated_at IS
    'The start, or the last change of shares: ootd.experiment_results measures from here.';

-- An experiment's variants, in bucket order (position): a user whose bucket
-- (ootd._bucket) falls in the variant's slice of [0, 1) is served its weights.
CREATE TABLE ootd.experiment_variants (
    experiment text NOT NULL REFERENCES ootd.experiments (name),
    variant    text NOT NULL CHECK (ootd._is_name(variant)),
    position   integer NOT NULL CHECK (position >= 1),
    control    boolean NOT NULL DEFAULT false,
    share      numeric NOT NULL CHECK (share >= 0 AND share <= 1),
    weights    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(weights) = 'object'),
    PRIMARY KEY (experiment, variant),
    UNIQUE (experiment, position),
    CHECK (NOT control OR weights = '{}')
);
CREATE UNIQUE INDEX experiment_variants_one_control_idx ON ootd.experiment_variants (experiment) WHERE control;
COMMENT ON TABLE ootd.experiment_variants IS
    'Each experiment''s variants: traffic share, control flag, and the scoring weights it replaces (the control: none).';
COMMENT ON COLUMN ootd.experiment_variants.weights IS
    'ootd.scoring_weights columns this variant replaces, with their values (validated by ootd._weights_with).';

-- Who changed which experiment when: a row per start, change of shares and end.
CREATE TABLE ootd.experiment_changes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    experiment text NOT NULL REFERENCES ootd.experiments (name),
    change     text NOT NULL CHECK (change IN ('start', 'shares', 'end')),
    changed_at timestamptz NOT NULL DEFAULT now(),
    changed_by text NOT NULL DEFAULT session_user,
    shares     jsonb NOT NULL CHECK (jsonb_typeof(shares) = 'object')
);
CREATE INDEX experiment_changes_experiment_idx ON ootd.experiment_changes (experiment, changed_at);
COMMENT ON TABLE ootd.experiment_changes IS
    'The experiments'' log: each start, change of shares and end, by whom (the login role) and when, with the shares after it.';

-- ----------------------------------------------------------------- helpers --
-- ootd._bucket(experiment, user): where a user falls in [0, 1) for an
-- experiment: a hash of (experiment name, user id), so the same user lands
-- in unrelated buckets in different experiments.  hashtextextended is the
-- hash of PostgreSQL's hash partitioning: the same on every platform and node.
CREATE FUNCTION ootd._bucket(p_experiment text, p_user_id bigint)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT (hashtextextended(p_experiment, p_user_id)::numeric + 9223372036854775808) / 18446744073709551616
$$;
COMMENT ON FUNCTION ootd._bucket(text, bigint) IS 'Private: a user''s place in [0, 1) for an experiment, hash(experiment, user).';

-- ootd._variant_at(experiment, user, variants, starts): the variant whose
-- slice of [0, 1) holds the user's bucket; variants and the slices' starts
-- in bucket order, variants with a zero share left out (ootd._allocation).
-- The one home of the assignment rule.
CREATE FUNCTION ootd._variant_at(p_experiment text, p_user_id bigint, p_variants text[], p_starts numeric[])
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_variants[width_bucket(ootd._bucket(p_experiment, p_user_id), p_starts)]
$$;
COMMENT ON FUNCTION ootd._variant_at(text, bigint, text[], numeric[]) IS
    'Private: the variant whose slice of [0, 1) holds the user''s bucket (the assignment rule).';

-- ootd._allocation(experiment): the variants with a share, in bucket order,
-- and where each one's slice starts (the sum of the shares before it): the
-- arguments of ootd._variant_at.  Slices are laid out in position order, the
-- control first: with one other variant, raising its share only moves
-- control users into it.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._allocation(p_experiment text, OUT variants text[], OUT starts numeric[])
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    SELECT coalesce(array_agg(s.variant ORDER BY s.position), '{}'), coalesce(array_agg(s.start ORDER BY s.position), '{}')
    INTO variants, starts
    FROM (SELECT v.variant, v.position, v.share,
                 coalesce(sum(v.share) OVER (ORDER BY v.position ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                     AS start
          FROM ootd.experiment_variants v WHERE v.experiment = p_experiment) s
    WHERE s.share > 0;
END
$$;
COMMENT ON FUNCTION ootd._allocation(text) IS
    'Private: an experiment''s variants with a share in bucket order and where each slice starts (for ootd._variant_at).';

-- ootd._assignment(user): the running experiment, the user's variant in it
-- and the weights the user is served: ootd.scoring_weights with the
-- variant's replaced.  No experiment running: NULL, NULL, the weights in
-- force.  What ootd.feed, ootd.simulate and the evaluation's oracle read.
CREATE FUNCTION ootd._assignment(p_user_id bigint, OUT experiment text, OUT variant text,
                                 OUT weights ootd.scoring_weights)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    a record;
BEGIN
    SELECT * INTO weights FROM ootd.scoring_weights;  -- a variable: on a Citus worker a shard's row has the shard's type
    SELECT e.name INTO experiment FROM ootd.experiments e WHERE e.ended_at IS NULL;
    IF experiment IS NULL THEN
        RETURN;
    END IF;
    a := ootd._allocation(experiment);
    variant := ootd._variant_at(experiment, p_user_id, a.variants, a.starts);
    weights := jsonb_populate_record(weights, (SELECT v.weights FROM ootd.experiment_variants v
                                               WHERE v.experiment = _assignment.experiment
                                                 AND v.variant = _assignment.variant));
END
$$;
COMMENT ON FUNCTION ootd._assignment(bigint) IS
    'Private: the running experiment, the user''s variant and the weights the user is served (no experiment: the weights in force).';

-- ootd._shares(experiment): {variant: share} in bucket order, for the log.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._shares(p_experiment text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (SELECT jsonb_object_agg(v.variant, v.share ORDER BY v.position)
            FROM ootd.experiment_variants v WHERE v.experiment = p_experiment);
END
$$;
COMMENT ON FUNCTION ootd._shares(text) IS 'Private: an experiment''s {variant: share}.';

-- ootd._allocation_problem(shares, control): NULL when {variant: share} is
-- a valid allocation with that control, else the first problem: a share
-- that is not a number in [0, 1], fewer than two variants, a control that is
-- not one of them or has no share, shares not adding up to exactly 1.
CREATE FUNCTION ootd._allocation_problem(p_shares jsonb, p_control text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        (SELECT format('the share of variant "%s" must be a number between 0 and 1, got %s', s.key, s.value)
         FROM jsonb_each(p_shares) s
         WHERE CASE WHEN jsonb_typeof(s.value) = 'number' THEN s.value::text::numeric NOT BETWEEN 0 AND 1 ELSE true END
         ORDER BY s.key LIMIT 1),
        CASE WHEN (SELECT count(*) FROM jsonb_object_keys(p_shares)) < 2 THEN
                 format('an experiment needs a control and at least one other variant, got %s', p_shares)
             WHEN NOT p_shares ? p_control THEN
                 format('the control "%s" is not one of the variants (%s)', p_control,
                        (SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(p_shares) k))
             WHEN (p_shares ->> p_control)::numeric = 0 THEN format('the control "%s" needs a share above 0', p_control)
             WHEN (SELECT sum(s.value::text::numeric) FROM jsonb_each(p_shares) s) <> 1 THEN
                 format('the shares must add up to 1, got %s',
                        (SELECT sum(s.value::text::numeric) FROM jsonb_each(p_shares) s))
        END)
$$;
COMMENT ON FUNCTION ootd._allocation_problem(jsonb, text) IS
    'Private: NULL if {variant: share} is a valid allocation (numbers in [0, 1] adding up to 1, a control with a share), else the first problem.';

-- ootd._running(experiment): the experiment, locked against other changes
-- (one change of experiments at a time: an advisory lock); P0002 unknown,
-- 55000 when it has ended.
CREATE FUNCTION ootd._running(p_experiment text)
RETURNS ootd.experiments
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    e ootd.experiments;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('ootd.experiments'));
    SELECT * INTO e FROM ootd.experiments x WHERE x.name = p_experiment;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown experiment %', coalesce(quote_literal(p_experiment), 'NULL')
            USING ERRCODE = 'no_data_found';
    END IF;
    IF e.ended_at IS NOT NULL THEN
        RAISE EXCEPTION 'experiment "%" ended at %', e.name, e.ended_at::timestamptz(0)
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Start a new experiment.';
    END IF;
    RETURN e;
END
$$;
COMMENT ON FUNCTION ootd._running(text) IS
    'Private: a running experiment, with the experiments lock taken; P0002 unknown, 55000 ended.';

-- --------------------------------------------------------------------- API --
-- ootd.start_experiment(name, variants, control): start an experiment:
-- variants is {"name": {"share": s, "weights": {"cosine": 0.8, ...}}, ...};
-- the control (default "control") takes no weights: it is served the weights
-- in force.  Shares are numbers in [0, 1] adding up to exactly 1 (the
-- control's above 0); weights are ootd.scoring_weights columns in their
-- ranges (ootd._weights_with).  Slices: the control first, then the other
-- variants by name.  Returns the variants.  Errors, nothing changed: a bad
-- name, variant, share or weight 22023; a name already used 42710; another
-- experiment running 55006 (it covers every user: end it first).
CREATE FUNCTION ootd.start_experiment(p_name text, p_variants jsonb, p_control text DEFAULT 'control')
RETURNS SETOF ootd.experiment_variants
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w         ootd.scoring_weights;
    v_name    text;
    v_spec    jsonb;
    v_weights jsonb := '{}';
    v_served  ootd.scoring_weights;
    v_problem text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('ootd.experiments'));
    IF NOT coalesce(ootd._is_name(p_name), false) THEN
        RAISE EXCEPTION 'an experiment name is a lowercase letter, then up to 62 lowercase letters, digits or _; got %',
            coalesce(quote_literal(p_name), 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM ootd.experiments e WHERE e.name = p_name) THEN
        RAISE EXCEPTION 'experiment "%" already exists', p_name
            USING ERRCODE = 'duplicate_object', HINT = 'Each experiment has its own name: its buckets depend on it.';
    END IF;
    SELECT e.name INTO v_name FROM ootd.experiments e WHERE e.ended_at IS NULL;
    IF FOUND THEN
        RAISE EXCEPTION 'experiment "%" is running: an experiment covers every user, so one runs at a time', v_name
            USING ERRCODE = 'object_in_use', HINT = format('End it first: SELECT ootd.end_experiment(%L);', v_name);
    END IF;
    IF jsonb_typeof(p_variants) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'variants must be a JSON object {"name": {"share": s, "weights": {...}}, ...}, got %',
            coalesce(p_variants::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO w FROM ootd.scoring_weights;
    FOR v_name, v_spec IN SELECT e.key, e.value FROM jsonb_each(p_variants) e ORDER BY e.key LOOP
        IF NOT ootd._is_name(v_name) THEN
            RAISE EXCEPTION 'a variant name is a lowercase letter, then up to 62 lowercase letters, digits or _; got "%"',
                v_name USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF jsonb_typeof(v_spec) IS DISTINCT FROM 'object' OR NOT v_spec ? 'share' OR v_spec - '{share,weights}'::text[] <> '{}' THEN
            RAISE EXCEPTION 'variant "%" must be {"share": s} or {"share": s, "weights": {...}}, got %', v_name, v_spec
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF v_name = p_control AND coalesce(v_spec -> 'weights', '{}') <> '{}' THEN
            RAISE EXCEPTION 'the control "%" is served the weights in force: it takes no weights', v_name
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Give the weights to another variant.';
        END IF;
        BEGIN
            v_served := ootd._weights_with(v_spec -> 'weights', w);
        EXCEPTION WHEN invalid_parameter_value THEN
            GET STACKED DIAGNOSTICS v_problem = MESSAGE_TEXT;
            RAISE EXCEPTION 'variant "%": %', v_name, v_problem USING ERRCODE = 'invalid_parameter_value';
        END;
        -- each named weight with the value it takes (typed as the column is), computed here and not
        -- in the INSERT below: on Citus a subtransaction (_weights_with's exception block) while the
        -- INSERT streams its rows to the reference table's placements ends the session (FATAL)
        v_weights := v_weights || jsonb_build_object(v_name, coalesce(
            (SELECT jsonb_object_agg(k, to_jsonb(v_served) -> k) FROM jsonb_object_keys(v_spec -> 'weights') k), '{}'));
    END LOOP;
    v_problem := ootd._allocation_problem((SELECT jsonb_object_agg(e.key, e.value -> 'share') FROM jsonb_each(p_variants) e),
                                          p_control);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION '%', v_problem USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO ootd.experiments (name) VALUES (p_name);
    INSERT INTO ootd.experiment_variants (experiment, variant, position, control, share, weights)
    SELECT p_name, e.key, row_number() OVER (ORDER BY e.key <> p_control, e.key), e.key = p_control,
           (e.value ->> 'share')::numeric, v_weights -> e.key
    FROM jsonb_each(p_variants) e;
    INSERT INTO ootd.experiment_changes (experiment, change, shares) VALUES (p_name, 'start', ootd._shares(p_name));
    RETURN QUERY SELECT * FROM ootd.experiment_variants v WHERE v.experiment = p_name ORDER BY v.position;
END
$$;
COMMENT ON FUNCTION ootd.start_experiment(text, jsonb, text) IS
    'Start an A/B experiment on the scoring weights: {"variant": {"share": s, "weights": {...}}}, one control; logged.';

-- ootd.set_experiment_shares(name, shares): change a running experiment's
-- shares, {"variant": share, ...} (variants left out keep theirs); the
-- result must be a valid allocation.  Starts a new allocation period (what
-- ootd.experiment_results measures).  Returns the variants.  Errors, nothing
-- changed: unknown experiment P0002, ended 55000, an unknown variant or a
-- bad share 22023.
CREATE FUNCTION ootd.set_experiment_shares(p_name text, p_shares jsonb)
RETURNS SETOF ootd.experiment_variants
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e         ootd.experiments := ootd._running(p_name);
    v_new     jsonb;
    v_unknown text;
    v_problem text;
BEGIN
    IF jsonb_typeof(p_shares) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'shares must be a JSON object {"variant": share, ...}, got %', coalesce(p_shares::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT k INTO v_unknown FROM jsonb_object_keys(p_shares) k
    WHERE NOT EXISTS (SELECT 1 FROM ootd.experiment_variants v WHERE v.experiment = e.name AND v.variant = k)
    ORDER BY k LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'experiment "%" has no variant "%" (variants: %)', e.name, v_unknown,
            (SELECT string_agg(v.variant, ', ' ORDER BY v.position) FROM ootd.experiment_variants v
             WHERE v.experiment = e.name) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_new := ootd._shares(e.name) || p_shares;
    v_problem := ootd._allocation_problem(v_new, (SELECT v.variant FROM ootd.experiment_variants v
                                                  WHERE v.experiment = e.name AND v.control));
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION '%', v_problem USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE ootd.experiment_variants v SET share = (v_new ->> v.variant)::numeric WHERE v.experiment = e.name;
    UPDATE ootd.experiments x SET allocated_at = now() WHERE x.name = e.name;
    INSERT INTO ootd.experiment_changes (experiment, change, shares) VALUES (e.name, 'shares', ootd._shares(e.name));
    RETURN QUERY SELECT * FROM ootd.experiment_variants v WHERE v.experiment = e.name ORDER BY v.position;
END
$$;
COMMENT ON FUNCTION ootd.set_experiment_shares(text, jsonb) IS
    'Change a running experiment''s traffic shares (a new allocation period); logged.';

-- ootd.end_experiment(name): end a running experiment: from now every user
-- is served the weights in force (the control's).  Returns the experiment.
-- Errors, nothing changed: unknown P0002, already ended 55000.
CREATE FUNCTION ootd.end_experiment(p_name text)
RETURNS ootd.experiments
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e ootd.experiments := ootd._running(p_name);
BEGIN
    UPDATE ootd.experiments x SET ended_at = now() WHERE x.name = e.name RETURNING * INTO e;
    INSERT INTO ootd.experiment_changes (experiment, change, shares) VALUES (e.name, 'end', ootd._shares(e.name));
    RETURN e;
END
$$;
COMMENT ON FUNCTION ootd.end_experiment(text) IS 'End a running experiment: every user is served the weights in force again; logged.';

-- ootd.experiment_of(user): the running experiment and the user's variant
-- in it (no row when none runs): what the API's feed reports, for analysts.
CREATE FUNCTION ootd.experiment_of(p_user_id bigint)
RETURNS TABLE (experiment text, variant text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT a.experiment, a.variant FROM ootd._assignment(p_user_id) a WHERE a.experiment IS NOT NULL;
END
$$;
COMMENT ON FUNCTION ootd.experiment_of(bigint) IS 'The running experiment and the user''s variant in it; no row when none runs.';

-- ------------------------------------------------------------------- views --
-- ootd._experiment_results(experiment): per variant of an experiment,
-- over its current allocation period (allocated_at to ended_at, or now):
-- the users assigned to it (every user now in ootd.users, by
-- ootd._variant_at), their likes made in the period, likes per user per
-- day, and the share of users with at least one like; for each non-control
-- variant the difference to the control with a 95% confidence interval: for
-- likes per user per day a normal (Welch) interval from the per-user
-- counts' variances; for the share of users who liked, the two-proportion z
-- interval (unpooled Wald); no interval (NULL) while its standard error is
-- 0 (e.g. no likes yet).  One pass over users and likes (on Citus, on the
-- workers).  No row for an unknown experiment.
CREATE FUNCTION ootd._experiment_results(p_experiment text)
RETURNS TABLE (variant text, control boolean, share numeric, running boolean, since timestamptz,
               until timestamptz, days double precision, users bigint, likes bigint,
               likes_per_user_day double precision, diff_likes_per_user_day double precision,
               diff_ci95_low double precision, diff_ci95_high double precision, users_liking bigint,
               liking_share double precision, diff_liking_share double precision,
               liking_ci95_low double precision, liking_ci95_high double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    e       ootd.experiments;
    a       record;
    v_until timestamptz;
    z       constant double precision := 1.959963984540054;   -- the standard normal's 97.5% quantile
BEGIN
    SELECT * INTO e FROM ootd.experiments x WHERE x.name = p_experiment;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_until := coalesce(e.ended_at, now());
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
           d.per_day, d.diff, d.diff - z * nullif(d.se, 0), d.diff + z * nullif(d.se, 0), d.liking, d.rate,
           d.diff_rate, d.diff_rate - z * nullif(d.se_rate, 0), d.diff_rate + z * nullif(d.se_rate, 0)
    FROM d ORDER BY d.position;
END
$$;
COMMENT ON FUNCTION ootd._experiment_results(text) IS
    'Private: ootd.experiment_results'' rows of one experiment (per variant: users, likes per user per day, differences to control with 95% CIs).';

-- One experiment's rows are computed only when asked for: WHERE experiment =
-- 'x' filters ootd.experiments before the lateral call.
CREATE VIEW ootd.experiment_results AS
SELECT e.name AS experiment, r.*
FROM ootd.experiments e
CROSS JOIN LATERAL ootd._experiment_results(e.name) r;
COMMENT ON VIEW ootd.experiment_results IS
    'Per experiment and variant, over the allocation period: users, likes, likes per user per day, share of users who liked, each variant''s difference to control with a 95% CI (Welch normal for likes per user per day, two-proportion z for the share who liked).';

-- ------------------------------------------------------------------ serving --
-- One candidate as the ranking leaves it (a row of ootd._rank, ootd.feed_explain
-- and ootd.simulate): rank (NULL = vetoed), the veto entries it breaks, each
-- score component and the total, the headline, the pool served, where the
-- row was read and the pool it was drawn from, and the experiment variant
-- whose weights scored it (NULL: none runs, or a what-if profile).
CREATE TYPE ootd.ranked_outfit AS (
    rank           integer,
    outfit_id      bigint,
    title          text,
    category       text,
    color          text,
    daypart        text,
    vetoed_by      text[],
    priority       boolean,
    color_boost    double precision,
    category_boost double precision,
    affinity_boost double precision,
    liked_penalty  double precision,
    cosine         double precision,
    daypart_bonus  double precision,
    jitter         double precision,
    score          double precision,
    headline       text,
    cluster_id     text,
    pool_date      date,
    source         text,
    relaxed_rules  text[],
    drawn_from     text,
    variant        text
);
COMMENT ON TYPE ootd.ranked_outfit IS
    'A ranked candidate: rank (NULL = vetoed), vetoes, score components and total, headline, pool, source, drawn_from, variant.';

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
--  3. score: ootd._score (each component and the total);
--  4. order: outfits that break no veto first, then the relaxed ones; then
--     the priority daypart first; within it each category's best outfit
--     before any category's second, and among those, each color's best
--     before its second (diversity: three categories and three colors in a
--     top-3 whenever the candidates' best per category span three colors);
--     then score; then outfit id;
--  5. headline, computed once: the served pool's weather, the archetype of
--     the pool the first item was drawn from, the occasion of the first
--     p_limit served outfits (ootd._occasion) and the city.
-- Vetoed candidates have a NULL rank.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._rank(p_user_id bigint, p_dna jsonb, p_rules jsonb, p_taste public.vector, p_liked bigint[],
                           p_local timestamp, p_local_date date, p_priority text, p_pool_date date,
                           p_cluster_id text, p_city text, p_weather_adjective text, w ootd.scoring_weights,
                           p_limit integer, p_variant text)
RETURNS SETOF ootd.ranked_outfit
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH c AS (
        SELECT c.*, array_remove(ARRAY[
                   CASE WHEN p_rules -> 'disliked_categories' ? c.category THEN 'disliked_categories:' || c.category END,
                   CASE WHEN p_rules -> 'disliked_colors' ? c.color THEN 'disliked_colors:' || c.color END],
                   NULL) AS violations,
               c.outfit_id = ANY (p_liked) AS liked
        FROM ootd._pool_rows(p_pool_date, p_cluster_id, p_priority, w.neighbour_pools) c
    ), relaxed AS (
        SELECT CASE WHEN count(*) FILTER (WHERE cardinality(c.violations) = 0) >= least(p_limit, count(*))
                    THEN '{}'::text[]
                    ELSE ootd._relax_vetoes((SELECT jsonb_agg(to_jsonb(v.violations)) FROM c v), p_limit) END AS rules
        FROM c                 -- (the sub-select runs only when some rule must be relaxed)
    ), scored AS (             -- fixed-width sort keys first: the sorts below deform them for every comparison
        SELECT c.violations <@ r.rules AS served, cardinality(c.violations) = 0 AS clean,
               c.daypart = p_priority AS priority, p.score, c.outfit_id, p.color_boost, p.category_boost,
               p.affinity_boost, p.liked_penalty, p.cosine, p.daypart_bonus, p.jitter, c.category, c.color,
               c.title, c.daypart, c.violations, c.source, c.drawn_from, r.rules AS relaxed_rules
        FROM c CROSS JOIN relaxed r
        CROSS JOIN LATERAL ootd._score(w, p_user_id, p_dna, p_rules, p_taste, p_local_date, p_priority,
                                       c.liked, c.outfit_id, c.category, c.color, c.daypart, c.embedding) p
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
        SELECT (array_agg(r.drawn_from ORDER BY r.rank))[1] AS first_pool,
               ootd._occasion(p_local, array_agg(r.daypart ORDER BY r.rank)) AS occasion
        FROM ranked r
        WHERE r.rank <= p_limit
    ), headline AS (
        SELECT ootd._headline(p_weather_adjective, a.adjective, h.occasion, p_city) AS text
        FROM head h
        LEFT JOIN ootd.pools p ON p.pool_date = p_pool_date AND p.cluster_id = h.first_pool
        LEFT JOIN ootd.archetypes a ON a.name = p.archetype
    )
    SELECT r.rank, r.outfit_id, r.title, r.category, r.color, r.daypart, r.violations, r.priority,
           r.color_boost, r.category_boost, r.affinity_boost, r.liked_penalty, r.cosine, r.daypart_bonus,
           r.jitter, r.score, h.text, p_cluster_id, p_pool_date, r.source, r.relaxed_rules, r.drawn_from, p_variant
    FROM ranked r CROSS JOIN headline h;
END
$$;
COMMENT ON FUNCTION ootd._rank(bigint, jsonb, jsonb, public.vector, bigint[], timestamp, date, text, date, text, text, text,
                               ootd.scoring_weights, integer, text) IS
    'Private: every candidate with each score component and its rank (NULL = vetoed), and the headline; the ranking''s one home.';

-- ootd._ranked(user, at, limit): ootd._rank of a stored user with the
-- weights the user is served (ootd._assignment: the weights in force, or the
-- variant's of the running experiment), and that variant (what ootd.feed
-- and ootd.feed_explain read).
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._ranked(p_user_id bigint, p_at timestamptz, p_limit integer)
RETURNS SETOF ootd.ranked_outfit
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    a record;
    x ootd.serving_context;
BEGIN
    SELECT * INTO x FROM ootd._serving_context(p_user_id, p_at);
    IF NOT FOUND THEN          -- unknown user, or no pool at all
        RETURN;
    END IF;
    a := ootd._assignment(p_user_id);
    RETURN QUERY
    SELECT * FROM ootd._rank(x.user_id, x.dna, x.rules, x.taste, x.liked, x.local, x.local_date, x.priority_daypart,
                             x.pool_date, x.cluster_id, x.city, x.weather_adjective, a.weights, p_limit, a.variant);
END
$$;
COMMENT ON FUNCTION ootd._ranked(bigint, timestamptz, integer) IS
    'Private: ootd._rank of a stored user at an instant with the weights and variant the user is served (what ootd.feed serves).';

-- ootd.feed(user, at, limit): the user's feed, p_limit outfits (1..20), zero
-- LLM calls: the served rows of ootd._ranked (see its header for the steps).
-- variant: the user's variant of the running experiment (NULL when none
-- runs; docs/experiments.md).  A pure read, computed on every call.  Errors: unknown user P0002; p_limit
-- outside 1..20 22023.  With no pools at all the result is empty.
CREATE FUNCTION ootd.feed(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               score double precision, headline text, cluster_id text, relaxed_rules text[], variant text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_limit(p_limit);
    RETURN QUERY
    SELECT r.rank, r.outfit_id, r.title, r.category, r.color, r.daypart, r.score, r.headline, r.cluster_id,
           r.relaxed_rules, r.variant
    FROM ootd._ranked(p_user_id, coalesce(p_at, now()), p_limit) r
    WHERE r.rank <= p_limit
    ORDER BY r.rank;
    IF NOT FOUND THEN
        PERFORM ootd._check_user(p_user_id);   -- no rows: an unknown user (P0002), or no pool at all
    END IF;
END
$$;
COMMENT ON FUNCTION ootd.feed(bigint, timestamptz, integer) IS
    'The user''s Outfit-of-the-Day feed at a moment: ranked outfits, headline, cluster, relaxed veto rules, experiment variant; a pure read.';

-- ootd.feed_explain(user, at, limit): every candidate with each score
-- component, veto and rank (NULL = vetoed), the pool served, where each row
-- was read, the pool it was drawn from and the user's experiment variant;
-- ootd.feed returns the rows with a rank <= p_limit.
CREATE FUNCTION ootd.feed_explain(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS SETOF ootd.ranked_outfit
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
    'Every candidate with each score component, veto, rank (NULL rank = vetoed), the pool it was drawn from and the variant; for analysts.';

-- ootd.simulate(profile, at, weights, cluster, limit): what ootd.feed_explain
-- would show for a what-if profile (ootd._profile_problem says which), with
-- some weights replaced for this call (ootd._weights_with; never written) and
-- optionally another pool: the ranking is ootd._rank, the feed's own.  The
-- weights replaced are those the profile's user_id is served (its variant's
-- when an experiment runs: ootd._assignment; without a user_id, the weights
-- in force), so a stored user's ootd.user_profile with no weights and no
-- cluster gives that user's feed exactly.  Reads no ootd.users or ootd.likes row: a profile
-- carries its own likes.  Errors: a bad profile, weights or limit 22023; an
-- unknown cluster P0002.  No pool at all: no rows.
CREATE FUNCTION ootd.simulate(p_profile jsonb, p_at timestamptz DEFAULT now(), p_weights jsonb DEFAULT '{}',
                              p_cluster_id text DEFAULT NULL, p_limit integer DEFAULT 3)
RETURNS SETOF ootd.ranked_outfit
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_problem text := ootd._profile_problem(p_profile);
    a         record;
    w         ootd.scoring_weights;
    v_variant text;
BEGIN
    PERFORM ootd._check_limit(p_limit);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION '%', v_problem USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO w FROM ootd.scoring_weights;
    IF p_profile ? 'user_id' THEN
        a := ootd._assignment((p_profile ->> 'user_id')::bigint);
        w := a.weights;
        v_variant := a.variant;
    END IF;
    w := ootd._weights_with(p_weights, w);
    IF p_cluster_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ootd.pools p WHERE p.cluster_id = p_cluster_id) THEN
        RAISE EXCEPTION 'unknown pool %', p_cluster_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN QUERY
    SELECT r.*
    FROM ootd.cities c
    CROSS JOIN LATERAL ootd._context(
        coalesce((p_profile ->> 'user_id')::bigint, 0), c.name, c.timezone, coalesce(p_profile -> 'style_dna', '{}'),
        coalesce(p_profile -> 'style_rules', '{}'),
        CASE WHEN jsonb_typeof(p_profile -> 'taste') = 'array' THEN (p_profile ->> 'taste')::public.vector END,
        ARRAY(SELECT i::bigint FROM jsonb_array_elements_text(coalesce(p_profile -> 'liked_outfits', '[]')) i),
        coalesce(p_at, now()), p_cluster_id) x
    CROSS JOIN LATERAL ootd._rank(x.user_id, x.dna, x.rules, x.taste, x.liked, x.local, x.local_date, x.priority_daypart,
                                  x.pool_date, x.cluster_id, x.city, x.weather_adjective, w, p_limit, v_variant) r
    WHERE lower(c.name) = lower(p_profile ->> 'city')
    ORDER BY r.rank NULLS LAST, r.score DESC, r.outfit_id;
END
$$;
COMMENT ON FUNCTION ootd.simulate(jsonb, timestamptz, jsonb, text, integer) IS
    'What-if ranking (the feed''s own) for a profile, weights and pool: every candidate with its components; writes nothing.';

-- --------------------------------------------------------------- evaluation --
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
                                           o.id, o.category, o.color, o.daypart, o.embedding), 0) AS gain
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

-- ootd._evaluation_params(users, sampled, local times, ks, limit): a run's
-- params: what was asked, the weights in force and the running experiment
-- (whose variants' users are measured with their variant's weights).
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._evaluation_params(p_users integer, p_sampled integer, p_times time[], p_ks integer[],
                                        p_limit integer)
RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object('users', p_users, 'sampled', p_sampled,
                                  'at_times', ARRAY(SELECT to_char(t, 'HH24:MI') FROM unnest(p_times) t),
                                  'k', p_ks, 'limit', p_limit, 'weights', to_jsonb(w) - 'singleton',
                                  'experiment', (SELECT e.name FROM ootd.experiments e WHERE e.ended_at IS NULL))
        FROM ootd.scoring_weights w);
END
$$;
COMMENT ON FUNCTION ootd._evaluation_params(integer, integer, time[], integer[], integer) IS
    'Private: an evaluation run''s params (users, sampled, local times, ks, limit, weights in force, running experiment).';

-- ootd.evaluate(date, users, local times, limit, progress): measure the
-- illusion of 1:1 personalization and store one row in ootd.evaluations.
-- The first `users` users by hashint8(id), at each local time on `date`
-- (default: the latest pool date), with k = 3 (the default feed) and k =
-- limit.  progress: a NOTICE per 50 users, DETAIL {"done": n, "total": m}
-- (what `ootd evaluate` draws its bar from).  Errors (22023): users outside
-- 1..100000, no or duplicate or NULL local times, limit outside 1..20;
-- P0002: no pools on the date.
CREATE OR REPLACE FUNCTION ootd.evaluate(p_date date DEFAULT NULL, p_users integer DEFAULT 600,
                              p_times time[] DEFAULT '{09:00,15:00,21:00}', p_limit integer DEFAULT 5,
                              p_progress boolean DEFAULT false)
RETURNS ootd.evaluations
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_date  date := coalesce(p_date, (SELECT max(p.pool_date) FROM ootd.pools p));
    v_users bigint[];
    v_ks    integer[] := ARRAY(SELECT DISTINCT k FROM unnest(ARRAY[3, p_limit]) k ORDER BY k);
    v_row   ootd.evaluations;
BEGIN
    PERFORM ootd._check_evaluation(p_users, p_times, p_limit, v_date);
    v_users := ootd._evaluation_sample(p_users);
    INSERT INTO ootd.evaluations (pool_date, params, metrics)
    VALUES (v_date, ootd._evaluation_params(p_users, cardinality(v_users), p_times, v_ks, p_limit),
            ootd._evaluation_metrics(ootd._collect_feeds(v_date, v_users, p_times, v_ks, p_progress),
                                     (SELECT count(*) FROM ootd.outfits o WHERE o.pool_date = v_date)))
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION ootd.evaluate(date, integer, time[], integer, boolean) IS
    'Measure the illusion of 1:1 personalization (NDCG vs a 1:1 oracle, personalization, coverage, diversity, checks); stores one ootd.evaluations row.';

-- ootd.evaluate_sweep(date, users, local times, limit, progress): the
-- metrics of ootd.evaluate for four ways of serving, against K, the LLM
-- calls each costs a night, computed without any LLM call; stores one row in
-- ootd.evaluations (params.sweep = true; metrics: clusterings, the names from
-- coarse to fine, and per name the metrics of ootd.evaluate plus clusters,
-- llm_calls, users_per_call and weather_mismatch_share@k).  The first three
-- serve each user their own pool only (no neighbour draw):
--   archetype                : every user of an archetype is served that
--                              archetype's largest pool of the day;
--   archetype_weather        : the pools as generated;
--   archetype_weather_taste  : each cluster split in two by taste
--                              (ootd._taste_halves), each half served the
--                              day's same-weather outfits nearest its mean
--                              taste (ootd._sweep_pools);
--   archetype_weather_neighbours : the pools as generated, with the
--                              priority daypart drawn from every same-weather
--                              pool (scoring_weights.neighbour_pools), K as
--                              archetype_weather.
-- The oracle is ootd.evaluate's for every clustering.  progress: NOTICEs as
-- ootd.evaluate's, over 4 x users.  Errors: as ootd.evaluate.
CREATE OR REPLACE FUNCTION ootd.evaluate_sweep(p_date date DEFAULT NULL, p_users integer DEFAULT 600,
                                    p_times time[] DEFAULT '{09:00,15:00,21:00}', p_limit integer DEFAULT 5,
                                    p_progress boolean DEFAULT false)
RETURNS ootd.evaluations
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_date      date := coalesce(p_date, (SELECT max(p.pool_date) FROM ootd.pools p));
    v_names     constant text[] := '{archetype,archetype_weather,archetype_weather_taste,archetype_weather_neighbours}';
    v_k_names   constant text[] := '{archetype,archetype_weather,archetype_weather_taste,archetype_weather}';
    v_ks        integer[] := ARRAY(SELECT DISTINCT k FROM unnest(ARRAY[3, p_limit]) k ORDER BY k);
    v_users     bigint[];
    v_n         integer;
    v_generated bigint;
    v_clusters  jsonb;
    v_feeds     ootd.evaluation_feed[];
    v_metrics   jsonb;
    v_row       ootd.evaluations;
BEGIN
    PERFORM ootd._check_evaluation(p_users, p_times, p_limit, v_date);
    v_users := ootd._evaluation_sample(p_users);
    v_n := cardinality(v_users);
    v_generated := (SELECT count(*) FROM ootd.outfits o WHERE o.pool_date = v_date);
    v_clusters := ootd._sweep_clusters(v_date);
    v_metrics := jsonb_build_object('clusterings', to_jsonb(v_names));

    FOR c IN 1 .. 4 LOOP
        IF c = 1 THEN
            v_feeds := ootd._sweep_feeds(v_date, v_users, p_times, v_ks, 'archetype', 0, false, p_progress, 0, 4 * v_n);
        ELSIF c = 2 THEN
            v_feeds := ootd._sweep_feeds(v_date, v_users, p_times, v_ks, 'served', 0, false, p_progress, v_n, 4 * v_n);
        ELSIF c = 4 THEN
            v_feeds := ootd._sweep_feeds(v_date, ootd._evaluation_sample(p_users), p_times, v_ks, 'served', 0, true,
                                         p_progress, 3 * v_n, 4 * v_n);
        ELSE
            v_feeds := '{}';
            FOR h IN 0 .. 1 LOOP
                v_users := ARRAY(SELECT s.id
                                 FROM unnest(ootd._evaluation_sample(p_users)) WITH ORDINALITY AS s(id, n)
                                 LEFT JOIN ootd._taste_halves(v_date) t ON t.user_id = s.id
                                 WHERE coalesce(t.half, 0) = h ORDER BY s.n);
                v_feeds := v_feeds || ootd._sweep_feeds(v_date, v_users, p_times, v_ks, 'taste', h, false, p_progress,
                                                        2 * v_n + h * (v_n - cardinality(v_users)), 4 * v_n);
            END LOOP;
        END IF;
        v_metrics := v_metrics || jsonb_build_object(v_names[c],
            ootd._evaluation_metrics(v_feeds, v_generated)
            || ootd._weather_mismatch(v_feeds, v_date)
            || jsonb_build_object('clusters', v_clusters -> v_k_names[c], 'llm_calls', v_clusters -> v_k_names[c],
                                  'users_per_call', (v_clusters ->> 'clustered_users')::double precision
                                                    / nullif((v_clusters ->> v_k_names[c])::double precision, 0)));
    END LOOP;

    INSERT INTO ootd.evaluations (pool_date, params, metrics)
    VALUES (v_date, ootd._evaluation_params(p_users, v_n, p_times, v_ks, p_limit) || '{"sweep": true}', v_metrics)
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION ootd.evaluate_sweep(date, integer, time[], integer, boolean) IS
    'The evaluation for clusterings by archetype, archetype x weather, x taste half, and with neighbour draws, against the LLM calls each costs; no LLM call; stores one ootd.evaluations row.';

-- ootd._variant_feeds(date, users, local times, ks, experiment, variant,
-- progress, done, total): the users' measured feeds as if every one of them
-- were in one variant of an experiment: in a subtransaction that is always
-- rolled back, the experiment runs alone with that variant's share 1, so
-- the feed, the oracle and ootd._assignment serve each user exactly what the
-- variant's users are served.  Nothing written stays; a concurrent change of
-- the experiment waits for the pass.
CREATE FUNCTION ootd._variant_feeds(p_date date, p_users bigint[], p_times time[], p_ks integer[],
                                    p_experiment text, p_variant text, p_progress boolean, p_done integer,
                                    p_total integer)
RETURNS ootd.evaluation_feed[]
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_feeds ootd.evaluation_feed[];
BEGIN
    BEGIN
        UPDATE ootd.experiments e SET ended_at = now() WHERE e.ended_at IS NULL AND e.name <> p_experiment;
        UPDATE ootd.experiments e SET ended_at = NULL WHERE e.name = p_experiment;
        UPDATE ootd.experiment_variants v SET share = (v.variant = p_variant)::integer WHERE v.experiment = p_experiment;
        v_feeds := ootd._collect_feeds(p_date, p_users, p_times, p_ks, p_progress, p_done, p_total);
        RAISE EXCEPTION 'variant pass done' USING ERRCODE = 'OOTDV';
    EXCEPTION WHEN SQLSTATE 'OOTDV' THEN
        NULL;                            -- the experiment is as it was; v_feeds stays
    END;
    RETURN v_feeds;
END
$$;
COMMENT ON FUNCTION ootd._variant_feeds(date, bigint[], time[], integer[], text, text, boolean, integer, integer) IS
    'Private: users'' measured feeds as if all were in one variant of an experiment, in a rolled-back subtransaction.';

-- ootd.evaluate_variants(experiment, date, users, local times, limit,
-- progress): the metrics of ootd.evaluate for each variant of an experiment
-- (default: the running one; an ended one may be named), each measured on
-- the same users at the same local times as if all of them were in that
-- variant (ootd._variant_feeds; the oracle scores with that variant's
-- weights); no LLM call, nothing served changes.  Stores one row in
-- ootd.evaluations (params.experiment; metrics: variants, their names in
-- bucket order, control, and by_variant: per name the metrics of
-- ootd.evaluate plus share and weights).  progress: NOTICEs as ootd.evaluate's, over variants x
-- users.  Errors: no experiment running and none named, or an unknown one,
-- P0002; else as ootd.evaluate.
CREATE FUNCTION ootd.evaluate_variants(p_experiment text DEFAULT NULL, p_date date DEFAULT NULL,
                                       p_users integer DEFAULT 600, p_times time[] DEFAULT '{09:00,15:00,21:00}',
                                       p_limit integer DEFAULT 5, p_progress boolean DEFAULT false)
RETURNS ootd.evaluations
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_date      date := coalesce(p_date, (SELECT max(p.pool_date) FROM ootd.pools p));
    v_name      text := coalesce(p_experiment, (SELECT e.name FROM ootd.experiments e WHERE e.ended_at IS NULL));
    v_ks        integer[] := ARRAY(SELECT DISTINCT k FROM unnest(ARRAY[3, p_limit]) k ORDER BY k);
    v_users     bigint[];
    v_generated bigint;
    v_variants  integer;
    v_done      integer := 0;
    v_metrics   jsonb;
    v           ootd.experiment_variants;
    v_row       ootd.evaluations;
BEGIN
    IF v_name IS NULL THEN
        RAISE EXCEPTION 'no experiment is running: name one (ootd.experiments lists them)' USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ootd.experiments e WHERE e.name = v_name) THEN
        RAISE EXCEPTION 'unknown experiment %', quote_literal(v_name) USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM ootd._check_evaluation(p_users, p_times, p_limit, v_date);
    v_users := ootd._evaluation_sample(p_users);
    v_generated := (SELECT count(*) FROM ootd.outfits o WHERE o.pool_date = v_date);
    SELECT count(*), jsonb_build_object('variants', jsonb_agg(x.variant ORDER BY x.position),
                                        'control', min(x.variant) FILTER (WHERE x.control), 'by_variant', '{}'::jsonb)
    INTO v_variants, v_metrics
    FROM ootd.experiment_variants x WHERE x.experiment = v_name;
    FOR v IN SELECT * FROM ootd.experiment_variants x WHERE x.experiment = v_name ORDER BY x.position LOOP
        v_metrics := jsonb_set(v_metrics, ARRAY['by_variant', v.variant],
            ootd._evaluation_metrics(ootd._variant_feeds(v_date, v_users, p_times, v_ks, v_name, v.variant, p_progress,
                                                         v_done, v_variants * cardinality(v_users)), v_generated)
            || jsonb_build_object('share', v.share, 'weights', v.weights));
        v_done := v_done + cardinality(v_users);
    END LOOP;
    INSERT INTO ootd.evaluations (pool_date, params, metrics)
    VALUES (v_date, ootd._evaluation_params(p_users, cardinality(v_users), p_times, v_ks, p_limit)
                    || jsonb_build_object('experiment', v_name, 'by_variant', true), v_metrics)
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION ootd.evaluate_variants(text, date, integer, time[], integer, boolean) IS
    'The evaluation for each variant of an experiment, on the same users and local times, each as if every user were in it; no LLM call; stores one ootd.evaluations row.';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ootd.feed(bigint, timestamptz, integer) TO ootd_api, ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.feed_explain(bigint, timestamptz, integer) TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.simulate(jsonb, timestamptz, jsonb, text, integer) TO ootd_api, ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.evaluate_variants(text, date, integer, time[], integer, boolean) TO ootd_analyst;

-- experiments (07_experiments.sql): analysts run them, through these functions only (no table
-- privilege but SELECT); ootd_api and ootd_batch cannot change them.
GRANT EXECUTE ON FUNCTION ootd.start_experiment(text, jsonb, text), ootd.set_experiment_shares(text, jsonb),
                          ootd.end_experiment(text), ootd.experiment_of(bigint), ootd._experiment_results(text)
    TO ootd_analyst;

RESET ROLE;
