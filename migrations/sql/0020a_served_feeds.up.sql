-- =============================================================================
-- Revision 0020, part a (up): served feeds (frozen; issue 28)
-- Each user's ranked feed per local date, computed ahead by the writers of
-- its inputs (the nightly, the users trigger, `ootd feeds refresh`) and read
-- by ootd.feed with one index probe while its inputs version is current;
-- ranked live otherwise.  The headline's archetype gets one home
-- (ootd._served_archetype_adjective), used by ootd._rank and the served rows.
-- A database upgraded to this revision has no served rows until its next
-- nightly or `ootd feeds refresh`: its feeds are ranked live until then.
-- On a Citus coordinator nothing is served ahead (ootd._materializing): the
-- triggers are not created there (each goes through its own EXECUTE, a
-- worker refusing a text of several commands), and db/citus.sql places the
-- two tables.
-- =============================================================================
SET ROLE ootd_owner;

-- ootd._served_archetype_adjective(pool date, drawn from): the adjective of
-- the archetype the items shown were drawn from, as the headline names it:
-- ootd._served_archetype over the archetypes of the pools (of that date)
-- they came from, in rank order; NULL when none is shared by more than half.
-- The ranking's headline and the served feeds (06_serving_ahead.sql) use it.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._served_archetype_adjective(p_pool_date date, p_drawn_from text[])
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (SELECT a.adjective
            FROM ootd.archetypes a
            WHERE a.name = ootd._served_archetype(ARRAY(
                      SELECT p.archetype
                      FROM unnest(p_drawn_from) WITH ORDINALITY AS d(cluster_id, n)
                      LEFT JOIN ootd.pools p ON p.pool_date = p_pool_date AND p.cluster_id = d.cluster_id
                      ORDER BY d.n)));
END
$$;
COMMENT ON FUNCTION ootd._served_archetype_adjective(date, text[]) IS
    'Private: the adjective of the archetype more than half of the items shown were drawn from (their pools''), else NULL.';

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
    user_id          bigint NOT NULL,
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

-- The key to ootd.users.  On a distributed schema (Citus) a local table cannot
-- reference the distributed ootd.users: db/citus.sql co-locates the table
-- with it first and adds the key then (as for ootd_truth.users).
DO $key$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus') THEN
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = 'ootd.users'::regclass) THEN
            RETURN;            -- (nested: pg_dist_partition exists only with citus)
        END IF;
    END IF;
    ALTER TABLE ootd.served_feeds ADD CONSTRAINT served_feeds_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES ootd.users (id) ON DELETE CASCADE;
END
$key$;

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

DO $ddl$
BEGIN
    IF ootd._materializing() THEN   -- (on Citus nothing is served ahead: no trigger)
        EXECUTE $sql$CREATE TRIGGER users_rematerialize AFTER UPDATE ON ootd.users
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ootd._users_changed()$sql$;
    END IF;
END
$ddl$;

-- The global inputs (the experiments' tables, created later, carry theirs in
-- 07_experiments.sql).
DO $ddl$
BEGIN
    IF ootd._materializing() THEN   -- (on Citus nothing is served ahead: no trigger)
        EXECUTE $sql$CREATE CONSTRAINT TRIGGER scoring_weights_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.scoring_weights
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE TRIGGER scoring_weights_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.scoring_weights
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE CONSTRAINT TRIGGER pools_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.pools
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE TRIGGER pools_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.pools
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE CONSTRAINT TRIGGER outfits_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.outfits
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE TRIGGER outfits_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.outfits
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE CONSTRAINT TRIGGER weather_daily_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.weather_daily
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE TRIGGER weather_daily_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.weather_daily
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE CONSTRAINT TRIGGER archetypes_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.archetypes
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE TRIGGER archetypes_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.archetypes
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE CONSTRAINT TRIGGER weather_conditions_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.weather_conditions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE TRIGGER weather_conditions_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.weather_conditions
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE CONSTRAINT TRIGGER categories_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.categories
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE TRIGGER categories_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.categories
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE CONSTRAINT TRIGGER colors_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.colors
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE TRIGGER colors_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.colors
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
    END IF;
END
$ddl$;

-- Which experiment runs and its variants' shares and weights decide every
-- feed: a change makes every served feed stale (06_serving_ahead.sql).
DO $ddl$
BEGIN
    IF ootd._materializing() THEN   -- (on Citus nothing is served ahead: no trigger)
        EXECUTE $sql$CREATE CONSTRAINT TRIGGER experiments_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.experiments
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE TRIGGER experiments_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.experiments
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE CONSTRAINT TRIGGER experiment_variants_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON ootd.experiment_variants
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
        EXECUTE $sql$CREATE TRIGGER experiment_variants_inputs_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ootd.experiment_variants
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._serving_inputs_changed()$sql$;
    END IF;
END
$ddl$;

-- ootd._pool_rows(pool date, cluster, priority daypart, neighbours): the
-- candidates: every outfit of the served pool and, with neighbours, the
-- priority daypart's outfits of the other pools of that date and weather (the
-- user's taste may fit them better than their own cluster's; their LLM calls
-- are made anyway).  Each pool is read from the UNLOGGED cache when it holds
-- it, else from durable ootd.outfits (after a crash; always on a hot
-- standby, which cannot read UNLOGGED tables: this is PL/pgSQL so that a
-- standby never even plans the cache query).
-- Each pool is one index probe (equality on the key, a lateral probe per
-- neighbour), in a generic plan: a custom plan of this query cost more to make
-- on every call (about 0.5 ms) than the probes it chose.
CREATE OR REPLACE FUNCTION ootd._pool_rows(p_pool_date date, p_cluster_id text, p_priority text, p_neighbours boolean)
RETURNS SETOF ootd._candidate
LANGUAGE plpgsql STABLE ROWS 110
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_neighbours text[] := '{}';
BEGIN
    IF p_neighbours THEN
        v_neighbours := ARRAY(
            SELECT q.cluster_id
            FROM ootd.pools p JOIN ootd.pools q ON q.pool_date = p.pool_date AND q.weather = p.weather
            WHERE p.pool_date = p_pool_date AND p.cluster_id = p_cluster_id AND q.cluster_id <> p.cluster_id
            ORDER BY q.cluster_id);
    END IF;
    IF pg_is_in_recovery() THEN
        RETURN QUERY
        SELECT o.id, o.daypart, o.title, o.category, o.color, o.embedding, 'durable', o.cluster_id
        FROM ootd.outfits o
        WHERE o.pool_date = p_pool_date AND o.cluster_id = p_cluster_id
        UNION ALL
        SELECT o.*
        FROM unnest(v_neighbours) AS n(cluster_id)
        CROSS JOIN LATERAL (SELECT o.id, o.daypart, o.title, o.category, o.color, o.embedding, 'durable', o.cluster_id
                            FROM ootd.outfits o
                            WHERE o.pool_date = p_pool_date AND o.cluster_id = n.cluster_id AND o.daypart = p_priority
                            OFFSET 0) o;
        RETURN;
    END IF;
    RETURN QUERY
    WITH cached AS MATERIALIZED (
        SELECT c.outfit_id, c.daypart, c.title, c.category, c.color, c.embedding, 'cache'::text, c.cluster_id
        FROM ootd.pool_cache c
        WHERE c.pool_date = p_pool_date AND c.cluster_id = p_cluster_id
        UNION ALL
        SELECT c.*
        FROM unnest(v_neighbours) AS n(cluster_id)
        CROSS JOIN LATERAL (SELECT c.outfit_id, c.daypart, c.title, c.category, c.color, c.embedding, 'cache'::text,
                                   c.cluster_id
                            FROM ootd.pool_cache c
                            WHERE c.pool_date = p_pool_date AND c.cluster_id = n.cluster_id AND c.daypart = p_priority
                            OFFSET 0) c
    )
    SELECT * FROM cached
    UNION ALL
    SELECT o.id, o.daypart, o.title, o.category, o.color, o.embedding, 'durable', o.cluster_id
    FROM ootd.outfits o
    WHERE o.pool_date = p_pool_date AND o.cluster_id = p_cluster_id
      AND NOT EXISTS (SELECT 1 FROM cached k WHERE k.cluster_id = p_cluster_id)
    UNION ALL
    SELECT o.*
    FROM unnest(v_neighbours) AS n(cluster_id)
    CROSS JOIN LATERAL (SELECT o.id, o.daypart, o.title, o.category, o.color, o.embedding, 'durable', o.cluster_id
                        FROM ootd.outfits o
                        WHERE o.pool_date = p_pool_date AND o.cluster_id = n.cluster_id AND o.daypart = p_priority
                        OFFSET 0) o
    WHERE NOT EXISTS (SELECT 1 FROM cached k WHERE k.cluster_id = n.cluster_id);
END
$$;
COMMENT ON FUNCTION ootd._pool_rows(date, text, text, boolean) IS
    'Private: the served pool''s outfits and its same-weather neighbours'' priority-daypart ones, each pool from the cache, else from durable ootd.outfits.';

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
--     first p_limit served outfits were drawn from
--     (ootd._served_archetype_adjective: more than half of them; else none), their occasion (ootd._occasion)
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
    ), headline AS (
        SELECT ootd._headline(p_weather_adjective,
                              ootd._served_archetype_adjective(p_pool_date, array_agg(r.drawn_from ORDER BY r.rank)),
                              ootd._occasion(p_local, array_agg(r.daypart ORDER BY r.rank)), p_city) AS text
        FROM ranked r
        WHERE r.rank <= p_limit
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

-- ootd.feed(user, at, limit): the user's feed, p_limit outfits (1..20), zero
-- LLM calls: the served rows of ootd._ranked (see its header for the steps).
-- First the user's served row (ootd._served, 06_serving_ahead.sql: the same
-- ranking computed ahead, one index probe), when it is current; else ranked
-- live.  variant: the user's variant of the running experiment (NULL when
-- none runs; docs/experiments.md).  A pure read: it never writes, not even
-- a missing row.  Errors: unknown user P0002; p_limit outside 1..20 22023.
-- With no pools at all the result is empty.
CREATE OR REPLACE FUNCTION ootd.feed(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               score double precision, headline text, cluster_id text, relaxed_rules text[], variant text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limit integer := ootd._check_limit(p_limit);   -- an expression, not a query: the fast path stays one query
    v_at    timestamptz := coalesce(p_at, now());
BEGIN
    RETURN QUERY SELECT * FROM ootd._served(p_user_id, v_at, v_limit);
    IF FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT r.rank, r.outfit_id, r.title, r.category, r.color, r.daypart, r.score, r.headline, r.cluster_id,
           r.relaxed_rules, r.variant
    FROM ootd._ranked(p_user_id, v_at, v_limit) r
    WHERE r.rank <= v_limit
    ORDER BY r.rank;
    IF NOT FOUND THEN
        PERFORM ootd._check_user(p_user_id);   -- no rows: an unknown user (P0002), or no pool at all
    END IF;
END
$$;
COMMENT ON FUNCTION ootd.feed(bigint, timestamptz, integer) IS
    'The user''s Outfit-of-the-Day feed at a moment: ranked outfits, headline, cluster, relaxed veto rules, experiment variant; a pure read.';

GRANT EXECUTE ON FUNCTION ootd.served_feeds_status() TO ootd_analyst;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;

RESET ROLE;
