-- =============================================================================
-- ootd: serving ahead (ootd.served_feeds: what ootd.feed reads first)
-- Each user's ranked feed for a local date, computed ahead by the writers of
-- its inputs and read by ootd.feed with one index probe.  A row is only ever
-- the live ranking's answer (ootd._rank) written down: it carries the version
-- of the global inputs it was computed from (ootd.serving_inputs), and
-- ootd.feed serves it only while that version is current and the row is for
-- the instant's local date, priority daypart and limit; otherwise it ranks
-- live.  Who writes rows:
--   - the nightly (ootd.refresh_feeds, every user, after the day's pools);
--   - any change of a user's row (a like or unlike through the likes trigger,
--     ootd.put_user, a direct UPDATE): the users trigger below recomputes that
--     user's rows in the same transaction, so a row never lags its user;
--   - `ootd feeds refresh` after a change of the global inputs (weights,
--     experiments, vocabulary, pools, weather), which makes every row stale
--     at once: until then feeds are ranked live, never served stale.
-- The read (ootd.feed) never writes.  Kinds in order: tables, version,
-- helpers, writers, triggers.
-- =============================================================================

-- ------------------------------------------------------------------- tables --
-- The version of the global inputs every feed depends on (one row).
CREATE TABLE ootd.serving_inputs (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL DEFAULT 1,
    changed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ootd.serving_inputs IS
    'Derived: the version of the inputs shared by every feed (weights, experiments, vocabulary, pools, weather); raised by their triggers.';
INSERT INTO ootd.serving_inputs DEFAULT VALUES;

-- One user's feed for one local date and priority daypart: the first
-- feed_limit served outfits of ootd._rank, in rank order (parallel arrays),
-- for the instants from valid_from to valid_until (the local hours of that
-- date with that priority daypart), and the headline for each run of those
-- hours (it names the occasion, which depends on the local hour): headlines[k]
-- from headline_from[k] on.  So the read needs no time zone at all.
CREATE TABLE ootd.served_feeds (
    user_id          bigint NOT NULL REFERENCES ootd.users (id) ON DELETE CASCADE,
    local_date       date NOT NULL,
    priority_daypart text NOT NULL CHECK (priority_daypart IN ('Daytime', 'NightOut')),
    feed_limit       integer NOT NULL CHECK (feed_limit BETWEEN 1 AND 20),
    inputs_version   bigint NOT NULL,
    valid_from       timestamptz NOT NULL,
    valid_until      timestamptz NOT NULL,
    cluster_id       text NOT NULL,
    variant          text,
    relaxed_rules    text[] NOT NULL,
    outfit_ids       bigint[] NOT NULL,
    titles           text[] NOT NULL,
    categories       text[] NOT NULL,
    colors           text[] NOT NULL,
    dayparts         text[] NOT NULL,
    scores           double precision[] NOT NULL,
    headlines        text[] NOT NULL,
    headline_from    timestamptz[] NOT NULL,
    computed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, local_date, priority_daypart),
    CHECK (valid_from < valid_until),
    CHECK (cardinality(outfit_ids) BETWEEN 1 AND feed_limit
           AND cardinality(titles) = cardinality(outfit_ids) AND cardinality(categories) = cardinality(outfit_ids)
           AND cardinality(colors) = cardinality(outfit_ids) AND cardinality(dayparts) = cardinality(outfit_ids)
           AND cardinality(scores) = cardinality(outfit_ids)),
    CHECK (cardinality(headlines) >= 1 AND cardinality(headline_from) = cardinality(headlines)
           AND headline_from[1] = valid_from)
);
COMMENT ON TABLE ootd.served_feeds IS
    'Derived: each user''s ranked feed per local date and priority daypart, as ootd._rank computed it; served while inputs_version is current.';
COMMENT ON COLUMN ootd.served_feeds.inputs_version IS
    'ootd.serving_inputs.version when the row was computed: a different current version means stale (ranked live instead).';
COMMENT ON COLUMN ootd.served_feeds.valid_from IS 'The first instant the row answers for: its local date''s first hour with its priority daypart.';
COMMENT ON COLUMN ootd.served_feeds.valid_until IS 'The first instant past the row: the next priority daypart, or the next local date.';
COMMENT ON COLUMN ootd.served_feeds.headlines IS 'The headline from headline_from[k] (the same index) until the next one or valid_until.';

-- ------------------------------------------------------------------ version --
-- ootd._serving_inputs_changed(): the triggers of every table whose rows any
-- feed may read (weights, experiments, vocabulary, pools, outfits, weather),
-- two per table:
--   - `<table>_inputs_changed`, a deferred constraint trigger (row level, at
--     commit): one more version, once per transaction, so every served row
--     is stale from that commit on.  The version's row is locked from the
--     commit's start to its end only: a long transaction that writes an
--     input (ootd.generate_pool waits for the LLM) makes no other writer wait;
--   - `<table>_inputs_written`, a statement trigger: until it commits, the
--     writing transaction's own feeds are ranked live (ootd.inputs_changed,
--     a transaction-local setting ootd._served reads); a TRUNCATE, which
--     constraint triggers do not see, raises the version at once.
-- SECURITY DEFINER: analysts update the weights and the batch writes pools
-- without any privilege on ootd.serving_inputs.  On Citus it does nothing:
-- no feed is served ahead there (ootd._materializing).
CREATE FUNCTION ootd._serving_inputs_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT ootd._materializing() THEN
        RETURN NULL;
    END IF;
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM set_config('ootd.inputs_changed', 'on', true);
        IF TG_OP <> 'TRUNCATE' THEN
            RETURN NULL;
        END IF;
    END IF;
    UPDATE ootd.serving_inputs s SET version = s.version + 1, changed_at = now()
    WHERE s.xmin <> pg_current_xact_id()::xid;           -- once per transaction
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._serving_inputs_changed() IS
    'Private: the global inputs'' trigger (at commit, once per transaction): raises ootd.serving_inputs.version (every served row becomes stale).';

-- ------------------------------------------------------------------ helpers --
-- ootd._materializing(): whether feeds are written ahead here: everywhere but
-- on a Citus cluster (there every feed is ranked live, on the user's worker).
CREATE FUNCTION ootd._materializing()
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus')
$$;
COMMENT ON FUNCTION ootd._materializing() IS
    'Private: true where served feeds are written ahead (not on Citus, where feeds are ranked live).';

-- ootd._served(user, at, limit): the user's served row for the instant, as
-- ootd.feed's rows: only when the instant falls in the row's hours, the limit
-- is the row's and its inputs version is current; the headline is the one
-- from the instant's run of hours (width_bucket over headline_from).  No row:
-- none, or stale, or this transaction changed a shared input (the caller
-- ranks live).  One index probe (plus the
-- one-row version table); the arrays are unnested in the select list (in
-- step, without a tuplestore per array).
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its
-- tables (a SQL function here would be inlined: 13 us less per feed).
CREATE FUNCTION ootd._served(p_user_id bigint, p_at timestamptz, p_limit integer)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               score double precision, headline text, cluster_id text, relaxed_rules text[], variant text)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN QUERY
    SELECT generate_subscripts(f.outfit_ids, 1), unnest(f.outfit_ids), unnest(f.titles), unnest(f.categories),
           unnest(f.colors), unnest(f.dayparts), unnest(f.scores),
           f.headlines[width_bucket(p_at, f.headline_from)], f.cluster_id, f.relaxed_rules, f.variant
    FROM ootd.served_feeds f
    WHERE f.user_id = p_user_id AND f.valid_from <= p_at AND p_at < f.valid_until AND f.feed_limit = p_limit
      AND f.inputs_version = (SELECT s.version FROM ootd.serving_inputs s)
      AND current_setting('ootd.inputs_changed', true) IS DISTINCT FROM 'on'   -- (not in a writing transaction)
    ORDER BY 1;
END
$$;
COMMENT ON FUNCTION ootd._served(bigint, timestamptz, integer) IS
    'Private: the user''s current served row for an instant as feed rows (none when missing or stale).';

-- ------------------------------------------------------------------ writers --
-- ootd._materialize(users, dates, limit): compute and store the served rows
-- of each (user, local date) pair (users[k] on dates[k]), one row per
-- priority daypart, set-based: every pair's contexts (ootd._serving_context,
-- at the local date's start) and one call of ootd._rank_all for all of them.
-- Each priority daypart (ootd._priority_daypart decides which local hours
-- have which) is ranked at its first hour: the ranking depends on the local
-- time only through the date, the priority daypart and the headline's
-- occasion.  The headline is the ranking's (ootd._headline of the served
-- pool's weather, the items' archetype adjective as ootd._rank_all names it,
-- ootd._occasion, the city) for each local hour, kept once per run of equal
-- hours.  The version is read first: an input change committing while this
-- runs makes the rows stale, never wrong.  The pairs' old rows are replaced;
-- not written (the feed ranks live): a date whose local day is not 24 hours
-- long (a daylight-saving change: some local times are missing or repeated),
-- a user with no pool at all or nothing served.  Returns the rows written.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._materialize(p_users bigint[], p_dates date[], p_limit integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan   -- (as ootd._rank_all: a like writes one user's rows)
AS $$
DECLARE
    v_version bigint;
    v_written integer;
BEGIN
    SELECT s.version INTO v_version FROM ootd.serving_inputs s;
    DELETE FROM ootd.served_feeds f
    USING unnest(p_users, p_dates) AS d(user_id, local_date)
    WHERE f.user_id = d.user_id AND f.local_date = d.local_date;
    WITH days AS MATERIALIZED (     -- the pairs whose local day is 24 hours long, with their profile
        SELECT DISTINCT d.user_id, d.local_date, u.timezone,
                        d.local_date::timestamp AT TIME ZONE u.timezone AS day_start
        FROM unnest(p_users, p_dates) AS d(user_id, local_date)
        JOIN ootd.users u ON u.id = d.user_id
        WHERE ((d.local_date + 1)::timestamp AT TIME ZONE u.timezone) - (d.local_date::timestamp AT TIME ZONE u.timezone)
              = interval '24 hours'
    ), parts AS MATERIALIZED (      -- each priority daypart's first and last local hour
        SELECT x.local_date, ootd._priority_daypart(x.local_date + make_interval(hours => h.hour)) AS priority,
               min(h.hour) AS first_hour, max(h.hour) AS last_hour
        FROM (SELECT DISTINCT d.local_date FROM days d) x CROSS JOIN generate_series(0, 23) AS h(hour)
        GROUP BY 1, 2
    ), requests AS MATERIALIZED (
        SELECT row_number() OVER (ORDER BY d.user_id, d.local_date, p.first_hour)::integer AS request,
               d.user_id, d.local_date, d.timezone, p.priority, p.first_hour, p.last_hour, x.cluster_id,
               x.city, x.weather_adjective, a.variant,
               ROW(ROW(x.user_id, x.dna, x.rules, x.taste, x.liked, d.local_date + make_interval(hours => p.first_hour),
                       x.local_date, p.priority, x.pool_date, x.cluster_id, x.city,
                       x.weather_adjective)::ootd.serving_context,
                   a.weights, a.variant)::ootd._ranking_request AS r
        FROM days d
        CROSS JOIN LATERAL ootd._serving_context(d.user_id, d.day_start) x   -- no row: no pool at all
        CROSS JOIN LATERAL ootd._assignment(d.user_id) a
        JOIN parts p ON p.local_date = d.local_date
    ), feeds AS (
        SELECT k.request, min(k.archetype_adjective) AS adjective, min(k.relaxed_rules) AS relaxed_rules,
               array_agg(k.outfit_id ORDER BY k.rank) AS outfit_ids, array_agg(k.title ORDER BY k.rank) AS titles,
               array_agg(k.category ORDER BY k.rank) AS categories, array_agg(k.color ORDER BY k.rank) AS colors,
               array_agg(k.daypart ORDER BY k.rank) AS dayparts, array_agg(k.score ORDER BY k.rank) AS scores
        FROM ootd._rank_all(ARRAY(SELECT q.r FROM requests q ORDER BY q.request), p_limit, false) k
        GROUP BY k.request
    )
    INSERT INTO ootd.served_feeds (user_id, local_date, priority_daypart, feed_limit, inputs_version, valid_from,
                                   valid_until, cluster_id, variant, relaxed_rules, outfit_ids, titles,
                                   categories, colors, dayparts, scores, headlines, headline_from)
    SELECT q.user_id, q.local_date, q.priority, p_limit, v_version,
           (q.local_date + make_interval(hours => q.first_hour)) AT TIME ZONE q.timezone,
           (q.local_date + make_interval(hours => q.last_hour + 1)) AT TIME ZONE q.timezone,
           q.cluster_id, q.variant, f.relaxed_rules, f.outfit_ids, f.titles, f.categories, f.colors, f.dayparts,
           f.scores, h.headlines, h.headline_from
    FROM feeds f
    JOIN requests q ON q.request = f.request
    CROSS JOIN LATERAL (
        SELECT array_agg(r.headline ORDER BY r.hour) AS headlines,
               array_agg((q.local_date + make_interval(hours => r.hour)) AT TIME ZONE q.timezone ORDER BY r.hour)
                   AS headline_from
        FROM (SELECT g.hour, g.headline, lag(g.headline) OVER (ORDER BY g.hour) AS before
              FROM (SELECT h.hour,
                           ootd._headline(q.weather_adjective, f.adjective,
                                          ootd._occasion(q.local_date + make_interval(hours => h.hour), f.dayparts),
                                          q.city) AS headline
                    FROM generate_series(q.first_hour, q.last_hour) AS h(hour)) g) r
        WHERE r.before IS DISTINCT FROM r.headline) h;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    RETURN v_written;
END
$$;
COMMENT ON FUNCTION ootd._materialize(bigint[], date[], integer) IS
    'Private: compute and store the served rows (one per priority daypart) of each (user, local date) pair, set-based, with ootd._rank_all.';

-- ootd._rematerialize(users): the users whose rows must follow a change of
-- their own inputs: each local date they have rows for is computed again,
-- and their local date now (a new time zone may have moved it), in one
-- ootd._materialize.  Users without rows get none (the nightly writes them).
CREATE FUNCTION ootd._rematerialize(p_users bigint[])
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_users bigint[];
    v_dates date[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ootd.served_feeds f WHERE f.user_id = ANY (p_users)) THEN
        RETURN 0;              -- (the common case before the first nightly: one probe)
    END IF;
    SELECT array_agg(d.user_id ORDER BY d.user_id, d.local_date), array_agg(d.local_date ORDER BY d.user_id, d.local_date)
    INTO v_users, v_dates
    FROM (SELECT f.user_id, f.local_date
          FROM ootd.served_feeds f
          WHERE f.user_id = ANY (p_users)
          UNION
          SELECT u.id, (now() AT TIME ZONE u.timezone)::date
          FROM ootd.users u
          WHERE u.id = ANY (p_users) AND EXISTS (SELECT 1 FROM ootd.served_feeds f WHERE f.user_id = u.id)) d;
    RETURN ootd._materialize(v_users, v_dates);
END
$$;
COMMENT ON FUNCTION ootd._rematerialize(bigint[]) IS
    'Private: compute again every served row of these users, and their local date now (after a change of their profile or likes).';

-- ootd.refresh_feeds(at, day, part, parts): write every user's feed for the
-- local date at `at` and for `day` (the nightly's pool date; NULL: only the
-- first), replacing the user's other rows; users whose id % parts = part
-- (run parts in parallel sessions).  Ranks 500 users per ootd._materialize
-- and commits after each (CALL it outside a transaction block), so a long run
-- holds no lock for long and a crash keeps what was written.  Returns
-- nothing; rows written are in ootd.served_feeds_status.  Run by the nightly
-- and `ootd feeds refresh`.
CREATE PROCEDURE ootd.refresh_feeds(p_at timestamptz DEFAULT now(), p_day date DEFAULT NULL,
                                    p_part integer DEFAULT 0, p_parts integer DEFAULT 1)
LANGUAGE plpgsql                       -- no SET clause: a procedure with one cannot COMMIT
AS $$
DECLARE
    v_after bigint := 0;
    v_users bigint[];
    v_dates date[];
BEGIN
    IF p_parts IS NULL OR p_parts < 1 OR p_part IS NULL OR p_part < 0 OR p_part >= p_parts THEN
        RAISE EXCEPTION 'part must be in 0 .. parts - 1 and parts >= 1, got part % of %',
            coalesce(p_part::text, 'NULL'), coalesce(p_parts::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT ootd._materializing() THEN
        RETURN;
    END IF;
    LOOP
        SELECT array_agg(x.id ORDER BY x.id) INTO v_users
        FROM (SELECT u.id FROM ootd.users u
              WHERE u.id > v_after AND u.id % p_parts = p_part
              ORDER BY u.id LIMIT 500) x;
        EXIT WHEN v_users IS NULL;
        v_after := v_users[cardinality(v_users)];
        SELECT array_agg(d.user_id ORDER BY d.user_id, d.local_date), array_agg(d.local_date ORDER BY d.user_id, d.local_date)
        INTO v_users, v_dates
        FROM (SELECT DISTINCT u.id AS user_id, x.local_date
              FROM ootd.users u
              CROSS JOIN LATERAL (VALUES ((coalesce(p_at, now()) AT TIME ZONE u.timezone)::date), (p_day)) AS x(local_date)
              WHERE u.id = ANY (v_users) AND x.local_date IS NOT NULL) d;
        DELETE FROM ootd.served_feeds f               -- the users' other dates
        WHERE f.user_id = ANY (v_users)
          AND NOT EXISTS (SELECT 1 FROM unnest(v_users, v_dates) AS d(user_id, local_date)
                          WHERE d.user_id = f.user_id AND d.local_date = f.local_date);
        PERFORM ootd._materialize(v_users, v_dates);
        COMMIT;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE ootd.refresh_feeds(timestamptz, date, integer, integer) IS
    'Write every user''s served feed for the local date at p_at and for p_day (a part of the users: id % parts = part); commits as it goes.';

-- ootd.served_feeds_status(): how many served rows are current (served by
-- ootd.feed) and how many stale (ranked live until the next refresh).
CREATE FUNCTION ootd.served_feeds_status(OUT version bigint, OUT changed_at timestamptz, OUT users bigint,
                                         OUT current_rows bigint, OUT stale_rows bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT s.version, s.changed_at INTO version, changed_at FROM ootd.serving_inputs s;
    SELECT count(DISTINCT f.user_id), count(*) FILTER (WHERE f.inputs_version = version),
           count(*) FILTER (WHERE f.inputs_version <> version)
    INTO users, current_rows, stale_rows
    FROM ootd.served_feeds f;
END
$$;
COMMENT ON FUNCTION ootd.served_feeds_status() IS
    'The served feeds: the inputs version, when it last changed, users with rows, current and stale rows.';

-- ----------------------------------------------------------------- triggers --
-- ootd._users_changed(): the users statement trigger (UPDATE, with the new
-- rows): every changed user's served rows are computed again in the same
-- transaction (a like changes the user's row through ootd._learn, so likes,
-- unlikes, ootd.put_user and direct updates all pass here).  SECURITY
-- DEFINER: whoever may change a user, their served rows follow.
CREATE FUNCTION ootd._users_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_users bigint[];
BEGIN
    IF NOT ootd._materializing() THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(DISTINCT c.id ORDER BY c.id) INTO v_users FROM changed c;
    PERFORM ootd._rematerialize(v_users);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._users_changed() IS
    'Private: the users trigger: compute the changed users'' served rows again, in the same transaction.';

CREATE TRIGGER users_rematerialize AFTER UPDATE ON ootd.users
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ootd._users_changed();

-- The global inputs (the experiments' tables, created later, carry theirs in
-- 07_experiments.sql).
CREATE CONSTRAINT TRIGGER scoring_weights_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.scoring_weights
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE TRIGGER scoring_weights_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.scoring_weights
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE CONSTRAINT TRIGGER pools_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.pools
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE TRIGGER pools_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.pools
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE CONSTRAINT TRIGGER outfits_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.outfits
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE TRIGGER outfits_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.outfits
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE CONSTRAINT TRIGGER weather_daily_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.weather_daily
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE TRIGGER weather_daily_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.weather_daily
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE CONSTRAINT TRIGGER archetypes_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.archetypes
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE TRIGGER archetypes_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.archetypes
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE CONSTRAINT TRIGGER weather_conditions_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.weather_conditions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE TRIGGER weather_conditions_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.weather_conditions
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE CONSTRAINT TRIGGER categories_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.categories
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE TRIGGER categories_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.categories
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE CONSTRAINT TRIGGER colors_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.colors
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed();
CREATE TRIGGER colors_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.colors
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed();
