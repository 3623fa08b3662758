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
-- ootd._materialize(user, local date, limit): compute and store the user's
-- rows for a local date, one per priority daypart (ootd._priority_daypart
-- decides which local hours have which; each is ranked by ootd._rank at its
-- first hour: the ranking depends on the local time only through the date,
-- the priority daypart and the headline's occasion, so the profile and pool,
-- the date's, are read once).  The headline is the
-- ranking's (ootd._headline of the served pool's weather, the items'
-- archetype, ootd._occasion, the city) for each local hour, kept once per
-- run of equal hours.  The version is read first: an input change committing
-- while this runs makes the rows stale, never wrong.  Not written (the feed
-- ranks live): a date whose local day is not 24 hours long (a daylight-saving
-- change: some local times are missing or repeated), a user with no pool at
-- all or nothing served.  Returns the rows written.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._materialize(p_user_id bigint, p_local_date date, p_limit integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_version   bigint;
    v_timezone  text;
    v_written   integer := 0;
    v_priority  text;
    v_first     integer;
    v_last      integer;
    v_adjective text;
    a           record;
    x           ootd.serving_context;
    r           record;
BEGIN
    SELECT s.version INTO v_version FROM ootd.serving_inputs s;
    SELECT u.timezone INTO v_timezone FROM ootd.users u WHERE u.id = p_user_id;
    DELETE FROM ootd.served_feeds f WHERE f.user_id = p_user_id AND f.local_date = p_local_date;
    IF v_timezone IS NULL
       OR ((p_local_date + 1)::timestamp AT TIME ZONE v_timezone) - (p_local_date::timestamp AT TIME ZONE v_timezone)
          <> interval '24 hours' THEN
        RETURN 0;
    END IF;
    a := ootd._assignment(p_user_id);
    FOREACH v_priority IN ARRAY ARRAY['Daytime', 'NightOut'] LOOP
        SELECT min(h), max(h) INTO v_first, v_last
        FROM generate_series(0, 23) h
        WHERE ootd._priority_daypart(p_local_date + make_interval(hours => h)) = v_priority;
        CONTINUE WHEN v_first IS NULL;
        IF x.user_id IS NULL THEN      -- the profile and pool are the date's: read once
            SELECT * INTO x FROM ootd._serving_context(p_user_id, p_local_date::timestamp AT TIME ZONE v_timezone);
            EXIT WHEN x.user_id IS NULL;
        END IF;
        x.local := p_local_date + make_interval(hours => v_first);
        x.priority_daypart := ootd._priority_daypart(x.local);
        SELECT min(k.relaxed_rules) AS relaxed_rules, array_agg(k.outfit_id ORDER BY k.rank) AS outfit_ids,
               array_agg(k.title ORDER BY k.rank) AS titles, array_agg(k.category ORDER BY k.rank) AS categories,
               array_agg(k.color ORDER BY k.rank) AS colors, array_agg(k.daypart ORDER BY k.rank) AS dayparts,
               array_agg(k.score ORDER BY k.rank) AS scores, array_agg(k.drawn_from ORDER BY k.rank) AS drawn_from
        INTO r
        FROM ootd._rank(x.user_id, x.dna, x.rules, x.taste, x.liked, x.local, x.local_date, x.priority_daypart,
                        x.pool_date, x.cluster_id, x.city, x.weather_adjective, a.weights, p_limit, a.variant) k
        WHERE k.rank <= p_limit;
        CONTINUE WHEN r.outfit_ids IS NULL;
        v_adjective := ootd._served_archetype_adjective(x.pool_date, r.drawn_from);
        INSERT INTO ootd.served_feeds (user_id, local_date, priority_daypart, feed_limit, inputs_version, valid_from,
                                       valid_until, cluster_id, variant, relaxed_rules, outfit_ids, titles,
                                       categories, colors, dayparts, scores, headlines, headline_from)
        SELECT p_user_id, p_local_date, v_priority, p_limit, v_version,
               (p_local_date + make_interval(hours => v_first)) AT TIME ZONE v_timezone,
               (p_local_date + make_interval(hours => v_last + 1)) AT TIME ZONE v_timezone,
               x.cluster_id, a.variant, r.relaxed_rules, r.outfit_ids, r.titles, r.categories, r.colors,
               r.dayparts, r.scores, array_agg(h.headline ORDER BY h.hour),
               array_agg((p_local_date + make_interval(hours => h.hour)) AT TIME ZONE v_timezone ORDER BY h.hour)
        FROM (SELECT q.hour, q.headline, lag(q.headline) OVER (ORDER BY q.hour) AS before
              FROM (SELECT g.hour,
                           ootd._headline(x.weather_adjective, v_adjective,
                                          ootd._occasion(p_local_date + make_interval(hours => g.hour), r.dayparts),
                                          x.city) AS headline
                    FROM generate_series(v_first, v_last) AS g(hour)) q) h
        WHERE h.before IS DISTINCT FROM h.headline;
        v_written := v_written + 1;
    END LOOP;
    RETURN v_written;
END
$$;
COMMENT ON FUNCTION ootd._materialize(bigint, date, integer) IS
    'Private: compute and store a user''s served rows for a local date (one per priority daypart) with ootd._rank.';

-- ootd._rematerialize(users): the users whose rows must follow a change of
-- their own inputs: each local date they have rows for is computed again,
-- and their local date now (a new time zone may have moved it), in user id
-- order.  Users without rows get none (the nightly writes them).
CREATE FUNCTION ootd._rematerialize(p_users bigint[])
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_written integer := 0;
    r         record;
BEGIN
    FOR r IN SELECT f.user_id, f.local_date
             FROM ootd.served_feeds f
             WHERE f.user_id = ANY (p_users)
             UNION
             SELECT u.id, (now() AT TIME ZONE u.timezone)::date
             FROM ootd.users u
             WHERE u.id = ANY (p_users) AND EXISTS (SELECT 1 FROM ootd.served_feeds f WHERE f.user_id = u.id)
             ORDER BY 1, 2 LOOP
        v_written := v_written + ootd._materialize(r.user_id, r.local_date);
    END LOOP;
    RETURN v_written;
END
$$;
COMMENT ON FUNCTION ootd._rematerialize(bigint[]) IS
    'Private: compute again every served row of these users, and their local date now (after a change of their profile or likes).';

-- ootd.refresh_feeds(at, day, part, parts): write every user's feed for the
-- local date at `at` and for `day` (the nightly's pool date; NULL: only the
-- first), replacing the user's other rows; users whose id % parts = part
-- (run parts in parallel sessions).  Commits every 500 users (CALL it
-- outside a transaction block), so a long run holds no lock for long and a
-- crash keeps what was written.  Returns nothing; rows written are in
-- ootd.served_feeds_status.  Run by the nightly and `ootd feeds refresh`.
CREATE PROCEDURE ootd.refresh_feeds(p_at timestamptz DEFAULT now(), p_day date DEFAULT NULL,
                                    p_part integer DEFAULT 0, p_parts integer DEFAULT 1)
LANGUAGE plpgsql                       -- no SET clause: a procedure with one cannot COMMIT
AS $$
DECLARE
    u      record;
    v_done integer := 0;
BEGIN
    IF p_parts IS NULL OR p_parts < 1 OR p_part IS NULL OR p_part < 0 OR p_part >= p_parts THEN
        RAISE EXCEPTION 'part must be in 0 .. parts - 1 and parts >= 1, got part % of %',
            coalesce(p_part::text, 'NULL'), coalesce(p_parts::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT ootd._materializing() THEN
        RETURN;
    END IF;
    FOR u IN SELECT s.id, s.local_date
             FROM (SELECT x.id, (coalesce(p_at, now()) AT TIME ZONE x.timezone)::date AS local_date
                   FROM ootd.users x WHERE x.id % p_parts = p_part) s
             ORDER BY s.id LOOP
        DELETE FROM ootd.served_feeds f
        WHERE f.user_id = u.id AND f.local_date <> u.local_date AND f.local_date IS DISTINCT FROM p_day;
        PERFORM ootd._materialize(u.id, u.local_date);
        IF p_day IS NOT NULL AND p_day <> u.local_date THEN
            PERFORM ootd._materialize(u.id, p_day);
        END IF;
        v_done := v_done + 1;
        IF v_done % 500 = 0 THEN
            COMMIT;
        END IF;
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
