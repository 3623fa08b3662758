-- =============================================================================
-- Revision 0003: serving (frozen)
-- ootd.feed / ootd.feed_explain, cache rehydration, analysts' views.
-- =============================================================================
SET ROLE ootd_owner;

-- ---------------------------------------------------------------- tables ----
CREATE INDEX pools_archetype_weather_date_idx ON ootd.pools (archetype, weather, pool_date);
CREATE INDEX pools_archetype_date_idx ON ootd.pools (archetype, pool_date);
CREATE INDEX pools_date_idx ON ootd.pools (pool_date);
CREATE INDEX weather_daily_city_day_idx ON ootd.weather_daily (city, day);

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

-- Memoized feeds: what ootd.feed served a user for a local date, priority
-- daypart and limit.  Makes a repeat request one indexed read, keeps the day's
-- answer stable, and tells tomorrow's ranking what was served today (the
-- served_decay).  UNLOGGED like the cache: a crash empties it and feeds are
-- recomputed (identically, except that yesterday's served_decay is forgotten).
CREATE UNLOGGED TABLE ootd.feed_memo (
    user_id       bigint NOT NULL,
    local_date    date NOT NULL,
    priority      text NOT NULL,
    row_limit     integer NOT NULL,
    epoch         bigint NOT NULL,
    outfit_ids    bigint[] NOT NULL,
    titles        text[] NOT NULL,
    categories    text[] NOT NULL,
    colors        text[] NOT NULL,
    dayparts      text[] NOT NULL,
    scores        double precision[] NOT NULL,
    headline      text NOT NULL,
    cluster_id    text NOT NULL,
    relaxed_rules text[] NOT NULL,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, local_date, priority, row_limit)
);
COMMENT ON TABLE ootd.feed_memo IS 'UNLOGGED memo of served feeds per user, local date, priority daypart and limit.';

-- ------------------------------------------------------------- functions ----

-- ootd._daypart_word(hour): the headline's word for a local hour.
CREATE FUNCTION ootd._daypart_word(p_hour integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_hour BETWEEN 5 AND 11 THEN 'morning'
                WHEN p_hour BETWEEN 12 AND 16 THEN 'afternoon'
                WHEN p_hour BETWEEN 17 AND 20 THEN 'evening'
                ELSE 'night' END
$$;
COMMENT ON FUNCTION ootd._daypart_word(integer) IS 'Private: morning (5-11), afternoon (12-16), evening (17-20) or night.';

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

-- ootd._forget_feeds(): trigger over a transition table `changed` holding a
-- user_id column; marks those users' memoized feeds stale (epoch 0) but keeps
-- them as the record of what was served.
CREATE FUNCTION ootd._forget_feeds()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_TABLE_NAME = 'users' THEN
        UPDATE ootd.feed_memo m SET epoch = 0 WHERE m.user_id IN (SELECT c.id FROM changed c) AND m.epoch <> 0;
    ELSE
        UPDATE ootd.feed_memo m SET epoch = 0 WHERE m.user_id IN (SELECT c.user_id FROM changed c) AND m.epoch <> 0;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._forget_feeds() IS 'Private trigger: a user''s profile or likes changed, so their memoized feeds are stale.';

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
    SELECT array_agg(DISTINCT x.id) INTO v_served          -- what was served yesterday
    FROM ootd.feed_memo m, unnest(m.outfit_ids) AS x(id)
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

-- ootd.feed(user, at, limit): the user's feed, p_limit outfits (1..20), zero
-- LLM calls.  A repeat request for the same local date, priority daypart and
-- limit is one indexed read of ootd.feed_memo; otherwise ootd.feed_explain
-- ranks the pool (see its header for the steps) and, where the server accepts
-- writes, the answer is memoized.  Same answer all local day.
CREATE FUNCTION ootd.feed(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               score double precision, headline text, cluster_id text, relaxed_rules text[])
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_at      timestamptz := coalesce(p_at, now());
    v_epoch   bigint;
    v_tz      text;
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
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 20 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 20, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- fast path: the memoized answer of this local date and daypart
    RETURN QUERY
    SELECT x.ord::integer, x.oid, x.title, x.category, x.color, x.daypart, x.score,
           regexp_replace(m.headline, ' look for your [a-z]+ in ', ' look for your '
                          || ootd._daypart_word(extract(hour FROM v_at AT TIME ZONE u.timezone)::integer) || ' in '),
           m.cluster_id, m.relaxed_rules
    FROM ootd.users u
    JOIN ootd.feed_memo m
      ON m.user_id = u.id
     AND m.local_date = (v_at AT TIME ZONE u.timezone)::date
     AND m.priority = CASE WHEN (v_at AT TIME ZONE u.timezone)::time >= time '15:00' THEN 'NightOut' ELSE 'Daytime' END
     AND m.row_limit = p_limit
     AND m.epoch = (SELECT s.epoch FROM ootd.serving_state s)
    CROSS JOIN LATERAL unnest(m.outfit_ids, m.titles, m.categories, m.colors, m.dayparts, m.scores)
         WITH ORDINALITY AS x(oid, title, category, color, daypart, score, ord)
    WHERE u.id = p_user_id
    ORDER BY x.ord;
    IF FOUND THEN
        RETURN;
    END IF;

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
        IF pg_current_xact_id_if_assigned() IS NULL THEN
            -- The memo is a disposable cache: when it is this transaction's only
            -- write, commit it without waiting for a WAL flush.
            PERFORM set_config('synchronous_commit', 'off', true);
        END IF;
        SELECT u.timezone INTO v_tz FROM ootd.users u WHERE u.id = p_user_id;
        v_local := v_at AT TIME ZONE v_tz;
        INSERT INTO ootd.feed_memo AS m (user_id, local_date, priority, row_limit, epoch, outfit_ids, titles,
                                         categories, colors, dayparts, scores, headline, cluster_id, relaxed_rules)
        VALUES (p_user_id, v_local::date,
                CASE WHEN v_local::time >= time '15:00' THEN 'NightOut' ELSE 'Daytime' END,
                p_limit, v_epoch, v_ids, v_titles, v_cats, v_colors, v_parts, v_scores, v_head, v_cluster, v_relaxed)
        ON CONFLICT (user_id, local_date, priority, row_limit) DO UPDATE
            SET epoch = excluded.epoch, outfit_ids = excluded.outfit_ids, titles = excluded.titles,
                categories = excluded.categories, colors = excluded.colors, dayparts = excluded.dayparts,
                scores = excluded.scores, headline = excluded.headline, cluster_id = excluded.cluster_id,
                relaxed_rules = excluded.relaxed_rules, computed_at = now();
    END IF;

    RETURN QUERY
    SELECT x.ord::integer, x.oid, x.title, x.category, x.color, x.daypart, x.score, v_head, v_cluster, v_relaxed
    FROM unnest(v_ids, v_titles, v_cats, v_colors, v_parts, v_scores)
         WITH ORDINALITY AS x(oid, title, category, color, daypart, score, ord)
    ORDER BY x.ord;
END
$$;
COMMENT ON FUNCTION ootd.feed(bigint, timestamptz, integer) IS
    'The user''s Outfit-of-the-Day feed at a moment: ranked outfits, headline, cluster, relaxed veto rules.';

-- ootd.rehydrate_cache(days): after an unclean shutdown (crash recovery
-- empties UNLOGGED tables) copy the latest days of durable pools back into
-- the cache.  Idempotent; returns rows added.  Feeds never need it to be
-- correct, only to be served from the cache.
CREATE FUNCTION ootd.rehydrate_cache(p_days integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows integer;
BEGIN
    INSERT INTO ootd.pool_cache (pool_date, cluster_id, outfit_id, slot, daypart, title, category, color,
                                 vibe, trend, dare, embedding)
    SELECT o.pool_date, o.cluster_id, o.id, o.slot, o.daypart, o.title, o.category, o.color,
           o.vibe, o.trend, o.dare, o.embedding
    FROM ootd.outfits o
    WHERE o.pool_date > (SELECT max(p.pool_date) FROM ootd.pools p) - p_days
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION ootd.rehydrate_cache(integer) IS
    'Refill ootd.pool_cache with the last p_days days of durable pools (after a crash emptied it); returns rows added.';

-- ----------------------------------------------------------------- views ----
CREATE VIEW ootd.cluster_overview AS
SELECT p.pool_date, p.cluster_id, p.archetype, p.weather, p.members,
       (SELECT count(*) FROM ootd.outfits o WHERE o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id) AS pool_size,
       p.generated_at, p.provider, p.model
FROM ootd.pools p;
COMMENT ON VIEW ootd.cluster_overview IS 'Each generated pool: cluster, members, pool size, when and by which model.';

CREATE VIEW ootd.cache_health AS
SELECT d.pool_date,
       d.durable_rows,
       coalesce(c.cache_rows, 0)                  AS cache_rows,
       coalesce(c.cache_rows, 0) = d.durable_rows AS complete,
       c.last_refresh
FROM (SELECT pool_date, count(*) AS durable_rows FROM ootd.outfits GROUP BY pool_date) d
LEFT JOIN (SELECT pool_date, count(*) AS cache_rows, max(cached_at) AS last_refresh
           FROM ootd.pool_cache GROUP BY pool_date) c ON c.pool_date = d.pool_date;
COMMENT ON VIEW ootd.cache_health IS 'Per pool date: durable outfit rows vs cached rows, and the last cache refresh.';

-- -------------------------------------------------------------- triggers ----
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
CREATE TRIGGER likes_forget_feeds_insert
    AFTER INSERT ON ootd.likes
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._forget_feeds();
CREATE TRIGGER likes_forget_feeds_delete
    AFTER DELETE ON ootd.likes
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._forget_feeds();

-- ------------------------------------------------------------ privileges ----
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ootd.feed(bigint, timestamptz, integer) TO ootd_api, ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.feed_explain(bigint, timestamptz, integer) TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.rehydrate_cache(integer) TO ootd_batch;
GRANT SELECT ON ootd.cluster_overview, ootd.cache_health TO ootd_analyst;

RESET ROLE;
