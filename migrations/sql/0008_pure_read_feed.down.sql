-- =============================================================================
-- Revision 0008 down: back to 0007's memoized feed (frozen).  The memo tables
-- come back empty (a memo is only a cache); served_decay comes back at its
-- default.
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd.feed(bigint, timestamptz, integer);
DROP FUNCTION ootd.feed_explain(bigint, timestamptz, integer);
DROP FUNCTION ootd._check_user(bigint);
DROP FUNCTION ootd._check_limit(integer);
DROP FUNCTION ootd._ranked(bigint, timestamptz, integer);
DROP FUNCTION ootd._serving_context(bigint, timestamptz);
DROP FUNCTION ootd._pool_rows(date, text);
DROP FUNCTION ootd._relax_vetoes(jsonb, integer);
DROP FUNCTION ootd._jitter(double precision, bigint, bigint, date);
DROP FUNCTION ootd._headline(text, text, integer, text);
DROP FUNCTION ootd._priority_daypart(timestamp);
DROP TYPE ootd._candidate;


-- scoring_weights with served_decay back in its place (before jitter)
CREATE TEMPORARY TABLE scoring_weights_0008 ON COMMIT DROP AS SELECT * FROM ootd.scoring_weights;
DROP TABLE ootd.scoring_weights;
-- One row, tuned by analysts with UPDATE; read by ootd.feed() on every call.
CREATE TABLE ootd.scoring_weights (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    preferred_color    double precision NOT NULL DEFAULT 1.25 CHECK (preferred_color > 0),
    liked_category     double precision NOT NULL DEFAULT 1.20 CHECK (liked_category > 0),
    category_affinity  double precision NOT NULL DEFAULT 0.05 CHECK (category_affinity >= 0),
    cosine             double precision NOT NULL DEFAULT 0.50 CHECK (cosine >= 0),
    daypart_priority   double precision NOT NULL DEFAULT 1.00 CHECK (daypart_priority >= 0),
    liked_decay        double precision NOT NULL DEFAULT 0.50 CHECK (liked_decay BETWEEN 0 AND 1),
    served_decay       double precision NOT NULL DEFAULT 0.80 CHECK (served_decay BETWEEN 0 AND 1),
    jitter             double precision NOT NULL DEFAULT 1e-9 CHECK (jitter BETWEEN 0 AND 1e-6),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ootd.scoring_weights IS 'The feed''s scoring weights (exactly one row); tune with UPDATE, no deploy needed.';
COMMENT ON COLUMN ootd.scoring_weights.preferred_color IS 'Multiplier when the outfit''s color is in style_dna.preferred_colors.';
COMMENT ON COLUMN ootd.scoring_weights.liked_category IS 'Multiplier when the outfit''s category is in style_rules.liked_categories.';
COMMENT ON COLUMN ootd.scoring_weights.category_affinity IS 'Multiplier step per unit of style_dna.category_affinity[category]: 1 + w * ln(1 + affinity).';
COMMENT ON COLUMN ootd.scoring_weights.cosine IS 'Weight of cosine similarity between users.taste and the outfit embedding (added, in [-w, w]).';
COMMENT ON COLUMN ootd.scoring_weights.daypart_priority IS 'Bonus added to outfits of the daypart that has priority at the user''s local time.';
COMMENT ON COLUMN ootd.scoring_weights.liked_decay IS 'Multiplier for outfits the user already liked (1 = no penalty).';
COMMENT ON COLUMN ootd.scoring_weights.served_decay IS 'Multiplier for outfits served to the user on the previous local day (1 = no penalty).';
COMMENT ON COLUMN ootd.scoring_weights.jitter IS 'Scale of the deterministic tie-break hash(user, outfit, local date).';

INSERT INTO ootd.scoring_weights (singleton, preferred_color, liked_category, category_affinity, cosine,
                                  daypart_priority, liked_decay, jitter, updated_at)
SELECT singleton, preferred_color, liked_category, category_affinity, cosine, daypart_priority, liked_decay,
       jitter, updated_at
FROM pg_temp.scoring_weights_0008;

-- One candidate outfit, as read from the cache or from the durable pool.
CREATE TYPE ootd._candidate AS (
    outfit_id bigint,
    daypart   text,
    title     text,
    category  text,
    color     text,
    embedding public.vector(32)
);
COMMENT ON TYPE ootd._candidate IS 'Private: one outfit of the pool being served.';

-- The serving epoch: bumped whenever every memoized feed may be stale (the
-- cache changed, or the weights did).  Memo rows of an older epoch are ignored.
CREATE TABLE ootd.serving_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch     bigint NOT NULL DEFAULT 1
);
COMMENT ON TABLE ootd.serving_state IS 'One row: the serving epoch that validates ootd.feed_memo rows.';
INSERT INTO ootd.serving_state DEFAULT VALUES;

-- Memoized feeds: one row per rank of what ootd.feed served a user for one
-- window of a local date and a limit.  A ranking holds for a priority window
-- (Daytime 00:00-15:00 local, NightOut 15:00-24:00), and is stored once per
-- headline window inside it (night 0-5, morning 5-12, afternoon 12-15 | 15-17,
-- evening 17-21, night 21-24: where ootd._daypart_word changes), with the
-- finished headline and the window's instants valid_from/valid_to, so a repeat
-- request is a single index range read with no time-zone or string work.  The memo keeps the day's answer stable, and tells
-- tomorrow's ranking what was served today (the served_decay); rows older
-- than yesterday are dropped when the user's feed is next computed.  UNLOGGED
-- like the cache: a crash empties it and feeds are recomputed (identically,
-- except that yesterday's served_decay is forgotten).
CREATE UNLOGGED TABLE ootd.feed_memo (
    user_id       bigint NOT NULL,
    row_limit     integer NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz NOT NULL,
    rank          integer NOT NULL,
    local_date    date NOT NULL,
    epoch         bigint NOT NULL,
    outfit_id     bigint NOT NULL,
    title         text NOT NULL,
    category      text NOT NULL,
    color         text NOT NULL,
    daypart       text NOT NULL,
    score         double precision NOT NULL,
    headline      text NOT NULL,
    cluster_id    text NOT NULL,
    relaxed_rules text[] NOT NULL,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, row_limit, valid_from, rank)
);
COMMENT ON TABLE ootd.feed_memo IS 'UNLOGGED memo of served feeds: a row per rank, per user, limit and headline window (valid_from, valid_to).';

-- ootd._bump_serving_epoch(): trigger; every memoized feed becomes stale.
CREATE FUNCTION ootd._bump_serving_epoch()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE ootd.serving_state SET epoch = epoch + 1;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._bump_serving_epoch() IS 'Private trigger: invalidates every memoized feed (cache or weights changed).';

-- ootd._forget_feeds(): statement-level trigger on UPDATE of ootd.users
-- (transition table `changed`); marks those users' memoized feeds stale
-- (epoch 0) but keeps them as the record of what was served.  A like's own
-- UPDATE of users comes through here too: this is where likes forget feeds.
CREATE FUNCTION ootd._forget_feeds()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE ootd.feed_memo m SET epoch = 0 WHERE m.user_id IN (SELECT c.id FROM changed c) AND m.epoch <> 0;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._forget_feeds() IS 'Private trigger: a user''s profile changed, so their memoized feeds are stale.';

-- ootd.feed_explain(user, at, limit): the whole last mile for one user, every
-- candidate of the chosen pool with each score component.  ootd.feed() keeps
-- the rows with a rank.  Steps:
--  1. Local time from the user's IANA zone; from 15:00 local NightOut outfits
--     have priority, before 15:00 Daytime ones (priority = ranked first).
--  2. Pool: the user's cluster (archetype x the city's weather on the local
--     date); else the latest earlier pool of the same archetype and weather;
--     else the same archetype, any weather; else any pool (latest up to the
--     local date, then the earliest after it).  Read from ootd.pool_cache;
--     on a miss (or on a hot standby, where UNLOGGED tables cannot be read)
--     from ootd.outfits, with identical results.
--  3. Hard veto: an outfit whose category is in disliked_categories or whose
--     color is in disliked_colors is dropped.  Cascade: if nothing survives,
--     veto entries are relaxed one at a time, strictest first (the entry that
--     blocks the most outfits of this pool; ties by name), until p_limit
--     outfits (or the whole pool) survive.  relaxed_rules lists them, e.g.
--     {disliked_categories:Dress}.
--  4. Score = preferred_color x liked_category x (1 + category_affinity x
--     ln(1 + affinity)) x liked_decay (already liked) x served_decay (served
--     yesterday, from ootd.feed_memo) + cosine x
--     cos(taste, embedding) + daypart_priority (priority daypart) + jitter;
--     weights from ootd.scoring_weights.
--  5. Tie-break: jitter = scoring_weights.jitter x a hash of (user, outfit,
--     local date) in [-1, 1): stable for the whole local day (no flicker, unlike
--     random()), different for every user.
--  Order: priority daypart first; within it at most two outfits of a category
--  before any third (diversity); then score; then outfit id.
-- Errors: unknown user P0002; p_limit outside 1..20 22023.  With no pools at
-- all the result is empty.
CREATE FUNCTION ootd.feed_explain(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, served_penalty double precision, cosine double precision,
               daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[])
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u            ootd.users;
    v_local      timestamp;
    v_date       date;
    v_hour       integer;
    v_priority   text;
    v_archetype  text;
    v_weather    text;
    v_pool_date  date;
    v_cluster    text;
    v_pool_wx    text;
    v_source     text := 'durable';
    v_candidates ootd._candidate[];
    v_headline   text;
    v_adjectives text;
    v_order      text[];
    v_level      integer := 0;
    v_relaxed    text[] := '{}';
    v_served     bigint[];
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 20 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 20, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO u FROM ootd.users WHERE id = p_user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown user %', coalesce(p_user_id::text, 'NULL')
            USING ERRCODE = 'no_data_found';
    END IF;

    -- 1. local time
    v_local := coalesce(p_at, now()) AT TIME ZONE u.timezone;
    v_date := v_local::date;
    v_hour := extract(hour FROM v_local)::integer;
    v_priority := CASE WHEN v_local::time >= time '15:00' THEN 'NightOut' ELSE 'Daytime' END;
    v_archetype := coalesce(u.style_dna ->> 'archetype', ootd.default_archetype());
    SELECT array_agg(DISTINCT m.outfit_id) INTO v_served    -- what was served yesterday
    FROM ootd.feed_memo m
    WHERE m.user_id = u.id AND m.local_date = v_date - 1;
    SELECT w.condition INTO v_weather
    FROM ootd.weather_daily w WHERE w.city = u.city AND w.day <= v_date
    ORDER BY w.day DESC LIMIT 1;

    -- 2. pool choice (each branch is one index probe; the first that finds wins)
    SELECT s.pool_date, s.cluster_id, s.weather INTO v_pool_date, v_cluster, v_pool_wx
    FROM (
        (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
         WHERE p.archetype = v_archetype AND p.weather = v_weather AND p.pool_date <= v_date
         ORDER BY p.pool_date DESC LIMIT 1)
        UNION ALL
        (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
         WHERE p.archetype = v_archetype AND p.pool_date <= v_date
         ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
        UNION ALL
        (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
         WHERE p.pool_date <= v_date
         ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
        UNION ALL
        (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
         ORDER BY p.pool_date, p.members DESC, p.cluster_id LIMIT 1)
    ) s
    LIMIT 1;
    IF NOT FOUND THEN
        RETURN;  -- no pool exists anywhere yet
    END IF;

    IF NOT pg_is_in_recovery() THEN
        SELECT array_agg(ROW(c.outfit_id, c.daypart, c.title, c.category, c.color, c.embedding)::ootd._candidate)
        INTO v_candidates
        FROM ootd.pool_cache c WHERE c.pool_date = v_pool_date AND c.cluster_id = v_cluster;
        IF v_candidates IS NOT NULL THEN
            v_source := 'cache';
        END IF;
    END IF;
    IF v_candidates IS NULL THEN
        SELECT array_agg(ROW(o.id, o.daypart, o.title, o.category, o.color, o.embedding)::ootd._candidate)
        INTO v_candidates
        FROM ootd.outfits o WHERE o.pool_date = v_pool_date AND o.cluster_id = v_cluster;
    END IF;

    -- 5. headline: "A breezy minimalist look for your afternoon in Torrance"
    SELECT w.adjective || ' ' || a.adjective INTO v_adjectives
    FROM ootd.weather_conditions w, ootd.archetypes a
    WHERE w.name = coalesce(v_weather, v_pool_wx) AND a.name = v_archetype;
    v_headline := CASE WHEN v_adjectives ~* '^[aeiou]' THEN 'An ' ELSE 'A ' END || v_adjectives
                  || ' look for your ' || ootd._daypart_word(v_hour) || ' in ' || u.city;

    -- 3. veto cascade, computed only when the rules leave nothing at all:
    -- v_order lists the veto entries strictest first (most outfits blocked),
    -- and v_level is how many of them must be relaxed to fill the feed.
    IF NOT EXISTS (SELECT 1 FROM unnest(v_candidates) c
                   WHERE NOT coalesce(u.style_rules -> 'disliked_categories' ? c.category, false)
                     AND NOT coalesce(u.style_rules -> 'disliked_colors' ? c.color, false)) THEN
        SELECT array_agg(b.rule ORDER BY b.n DESC, b.rule) INTO v_order
        FROM (SELECT v.rule, count(*) AS n
              FROM unnest(v_candidates) c,
                   unnest(ARRAY['disliked_categories:' || c.category, 'disliked_colors:' || c.color]) AS v(rule)
              WHERE (v.rule LIKE 'disliked_categories:%' AND u.style_rules -> 'disliked_categories' ? c.category)
                 OR (v.rule LIKE 'disliked_colors:%' AND u.style_rules -> 'disliked_colors' ? c.color)
              GROUP BY v.rule) b;
        SELECT min(x.level) INTO v_level
        FROM (SELECT l.level, count(*) OVER (ORDER BY l.level) AS served_at_level
              FROM (SELECT greatest(array_position(v_order, 'disliked_categories:' || c.category),
                                    coalesce(array_position(v_order, 'disliked_colors:' || c.color), 0)) AS level
                    FROM unnest(v_candidates) c) l) x
        WHERE x.served_at_level >= least(p_limit, cardinality(v_candidates));
        v_relaxed := coalesce(v_order[1:v_level], '{}');
    END IF;

    RETURN QUERY
    WITH w AS (
        SELECT * FROM ootd.scoring_weights LIMIT 1
    ), scored AS (
        SELECT c.outfit_id, c.title, c.category, c.color, c.daypart,
               array_remove(ARRAY[
                   CASE WHEN u.style_rules -> 'disliked_categories' ? c.category
                        THEN 'disliked_categories:' || c.category END,
                   CASE WHEN u.style_rules -> 'disliked_colors' ? c.color
                        THEN 'disliked_colors:' || c.color END], NULL) AS violations,
               c.daypart = v_priority AS priority,
               CASE WHEN u.style_dna -> 'preferred_colors' ? c.color THEN w.preferred_color ELSE 1 END AS color_boost,
               CASE WHEN u.style_rules -> 'liked_categories' ? c.category THEN w.liked_category ELSE 1 END AS category_boost,
               1 + w.category_affinity * ln(1 + greatest(coalesce(
                   (u.style_dna -> 'category_affinity' ->> c.category)::double precision, 0), 0)) AS affinity_boost,
               CASE WHEN EXISTS (SELECT 1 FROM ootd.likes l WHERE l.user_id = u.id AND l.outfit_id = c.outfit_id)
                    THEN w.liked_decay ELSE 1 END AS liked_penalty,
               CASE WHEN c.outfit_id = ANY (v_served) THEN w.served_decay ELSE 1 END AS served_penalty,
               coalesce(1 - (u.taste OPERATOR(public.<=>) c.embedding), 0) AS cosine,
               CASE WHEN c.daypart = v_priority THEN w.daypart_priority ELSE 0 END AS daypart_bonus,
               w.jitter * (hashint8extended(c.outfit_id, u.id # (v_date - date '2000-01-01'))::double precision
                           / 9223372036854775808.0) AS jitter,
               w.cosine AS cosine_weight
        FROM unnest(v_candidates) c CROSS JOIN w
    ), totals AS (
        SELECT s.*,
               s.violations <@ v_relaxed AS served,
               s.color_boost * s.category_boost * s.affinity_boost * s.liked_penalty * s.served_penalty
               + s.cosine_weight * s.cosine + s.daypart_bonus + s.jitter AS score
        FROM scored s
    ), ordered AS (
        SELECT t.*,
               row_number() OVER (PARTITION BY t.served, t.priority, t.category
                                  ORDER BY t.score DESC, t.outfit_id) AS nth_of_category
        FROM totals t
    )
    SELECT CASE WHEN o.served
                THEN row_number() OVER (ORDER BY o.served DESC, o.priority DESC, (o.nth_of_category > 2),
                                                 o.score DESC, o.outfit_id)::integer END,
           o.outfit_id, o.title, o.category, o.color, o.daypart, o.violations, o.priority,
           o.color_boost, o.category_boost, o.affinity_boost, o.liked_penalty, o.served_penalty, o.cosine,
           o.daypart_bonus,
           o.jitter, o.score, v_headline, v_cluster, v_pool_date, v_source, v_relaxed
    FROM ordered o
    ORDER BY 1 NULLS LAST, o.score DESC, o.outfit_id;
END
$$;
COMMENT ON FUNCTION ootd.feed_explain(bigint, timestamptz, integer) IS
    'Every candidate of the user''s pool with each score component, veto and rank (NULL rank = vetoed); for analysts.';

-- ootd._feed_compute(user, at, limit): ootd.feed's slow path: rank with
-- ootd.feed_explain and, where the server accepts writes, memoize the answer.
CREATE FUNCTION ootd._feed_compute(p_user_id bigint, p_at timestamptz, p_limit integer)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               score double precision, headline text, cluster_id text, relaxed_rules text[])
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_at      timestamptz := p_at;
    v_epoch   bigint;
    v_tz      text;
    v_city    text;
    v_from    timestamptz;
    v_to      timestamptz;
    v_local   timestamp;
    v_ids     bigint[];
    v_titles  text[];
    v_cats    text[];
    v_colors  text[];
    v_parts   text[];
    v_scores  double precision[];
    v_head    text;
    v_cluster text;
    v_relaxed text[];
BEGIN
    -- slow path: rank now (raises P0002 for an unknown user)
    SELECT s.epoch INTO v_epoch FROM ootd.serving_state s;
    SELECT array_agg(e.outfit_id ORDER BY e.rank), array_agg(e.title ORDER BY e.rank),
           array_agg(e.category ORDER BY e.rank), array_agg(e.color ORDER BY e.rank),
           array_agg(e.daypart ORDER BY e.rank), array_agg(e.score ORDER BY e.rank),
           min(e.headline), min(e.cluster_id), min(e.relaxed_rules)
    INTO v_ids, v_titles, v_cats, v_colors, v_parts, v_scores, v_head, v_cluster, v_relaxed
    FROM ootd.feed_explain(p_user_id, v_at, p_limit) e
    WHERE e.rank <= p_limit;
    IF v_ids IS NULL THEN
        RETURN;  -- no pool exists anywhere yet
    END IF;

    IF NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off' THEN
        SELECT u.timezone, u.city INTO v_tz, v_city FROM ootd.users u WHERE u.id = p_user_id;
        v_local := v_at AT TIME ZONE v_tz;
        IF v_local::time >= time '15:00' THEN         -- the NightOut window of the local date
            v_from := (v_local::date + time '15:00') AT TIME ZONE v_tz;
            v_to   := (v_local::date + 1)::timestamp AT TIME ZONE v_tz;
        ELSE                                          -- the Daytime window
            v_from := v_local::date::timestamp AT TIME ZONE v_tz;
            v_to   := (v_local::date + time '15:00') AT TIME ZONE v_tz;
        END IF;
        DELETE FROM ootd.feed_memo m
        WHERE m.user_id = p_user_id
          AND (m.local_date < v_local::date - 1
               OR (m.row_limit = p_limit AND m.valid_from >= v_from AND m.valid_from < v_to));
        -- the ranking, once per headline window of the priority window (hours
        -- where ootd._daypart_word or the priority changes)
        INSERT INTO ootd.feed_memo AS m (user_id, row_limit, valid_from, valid_to, rank, local_date, epoch,
                                         outfit_id, title, category, color, daypart, score, headline,
                                         cluster_id, relaxed_rules)
        SELECT p_user_id, p_limit,
               (v_local::date + make_interval(hours => w.from_hour)) AT TIME ZONE v_tz,
               (v_local::date + make_interval(hours => w.to_hour)) AT TIME ZONE v_tz,
               x.ord, v_local::date, v_epoch, x.oid, x.title, x.category, x.color, x.daypart, x.score,
               split_part(v_head, ' look for your ', 1) || ' look for your '
               || ootd._daypart_word(w.from_hour) || ' in ' || v_city,
               v_cluster, v_relaxed
        FROM (VALUES (0, 5), (5, 12), (12, 15), (15, 17), (17, 21), (21, 24)) AS w(from_hour, to_hour)
        CROSS JOIN unnest(v_ids, v_titles, v_cats, v_colors, v_parts, v_scores)
             WITH ORDINALITY AS x(oid, title, category, color, daypart, score, ord)
        WHERE (w.from_hour >= 15) = (v_local::time >= time '15:00')
        ON CONFLICT ON CONSTRAINT feed_memo_pkey DO UPDATE
            SET valid_to = excluded.valid_to, local_date = excluded.local_date, epoch = excluded.epoch,
                outfit_id = excluded.outfit_id, title = excluded.title, category = excluded.category,
                color = excluded.color, daypart = excluded.daypart, score = excluded.score,
                headline = excluded.headline, cluster_id = excluded.cluster_id,
                relaxed_rules = excluded.relaxed_rules, computed_at = now();
    END IF;

    RETURN QUERY
    SELECT x.ord::integer, x.oid, x.title, x.category, x.color, x.daypart, x.score, v_head, v_cluster, v_relaxed
    FROM unnest(v_ids, v_titles, v_cats, v_colors, v_parts, v_scores)
         WITH ORDINALITY AS x(oid, title, category, color, daypart, score, ord)
    ORDER BY x.ord;
END
$$;
COMMENT ON FUNCTION ootd._feed_compute(bigint, timestamptz, integer) IS
    'Private: ootd.feed''s slow path (rank, then memoize where writable).';

-- ootd.feed(user, at, limit): the user's feed, p_limit outfits (1..20), zero
-- LLM calls.  A repeat request within the same priority window (local date
-- and headline daypart) and limit is one index range read of ootd.feed_memo
-- (STABLE, no write, no time-zone or string work); otherwise
-- ootd._feed_compute ranks the pool with ootd.feed_explain (see its header
-- for the steps) and memoizes the answer.  Same answer all local day.
CREATE FUNCTION ootd.feed(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               score double precision, headline text, cluster_id text, relaxed_rules text[])
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_at timestamptz := coalesce(p_at, now());
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 20 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 20, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    RETURN QUERY
    SELECT m.rank, m.outfit_id, m.title, m.category, m.color, m.daypart, m.score, m.headline,
           m.cluster_id, m.relaxed_rules
    FROM ootd.feed_memo m
    WHERE m.user_id = p_user_id
      AND m.row_limit = p_limit
      AND m.valid_from <= v_at AND v_at < m.valid_to
      AND m.epoch = (SELECT s.epoch FROM ootd.serving_state s)
    ORDER BY m.valid_from, m.rank;   -- one window matches: the primary key's order, no sort
    IF NOT FOUND THEN
        RETURN QUERY SELECT * FROM ootd._feed_compute(p_user_id, v_at, p_limit);
    END IF;
END
$$;
COMMENT ON FUNCTION ootd.feed(bigint, timestamptz, integer) IS
    'The user''s Outfit-of-the-Day feed at a moment: ranked outfits, headline, cluster, relaxed veto rules.';

CREATE TRIGGER pool_cache_bump_epoch_insert
    AFTER INSERT ON ootd.pool_cache
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._bump_serving_epoch();
CREATE TRIGGER pool_cache_bump_epoch_delete
    AFTER DELETE ON ootd.pool_cache
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._bump_serving_epoch();
CREATE TRIGGER scoring_weights_bump_epoch
    AFTER UPDATE ON ootd.scoring_weights
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._bump_serving_epoch();
CREATE TRIGGER users_forget_feeds
    AFTER UPDATE ON ootd.users
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._forget_feeds();

-- ootd._learn_from_likes(): statement-level trigger on ootd.likes, for INSERT
-- and for DELETE (transition table `changed`).  In the same transaction it
-- folds the statement's likes into each user's profile (or takes unliked ones
-- back out); its UPDATE of users goes through the users triggers like any
-- other (validated, memoized feeds forgotten).  One outfit at a time,
-- with n the user's likes before it and W = 1 + n observations (the stated
-- profile counts as one):
--   likes_count          n + 1 (unlike: n - 1)
--   vibe, trend, dare    running means in double precision: (W x old +
--                        outfit's) / (W + 1), and (W x old - outfit's) / (W - 1)
--                        for an unlike, which restores the old value; the
--                        outfit's value (a real) counts with 6 decimals, a
--                        missing mean starts at 0.5, means are stored rounded
--                        to 12 decimals
--   taste, taste_norm    the same running mean of unit embeddings, kept as
--                        direction (taste, unit length; cosine needs nothing
--                        else) and length (taste_norm), so an unlike subtracts
--                        exactly what the like added
--   category_affinity    [category] + 1 (unlike: - 1; a key reaching 0 goes)
--   color_affinity       [color] + 1 (unlike: - 1); the first like seeds it with
--                        ootd._seed_colors(stated preferred_colors), so stated
--                        colors are never forgotten and undoing every like
--                        restores the stated list exactly
--   preferred_colors     the strongest 8 of color_affinity: by strength, then
--                        by the latest like of that color, then by name.  A like
--                        only moves its color up: it goes in front of its
--                        strength group, behind the colors that are stronger,
--                        so the list is updated in place; an unlike recomputes
--                        it from the user's remaining likes.
-- One like (the common statement) is one UPDATE whose SET computes the new
-- profile from the row it updates; every other statement goes through the
-- loop, one user at a time.  Both compute the same values.
-- Lost updates and deadlocks: the single-like UPDATE locks its row and, if a
-- concurrent like of the same user committed first, re-reads the newest
-- version and recomputes (READ COMMITTED); the loop locks each user row FOR
-- NO KEY UPDATE, in user-id order, and computes from that read.  Statements
-- touching several users lock them in the same order, so they cannot
-- deadlock.  (Under REPEATABLE READ a concurrent like of the same user is a
-- 40001 to retry.)
-- Precision: means are float8 rounded to 12 decimals and taste is float4, so
-- undoing likes restores the earlier values up to rounding that grows with
-- the likes in between: means within 1e-11 and taste (each component, and
-- taste_norm) within 1e-5 per like, e.g. 1e-9 and 1e-3 after 100 likes and
-- their unlikes; every other field is restored exactly (tests/test_likes.py).
CREATE OR REPLACE FUNCTION ootd._learn_from_likes()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sign   integer := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
    v_rows   bigint;
    v_user   bigint;
    v_outfit bigint;
    r        record;
    o        ootd.outfits;
    u        ootd.users;
    v_dna    jsonb;
    v_cats   jsonb;
    v_colors jsonb;
    v_list   jsonb;
    v_w      double precision; -- observations behind the running means
    v_vibe   double precision;
    v_trend  double precision;
    v_dare   double precision;
    v_sum    public.vector;    -- W x the running mean of the taste
    v_taste  public.vector;
    v_norm   real;
    v_left   numeric;
BEGIN
    SELECT count(*), min(c.user_id), min(c.outfit_id) INTO v_rows, v_user, v_outfit FROM changed c;
    IF v_rows = 0 THEN
        RETURN NULL;                   -- nothing changed (a repeated like)
    END IF;

    IF v_rows = 1 AND v_sign > 0 THEN
        -- One like: the loop's arithmetic for one outfit, as one statement.
        UPDATE ootd.users p
        SET (style_dna, taste, taste_norm, likes_count, updated_at) = (
            SELECT p.style_dna || jsonb_build_object(
                       'color_affinity',
                           jsonb_set(z.seeded, ARRAY[x.color],
                                     to_jsonb(trim_scale(coalesce((z.seeded ->> x.color)::numeric, 0) + 1))),
                       'preferred_colors',
                           jsonb_insert(coalesce(p.style_dna -> 'preferred_colors', '[]') - x.color,
                                        ARRAY[jsonb_array_length(jsonb_path_query_array(z.seeded, '$.* ? (@ > $s)',
                                                  jsonb_build_object('s', coalesce((z.seeded ->> x.color)::numeric, 0) + 1)))::text],
                                        to_jsonb(x.color)) - 8,
                       'category_affinity',
                           jsonb_set(coalesce(p.style_dna -> 'category_affinity', '{}'), ARRAY[x.category],
                                     to_jsonb(coalesce((p.style_dna -> 'category_affinity' ->> x.category)::numeric, 0) + 1)),
                       'vibe',  round(least(1, greatest(0, (z.w * coalesce((p.style_dna ->> 'vibe')::float8, 0.5)
                                                            + round(x.vibe::float8 * 1e6) / 1e6) / (z.w + 1))) * 1e12) / 1e12,
                       'trend', round(least(1, greatest(0, (z.w * coalesce((p.style_dna ->> 'trend')::float8, 0.5)
                                                            + round(x.trend::float8 * 1e6) / 1e6) / (z.w + 1))) * 1e12) / 1e12,
                       'dare',  round(least(1, greatest(0, (z.w * coalesce((p.style_dna ->> 'dare')::float8, 0.5)
                                                            + round(x.dare::float8 * 1e6) / 1e6) / (z.w + 1))) * 1e12) / 1e12),
                   CASE WHEN public.vector_norm(z.total) > 1e-6 THEN public.l2_normalize(z.total) ELSE p.taste END,
                   CASE WHEN public.vector_norm(z.total) > 1e-6 THEN public.vector_norm(z.total) / (z.w + 1)
                        ELSE p.taste_norm END,
                   p.likes_count + 1,
                   now()
            FROM ootd.outfits x,
                 LATERAL (SELECT 1 + p.likes_count::float8 AS w,
                                 coalesce(p.style_dna -> 'color_affinity',
                                          ootd._seed_colors(p.style_dna -> 'preferred_colors')) AS seeded,
                                 CASE WHEN p.taste IS NULL THEN x.embedding
                                      ELSE p.taste OPERATOR(public.*)
                                           array_fill(((1 + p.likes_count::float8) * p.taste_norm)::real,
                                                      ARRAY[public.vector_dims(p.taste)])::public.vector
                                           OPERATOR(public.+) x.embedding END AS total
                          OFFSET 0) z              -- evaluated once, not once per use
            WHERE x.id = v_outfit)
        WHERE p.id = v_user;
        RETURN NULL;
    END IF;

    FOR r IN
        SELECT c.user_id, array_agg(x ORDER BY c.liked_at, c.outfit_id) AS outfits
        FROM changed c JOIN ootd.outfits x ON x.id = c.outfit_id
        GROUP BY c.user_id
        ORDER BY c.user_id
    LOOP
        SELECT * INTO u FROM ootd.users WHERE id = r.user_id FOR NO KEY UPDATE;
        CONTINUE WHEN NOT FOUND;       -- the user is being deleted (likes cascade)
        v_dna    := u.style_dna;
        v_cats   := coalesce(v_dna -> 'category_affinity', '{}');
        v_list   := coalesce(v_dna -> 'preferred_colors', '[]');
        v_colors := coalesce(v_dna -> 'color_affinity', ootd._seed_colors(v_list));
        v_w      := 1 + u.likes_count;
        v_vibe   := coalesce((v_dna ->> 'vibe')::double precision, 0.5);
        v_trend  := coalesce((v_dna ->> 'trend')::double precision, 0.5);
        v_dare   := coalesce((v_dna ->> 'dare')::double precision, 0.5);
        v_sum    := CASE WHEN u.taste IS NOT NULL THEN
                        u.taste OPERATOR(public.*)
                        array_fill((v_w * u.taste_norm)::real, ARRAY[public.vector_dims(u.taste)])::public.vector END;

        FOREACH o IN ARRAY r.outfits LOOP
            IF v_w + v_sign >= 1 THEN
                v_vibe  := (v_w * v_vibe  + v_sign * (round(o.vibe::double precision * 1e6) / 1e6))  / (v_w + v_sign);
                v_trend := (v_w * v_trend + v_sign * (round(o.trend::double precision * 1e6) / 1e6)) / (v_w + v_sign);
                v_dare  := (v_w * v_dare  + v_sign * (round(o.dare::double precision * 1e6) / 1e6))  / (v_w + v_sign);
                v_sum   := CASE WHEN v_sum IS NULL THEN CASE WHEN v_sign > 0 THEN o.embedding END
                                WHEN v_sign > 0 THEN v_sum OPERATOR(public.+) o.embedding
                                ELSE v_sum OPERATOR(public.-) o.embedding END;
                v_w := v_w + v_sign;
            END IF;
            v_left := coalesce((v_cats ->> o.category)::numeric, 0) + v_sign;
            v_cats := CASE WHEN v_left > 0 THEN jsonb_set(v_cats, ARRAY[o.category], to_jsonb(v_left))
                           ELSE v_cats - o.category END;
            v_left := coalesce((v_colors ->> o.color)::numeric, 0) + v_sign;
            v_colors := CASE WHEN v_left > 0 THEN jsonb_set(v_colors, ARRAY[o.color], to_jsonb(trim_scale(v_left)))
                             ELSE v_colors - o.color END;
            IF v_sign > 0 THEN
                -- the liked color goes behind the colors stronger than it (8 at most)
                v_list := jsonb_insert(v_list - o.color,
                                       ARRAY[jsonb_array_length(jsonb_path_query_array(v_colors, '$.* ? (@ > $s)',
                                                 jsonb_build_object('s', v_left)))::text],
                                       to_jsonb(o.color)) - 8;
            END IF;
        END LOOP;

        IF u.likes_count + v_sign * cardinality(r.outfits) <= 0 THEN
            -- no likes left: back to the stated colors, in stated order
            v_list := (SELECT coalesce(jsonb_agg(e.key ORDER BY e.value::numeric DESC, e.key), '[]')
                       FROM jsonb_each(v_colors) e);
            v_dna := v_dna - 'color_affinity';
        ELSE
            IF v_sign < 0 THEN
                v_list := (SELECT coalesce(jsonb_agg(t.key ORDER BY t.strength DESC, t.last_liked DESC NULLS LAST, t.key), '[]')
                           FROM (SELECT e.key, e.value::numeric AS strength, rl.last_liked
                                 FROM jsonb_each(v_colors) e
                                 LEFT JOIN (SELECT x.color, max(l.liked_at) AS last_liked
                                            FROM ootd.likes l JOIN ootd.outfits x ON x.id = l.outfit_id
                                            WHERE l.user_id = u.id
                                            GROUP BY x.color) rl ON rl.color = e.key
                                 ORDER BY e.value::numeric DESC, rl.last_liked DESC NULLS LAST, e.key
                                 LIMIT 8) t);
            END IF;
            v_dna := v_dna || jsonb_build_object('color_affinity', v_colors);
        END IF;
        v_dna := v_dna || jsonb_build_object(
            'preferred_colors', v_list,
            'category_affinity', v_cats,
            'vibe',  round(least(1, greatest(0, v_vibe))  * 1e12) / 1e12,
            'trend', round(least(1, greatest(0, v_trend)) * 1e12) / 1e12,
            'dare',  round(least(1, greatest(0, v_dare))  * 1e12) / 1e12);
        v_taste := u.taste;
        v_norm  := u.taste_norm;
        IF v_sum IS NOT NULL AND public.vector_norm(v_sum) > 1e-6 THEN
            v_taste := public.l2_normalize(v_sum);
            v_norm  := public.vector_norm(v_sum) / v_w;
        END IF;

        UPDATE ootd.users
        SET style_dna   = v_dna,
            taste       = v_taste,
            taste_norm  = v_norm,
            likes_count = greatest(0, likes_count + v_sign * cardinality(r.outfits)),
            updated_at  = now()
        WHERE id = u.id;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._learn_from_likes() IS
    'Private trigger: folds liked (or unliked) outfits into the user''s style_dna and taste; no lost updates, no deadlocks.';
DROP FUNCTION ootd._fold_likes(bigint, ootd.outfits[], integer);
DROP FUNCTION ootd._rank_colors(bigint, jsonb, integer);
DROP FUNCTION ootd._place_color(jsonb, jsonb, text, numeric);
DROP FUNCTION ootd._stored_mean(double precision);
DROP FUNCTION ootd._mean_step(double precision, double precision, real, integer);

-- ootd.rehydrate_cache(day, days): after an unclean shutdown (crash recovery
-- empties UNLOGGED tables) copy the durable pools of the local dates being
-- served around `day` (day - days .. day + 1) back into the cache.
-- Idempotent, and writes nothing when the cache already holds them (or on a
-- hot standby, which cannot write), so `ootd db start`, `ootd serve` and `ootd nightly` call it every time.
-- Returns rows added.  Feeds never need it to be correct, only to be served
-- from the cache.
CREATE OR REPLACE FUNCTION ootd.rehydrate_cache(p_day date DEFAULT current_date, p_days integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rows integer;
BEGIN
    IF pg_is_in_recovery() OR NOT EXISTS (
           SELECT 1 FROM ootd.outfits o
           WHERE o.pool_date BETWEEN p_day - p_days AND p_day + 1
             AND NOT EXISTS (SELECT 1 FROM ootd.pool_cache c
                             WHERE c.pool_date = o.pool_date AND c.cluster_id = o.cluster_id AND c.outfit_id = o.id)) THEN
        RETURN 0;                      -- a standby, or nothing missing: no write, no cache epoch bump
    END IF;
    INSERT INTO ootd.pool_cache (pool_date, cluster_id, outfit_id, slot, daypart, title, category, color,
                                 vibe, trend, dare, embedding)
    SELECT o.pool_date, o.cluster_id, o.id, o.slot, o.daypart, o.title, o.category, o.color,
           o.vibe, o.trend, o.dare, o.embedding
    FROM ootd.outfits o
    WHERE o.pool_date BETWEEN p_day - p_days AND p_day + 1
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION ootd.rehydrate_cache(date, integer) IS
    'Refill ootd.pool_cache with the durable pools of day - days .. day + 1 (after a crash emptied it); returns rows added, 0 without writing when none is missing.';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;
GRANT SELECT ON ootd.scoring_weights TO ootd_batch;
GRANT EXECUTE ON FUNCTION ootd.feed(bigint, timestamptz, integer) TO ootd_api, ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.feed_explain(bigint, timestamptz, integer) TO ootd_analyst;

RESET ROLE;
