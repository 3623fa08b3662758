-- =============================================================================
-- ootd: experiments (A/B variants of the scoring weights)
-- An experiment splits every user between named variants: each variant is
-- a set of scoring weights replacing some of ootd.scoring_weights, with a
-- traffic share.  A user's variant is a pure function of the user id, the
-- experiment's name and the shares (ootd._variant_at): no per-user row, the
-- same answer on a hot standby and on every Citus worker.  One experiment
-- runs at a time (each covers every user).  The control variant serves the
-- weights in force, so with no experiment running, or once it ends, every
-- user is served exactly as the control.  Analysts start, reallocate and end
-- experiments with the functions below (each change logged with who and
-- when) and read ootd.experiment_results.  docs/experiments.md.
-- Kinds in order: tables, helpers, API, views.
-- =============================================================================

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

-- Which experiment runs and its variants' shares and weights decide every
-- feed: a change makes every served feed stale (06_serving_ahead.sql).
CREATE CONSTRAINT TRIGGER experiments_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.experiments
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE TRIGGER experiments_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.experiments
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE CONSTRAINT TRIGGER experiment_variants_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.experiment_variants
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE TRIGGER experiment_variants_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.experiment_variants
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed();

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
-- ootd._experiment_min_days(): the exposure, in days of the allocation
-- period, below which ootd.experiment_results gives counts only (rates and
-- differences NULL, meaningful false): 30 seconds of likes make no rate per
-- day.  Default 1; configurable per database, role or session with the
-- setting ootd.experiment_min_days (e.g. ALTER DATABASE ootd SET
-- ootd.experiment_min_days = '0.5'; `ootd experiment results --min-days`).
-- A display threshold, not a check.  Errors: 22023 a setting that is not
-- a number of days from 0 to 3650.
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

-- ootd._experiment_results(experiment): per variant of an experiment,
-- over its current allocation period (allocated_at to ended_at, or now):
-- the users assigned to it (every user now in ootd.users, by
-- ootd._variant_at), their likes made in the period, likes per user per
-- day, and the share of users with at least one like; for each non-control
-- variant the difference to the control with a 95% confidence interval: for
-- likes per user per day a normal (Welch) interval from the per-user
-- counts' variances; for the share of users who liked, the two-proportion z
-- interval (unpooled Wald); no interval (NULL) while its standard error is
-- 0 (e.g. no likes yet).  Below the minimum exposure (min_days,
-- ootd._experiment_min_days) only the counts are given: meaningful is
-- false and every rate, share, difference and interval is NULL.  One pass
-- over users and likes (on Citus, on the workers).  No row for an unknown
-- experiment.
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

-- One experiment's rows are computed only when asked for: WHERE experiment =
-- 'x' filters ootd.experiments before the lateral call.
CREATE VIEW ootd.experiment_results AS
SELECT e.name AS experiment, r.*
FROM ootd.experiments e
CROSS JOIN LATERAL ootd._experiment_results(e.name) r;
COMMENT ON VIEW ootd.experiment_results IS
    'Per experiment and variant, over the allocation period: users, likes, likes per user per day, share of users who liked, each variant''s difference to control with a 95% CI (Welch normal for likes per user per day, two-proportion z for the share who liked); below min_days of exposure (ootd.experiment_min_days, default 1) counts only: meaningful false, rates NULL.';
