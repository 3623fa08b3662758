-- =============================================================================
-- ootd: serving (ootd.feed, ootd.feed_explain)
-- A pure read: no memo, no write, no per-user state.  The same answer on the
-- first and the hundredth call, in a read-only transaction and on a hot
-- standby (which reads the durable pools: UNLOGGED tables are unreadable
-- during recovery).  Kinds in order: types, helpers, ranking, API, readiness.
-- The weights it scores with: 06_scoring_weights.sql; the simulator's
-- what-if ranking and catalogs: 06_simulator.sql.
-- =============================================================================

-- ------------------------------------------------------------------- types --
-- One candidate outfit, where it was read (cache or durable) and the cluster
-- whose pool it was drawn from.
CREATE TYPE ootd._candidate AS (
    outfit_id  bigint,
    daypart    text,
    title      text,
    category   text,
    color      text,
    embedding  public.vector(32),
    source     text,
    drawn_from text
);
COMMENT ON TYPE ootd._candidate IS
    'Private: one candidate outfit; source is cache or durable, drawn_from the cluster whose pool holds it.';

-- One candidate as the ranking leaves it (a row of ootd._rank, ootd.feed_explain
-- and ootd.simulate): rank (NULL = vetoed), the veto entries it breaks, each
-- score component and the total, the headline, the pool served, where the
-- row was read and the pool it was drawn from, and the experiment variant
-- whose weights scored it (NULL: none runs, or a what-if profile); last,
-- the archetype multiplier (a component added after the others: columns keep
-- their positions).
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
    variant        text,
    archetype_boost double precision
);
COMMENT ON TYPE ootd.ranked_outfit IS
    'A ranked candidate: rank (NULL = vetoed), vetoes, score components and total, headline, pool, source, drawn_from, variant, archetype_boost.';

-- What the ranking needs to know about a profile at an instant (one row of
-- ootd._context): the profile, local time, priority daypart, the pool to
-- serve and what the headline names besides the items (the served pool's
-- weather adjective, the city).
CREATE TYPE ootd.serving_context AS (
    user_id           bigint,
    dna               jsonb,
    rules             jsonb,
    taste             public.vector,
    liked             bigint[],
    local             timestamp,
    local_date        date,
    priority_daypart  text,
    pool_date         date,
    cluster_id        text,
    city              text,
    weather_adjective text
);
COMMENT ON TYPE ootd.serving_context IS
    'A profile at an instant as the ranking sees it: profile, likes, local time, priority daypart, pool, headline parts.';

-- One ranking request (an element of ootd._rank_all's input): a profile at an
-- instant, the weights it is scored with and their experiment variant.
CREATE TYPE ootd._ranking_request AS (
    context ootd.serving_context,
    weights ootd.scoring_weights,
    variant text
);
COMMENT ON TYPE ootd._ranking_request IS
    'Private: a profile at an instant with the weights it is scored with and their variant (ootd._rank_all''s input).';

-- ----------------------------------------------------------------- helpers --
-- ootd._priority_daypart(local): the daypart ranked first at a local time:
-- NightOut from 15:00, Daytime before.  The one home of the 15:00 boundary.
CREATE FUNCTION ootd._priority_daypart(p_local timestamp)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_local::time >= time '15:00' THEN 'NightOut' ELSE 'Daytime' END
$$;
COMMENT ON FUNCTION ootd._priority_daypart(timestamp) IS 'Private: NightOut from 15:00 local time, Daytime before (the one 15:00 boundary).';

-- ootd._occasion(local, dayparts): what the served items are for, as the
-- headline says it, from the dayparts among them: NightOut items are for
-- "tonight"; Daytime items for "the day ahead" before 05:00, "your morning"
-- before 12:00, "your afternoon" before 17:00, else "tomorrow"; both (when
-- vetoes leave the feed mixed) "today and tonight", or from 17:00 "tonight
-- and tomorrow".  So a headline never contradicts its items.
CREATE FUNCTION ootd._occasion(p_local timestamp, p_dayparts text[])
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN 'NightOut' = ANY (p_dayparts) AND 'Daytime' = ANY (p_dayparts) THEN
                    CASE WHEN extract(hour FROM p_local) < 17 THEN 'today and tonight' ELSE 'tonight and tomorrow' END
                WHEN 'NightOut' = ANY (p_dayparts) THEN 'tonight'
                WHEN extract(hour FROM p_local) < 5 THEN 'the day ahead'
                WHEN extract(hour FROM p_local) < 12 THEN 'your morning'
                WHEN extract(hour FROM p_local) < 17 THEN 'your afternoon'
                ELSE 'tomorrow' END
$$;
COMMENT ON FUNCTION ootd._occasion(timestamp, text[]) IS
    'Private: the occasion served items are for: tonight, the day ahead, your morning, your afternoon, tomorrow, or both.';

-- ootd._served_archetype(archetypes): the archetype the items shown are,
-- as the headline names it, from the archetypes of the pools they were drawn
-- from (in rank order): the one more than half of them share; NULL when none
-- does (three items of three archetypes), so the headline names no archetype
-- rather than one most items are not.  So a headline never contradicts its
-- items' archetype either.
-- (PL/pgSQL: its query is planned once per session, not on every feed.)
CREATE FUNCTION ootd._served_archetype(p_archetypes text[])
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN (SELECT a.archetype
            FROM unnest(p_archetypes) AS a(archetype)
            GROUP BY a.archetype
            HAVING 2 * count(*) > cardinality(p_archetypes));
END
$$;
COMMENT ON FUNCTION ootd._served_archetype(text[]) IS
    'Private: the archetype more than half of the items shown were drawn from, else NULL (the headline names none).';

-- ootd._headline(weather adjective, archetype adjective, occasion, city):
-- "A breezy minimalist look for tonight in Torrance"; without an archetype
-- adjective (the items shown share no archetype) "A breezy look for tonight
-- in Torrance".  The one home of the headline's wording; the weather is the
-- served pool's, the archetype the items' (ootd._served_archetype).
CREATE FUNCTION ootd._headline(p_weather text, p_archetype text, p_occasion text, p_city text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_weather ~* '^[aeiou]' THEN 'An ' ELSE 'A ' END || p_weather || coalesce(' ' || p_archetype, '')
           || ' look for ' || p_occasion || ' in ' || p_city
$$;
COMMENT ON FUNCTION ootd._headline(text, text, text, text) IS
    'Private: the feed headline from the served pool''s weather adjective, the items'' archetype adjective (if any), the occasion and the city.';

-- ootd._jitter(scale, user, outfit, local date): the deterministic tie-break,
-- scale x a hash of (user, outfit, local date) in [-1, 1): the same all local
-- day (no flicker, unlike random()), different for every user.
CREATE FUNCTION ootd._jitter(p_scale double precision, p_user_id bigint, p_outfit_id bigint, p_local_date date)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_scale * (hashint8extended(p_outfit_id, p_user_id # (p_local_date - date '2000-01-01'))::double precision
                      / 9223372036854775808.0)
$$;
COMMENT ON FUNCTION ootd._jitter(double precision, bigint, bigint, date) IS
    'Private: deterministic tie-break, scale x hash(user, outfit, local date) in [-1, 1).';

-- ootd._relax_vetoes(violations, limit): the veto cascade, for when fewer
-- than `limit` candidates survive the vetoes.  violations holds one JSON array per
-- candidate of the veto entries it breaks ("disliked_categories:Dress").
-- Returns the entries to relax, strictest first (the entry blocking the most
-- candidates; ties by name): the fewest that serve least(limit, candidates).
CREATE FUNCTION ootd._relax_vetoes(p_violations jsonb, p_limit integer)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    WITH c AS (
        SELECT v.n, v.rules FROM jsonb_array_elements(p_violations) WITH ORDINALITY AS v(rules, n)
    ), strictness AS (
        SELECT e.rule, row_number() OVER (ORDER BY count(*) DESC, e.rule) AS pos
        FROM c CROSS JOIN LATERAL jsonb_array_elements_text(c.rules) AS e(rule)
        GROUP BY e.rule
    ), levels AS (              -- entries to relax before each candidate is served
        SELECT coalesce(max(s.pos), 0) AS level
        FROM c LEFT JOIN LATERAL jsonb_array_elements_text(c.rules) AS e(rule) ON true
        LEFT JOIN strictness s ON s.rule = e.rule
        GROUP BY c.n
    ), needed AS (
        SELECT min(l.level) AS level
        FROM (SELECT l.level, count(*) OVER (ORDER BY l.level) AS served FROM levels l) l
        WHERE l.served >= least(p_limit, (SELECT count(*) FROM c))
    )
    SELECT coalesce(array_agg(s.rule ORDER BY s.pos), '{}')
    FROM strictness s, needed n
    WHERE s.pos <= n.level
$$;
COMMENT ON FUNCTION ootd._relax_vetoes(jsonb, integer) IS
    'Private: the veto entries to relax, strictest first, so that least(limit, candidates) outfits are served.';

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
CREATE FUNCTION ootd._pool_rows(p_pool_date date, p_cluster_id text, p_priority text, p_neighbours boolean)
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

-- ootd._context(user, city, zone, dna, rules, taste, liked, at, cluster):
-- a profile at an instant (ootd.serving_context), for ootd.feed (a stored
-- user) and ootd.simulate (a what-if profile) alike; liked: the profile's
-- liked outfit ids.  Pool: the given cluster when not NULL; else the
-- user's cluster (archetype x the city's weather on the local date); else
-- the latest earlier pool of the same archetype and weather; else the same
-- archetype, any weather; else any pool (latest up to the local date, then
-- the earliest after it); each branch is one index probe and the first that
-- finds wins.  No row: no pool at all (or no such cluster).
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._context(p_user_id bigint, p_city text, p_timezone text, p_dna jsonb, p_rules jsonb,
                              p_taste public.vector, p_liked bigint[], p_at timestamptz, p_cluster_id text)
RETURNS SETOF ootd.serving_context
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT p_user_id, p_dna, p_rules, p_taste, p_liked, t.local, t.local::date, ootd._priority_daypart(t.local), p.pool_date, p.cluster_id, p_city, wc.adjective
    FROM (SELECT p_at AT TIME ZONE p_timezone AS local,
                 coalesce(p_dna ->> 'archetype', ootd.default_archetype()) AS archetype) t
    LEFT JOIN LATERAL (SELECT w.condition FROM ootd.weather_daily w
                       WHERE w.city = p_city AND w.day <= t.local::date
                       ORDER BY w.day DESC LIMIT 1) wx ON true
    CROSS JOIN LATERAL (
        SELECT s.pool_date, s.cluster_id, s.weather
        FROM ((SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p_cluster_id IS NOT NULL AND p.cluster_id = p_cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p_cluster_id IS NULL AND p.archetype = t.archetype AND p.weather = wx.condition
                 AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p_cluster_id IS NULL AND p.archetype = t.archetype AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p_cluster_id IS NULL AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p_cluster_id IS NULL
               ORDER BY p.pool_date, p.members DESC, p.cluster_id LIMIT 1)) s
        LIMIT 1) p
    LEFT JOIN ootd.weather_conditions wc ON wc.name = p.weather;  -- the served pool's, not the user's
END
$$;
COMMENT ON FUNCTION ootd._context(bigint, text, text, jsonb, jsonb, public.vector, bigint[], timestamptz, text) IS
    'Private: a profile at an instant as the ranking sees it (local time, priority daypart, pool, likes, headline parts).';

-- ootd._serving_context(user, at): ootd._context of a stored user.  No row:
-- unknown user or no pool at all.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._serving_context(p_user_id bigint, p_at timestamptz)
RETURNS SETOF ootd.serving_context
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    u       ootd.users;
    v_liked bigint[];
BEGIN
    -- The user's row and likes first, by single-user queries, then the context from values: on
    -- Citus each query reads only the shard of the worker running the call (a function called
    -- inside a shard query may not read other tables).
    SELECT * INTO u FROM ootd.users WHERE id = p_user_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT coalesce(array_agg(k.outfit_id ORDER BY k.outfit_id), '{}') INTO v_liked
    FROM ootd.likes k WHERE k.user_id = p_user_id;
    RETURN QUERY
    SELECT * FROM ootd._context(u.id, u.city, u.timezone, u.style_dna, u.style_rules, u.taste, v_liked, p_at, NULL);
END
$$;
COMMENT ON FUNCTION ootd._serving_context(bigint, timestamptz) IS
    'Private: a stored user at an instant (ootd._context with the user''s row and likes).';

-- ------------------------------------------------------------------ ranking --
-- ootd._score(weights, user, dna, rules, taste, local date, priority daypart,
-- liked, outfit, category, color, daypart, embedding, archetype affinity): an
-- outfit's score for a user, component by component, and the total:
-- preferred_color x liked_category x (1 + category_affinity x ln(1 +
-- affinity)) x (1 + archetype x ln(1 + archetype affinity)) x liked_decay
-- (already liked) + cosine x cos(taste, embedding) (0 without a taste, or for
-- a zero vector, whose cosine pgvector gives as NaN) + daypart_priority (the
-- priority daypart) + jitter.  The archetype affinity is the profile's to the
-- archetype of the pool the outfit was drawn from (ootd._archetype_affinity:
-- the stated archetype at 1 until likes teach more), passed as a number so
-- the caller looks it up once per candidate.  The one home of the scoring
-- formula: the feed (ootd._ranked) and the evaluation's oracle use it.
CREATE FUNCTION ootd._score(w ootd.scoring_weights, p_user_id bigint, p_dna jsonb, p_rules jsonb,
                            p_taste public.vector, p_local_date date, p_priority text, p_liked boolean,
                            p_outfit_id bigint, p_category text, p_color text, p_daypart text,
                            p_embedding public.vector, p_archetype_affinity double precision)
RETURNS TABLE (color_boost double precision, category_boost double precision, affinity_boost double precision,
               archetype_boost double precision, liked_penalty double precision, cosine double precision,
               daypart_bonus double precision, jitter double precision, score double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT s.*, s.color_boost * s.category_boost * s.affinity_boost * s.archetype_boost * s.liked_penalty
                + w.cosine * s.cosine + s.daypart_bonus + s.jitter
    FROM (SELECT CASE WHEN p_dna -> 'preferred_colors' ? p_color THEN w.preferred_color ELSE 1 END AS color_boost,
                 CASE WHEN p_rules -> 'liked_categories' ? p_category THEN w.liked_category ELSE 1 END
                     AS category_boost,
                 1 + w.category_affinity * ln(1 + greatest(coalesce(
                     (p_dna -> 'category_affinity' ->> p_category)::double precision, 0), 0)) AS affinity_boost,
                 1 + w.archetype * ln(1 + greatest(coalesce(p_archetype_affinity, 0), 0)) AS archetype_boost,
                 CASE WHEN p_liked THEN w.liked_decay ELSE 1 END AS liked_penalty,
                 coalesce(nullif(1 - (p_taste OPERATOR(public.<=>) p_embedding), 'NaN'), 0) AS cosine,
                 CASE WHEN p_daypart = p_priority THEN w.daypart_priority ELSE 0 END AS daypart_bonus,
                 ootd._jitter(w.jitter, p_user_id, p_outfit_id, p_local_date) AS jitter) s
$$;
COMMENT ON FUNCTION ootd._score(ootd.scoring_weights, bigint, jsonb, jsonb, public.vector, date, text, boolean, bigint,
                                text, text, text, public.vector, double precision) IS
    'Private: an outfit''s score components for a user and their total (the one home of the scoring formula).';

-- ootd._rank_all(requests, limit, all): the whole last mile for many
-- requests at once, as one set-based query: for each request (by its
-- position in the array, from 1), every candidate with each score component
-- and its rank, as the columns of ootd.ranked_outfit, and the adjective of the
-- archetype its first p_limit served outfits were drawn from (what the
-- headline names; NULL when none).  all false: only the served rows (rank
-- <= p_limit).  The ranking's one home: ootd._rank (one request: ootd.feed's
-- live path, ootd.feed_explain, ootd.simulate, the evaluation) and the
-- served feeds' writer (06_serving_ahead.sql, thousands at once) call it.
--  1. the candidates (ootd._pool_rows, read once per pool and priority for
--     every request it serves): the served pool, and the priority daypart's
--     outfits of its same-weather neighbours (weights.neighbour_pools);
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
--  5. headline, once per request: the served pool's weather, the archetype
--     the first p_limit served outfits were drawn from (ootd._served_archetype:
--     more than half of them; else none), their occasion (ootd._occasion)
--     and the city.
-- Vetoed candidates have a NULL rank.  A request with no candidates has no row.
-- One generic plan, whatever the number of requests: a custom plan of this
-- query took about 2.5 ms to make, several times one request's ranking.
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._rank_all(p_requests ootd._ranking_request[], p_limit integer, p_all boolean)
RETURNS TABLE (request integer, archetype_adjective text, rank integer, outfit_id bigint, title text, category text,
               color text, daypart text, vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision, liked_penalty double precision,
               cosine double precision, daypart_bonus double precision, jitter double precision,
               score double precision, headline text, cluster_id text, pool_date date, source text,
               relaxed_rules text[], drawn_from text, variant text, archetype_boost double precision)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan   -- planning this query costs more than running it for a few requests
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH q AS MATERIALIZED (
        SELECT r.n::integer AS request, (r.context).*, r.weights AS w, (r.weights).neighbour_pools AS neighbours,
               r.variant, ootd._archetype_affinities((r.context).dna) AS affinities   -- once, not per candidate
        FROM unnest(p_requests) WITH ORDINALITY AS r(context, weights, variant, n)
    ), pools AS MATERIALIZED (  -- each pool's candidates, read once for every request it serves
        SELECT d.pool_date, d.cluster_id, d.priority_daypart, d.neighbours, c.outfit_id, c.daypart, c.title,
               c.category, c.color, c.embedding, c.source, c.drawn_from, a.archetype
        FROM (SELECT DISTINCT q.pool_date, q.cluster_id, q.priority_daypart, q.neighbours FROM q) d
        CROSS JOIN LATERAL ootd._pool_rows(d.pool_date, d.cluster_id, d.priority_daypart, d.neighbours) c
        LEFT JOIN LATERAL (SELECT p.archetype FROM ootd.pools p
                           WHERE p.pool_date = d.pool_date AND p.cluster_id = c.drawn_from) a ON true
    ), c AS (                  -- each request's candidates (one join; every step below reads one row at a time)
        SELECT q.request, q.user_id, q.dna, q.rules, q.taste, q.local, q.local_date, q.priority_daypart, q.pool_date,
               q.cluster_id, q.city, q.weather_adjective, q.w, q.variant, p.outfit_id, p.daypart, p.title,
               p.category, p.color, p.embedding, p.source, p.drawn_from, p.archetype,
               array_remove(ARRAY[
                   CASE WHEN q.rules -> 'disliked_categories' ? p.category THEN 'disliked_categories:' || p.category END,
                   CASE WHEN q.rules -> 'disliked_colors' ? p.color THEN 'disliked_colors:' || p.color END],
                   NULL) AS violations,
               p.outfit_id = ANY (q.liked) AS liked, ootd._archetype_affinity(q.affinities, p.archetype) AS archetype_affinity
        FROM q JOIN pools p ON p.pool_date = q.pool_date AND p.cluster_id = q.cluster_id
                               AND p.priority_daypart = q.priority_daypart AND p.neighbours = q.neighbours
    ), scored AS MATERIALIZED (  -- fixed-width sort keys first: the sorts below deform them for every comparison
        SELECT c.request, cardinality(c.violations) = 0 AS clean, c.daypart = c.priority_daypart AS priority,
               s.score, c.outfit_id, s.color_boost, s.category_boost, s.affinity_boost, s.archetype_boost,
               s.liked_penalty, s.cosine, s.daypart_bonus, s.jitter, c.category, c.color, c.title, c.daypart,
               c.violations, c.source, c.drawn_from, c.archetype, c.local, c.pool_date, c.cluster_id, c.city,
               c.weather_adjective, c.variant
        FROM c
        CROSS JOIN LATERAL ootd._score(c.w, c.user_id, c.dna, c.rules, c.taste, c.local_date, c.priority_daypart,
                                       c.liked, c.outfit_id, c.category, c.color, c.daypart, c.embedding,
                                       c.archetype_affinity) s
    ), relaxed AS (            -- the request's relaxed entries (only for a request where some must be)
        SELECT s.violations <@ s.relaxed_rules AS served, s.*
        FROM (SELECT CASE WHEN s.relax THEN ootd._relax_vetoes(jsonb_agg(to_jsonb(s.violations)) FILTER (WHERE s.relax)
                                                                   OVER (PARTITION BY s.request), p_limit)
                          ELSE '{}'::text[] END AS relaxed_rules,
                     s.*
              FROM (SELECT count(*) FILTER (WHERE s.clean) OVER w < least(p_limit, count(*) OVER w) AS relax, s.*
                    FROM scored s
                    WINDOW w AS (PARTITION BY s.request)) s) s
    ), by_category AS (
        SELECT row_number() OVER (PARTITION BY s.request, s.served, s.clean, s.priority, s.category
                                  ORDER BY s.score DESC, s.outfit_id) > 1 AS second_of_category,
               s.*
        FROM relaxed s
    ), ordered AS (            -- colors repeat among each category's best, or among the rest
        SELECT row_number() OVER (PARTITION BY s.request, s.served, s.clean, s.priority, s.second_of_category, s.color
                                  ORDER BY s.score DESC, s.outfit_id) > 1 AS second_of_color,
               s.*
        FROM by_category s
    ), ranked AS (
        SELECT CASE WHEN o.served THEN row_number() OVER (
                   PARTITION BY o.request
                   ORDER BY o.served DESC, o.clean DESC, o.priority DESC, o.second_of_category, o.second_of_color,
                            o.score DESC, o.outfit_id)::integer END AS rank,
               o.*
        FROM ordered o
    ), shown AS (              -- what the headline names: the first p_limit served outfits, in rank order
        SELECT array_agg(r.daypart) FILTER (WHERE r.rank <= p_limit) OVER w AS dayparts,
               array_agg(r.archetype) FILTER (WHERE r.rank <= p_limit) OVER w AS archetypes,
               r.*
        FROM ranked r
        WINDOW w AS (PARTITION BY r.request ORDER BY r.rank ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ), headed AS (             -- the headline, computed on the first row of each request
        SELECT a.adjective,
               CASE WHEN r.rank = 1 THEN ootd._headline(r.weather_adjective, a.adjective,
                                                        ootd._occasion(r.local, r.dayparts), r.city) END AS headline,
               r.*
        FROM shown r
        LEFT JOIN LATERAL (SELECT a.adjective FROM ootd.archetypes a
                           WHERE a.name = CASE WHEN r.rank = 1 THEN ootd._served_archetype(r.archetypes) END) a ON true
    )
    SELECT r.request, max(r.adjective) OVER w, r.rank, r.outfit_id, r.title, r.category, r.color, r.daypart,
           r.violations, r.priority, r.color_boost, r.category_boost, r.affinity_boost, r.liked_penalty, r.cosine,
           r.daypart_bonus, r.jitter, r.score, max(r.headline) OVER w, r.cluster_id, r.pool_date, r.source,
           r.relaxed_rules, r.drawn_from, r.variant, r.archetype_boost
    FROM headed r
    WHERE p_all OR r.rank <= p_limit
    WINDOW w AS (PARTITION BY r.request);
END
$$;
COMMENT ON FUNCTION ootd._rank_all(ootd._ranking_request[], integer, boolean) IS
    'Private: for many requests at once, every candidate with each score component and its rank (NULL = vetoed), the headline and its archetype adjective; the ranking''s one home.';

-- ootd._rank(context..., weights, limit, variant): ootd._rank_all of one
-- request, every candidate (the context comes as the fields of an
-- ootd.serving_context; liked: the profile's liked outfit ids; variant: the
-- experiment variant whose weights these are, reported as given).
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._rank(p_user_id bigint, p_dna jsonb, p_rules jsonb, p_taste public.vector, p_liked bigint[],
                           p_local timestamp, p_local_date date, p_priority text, p_pool_date date,
                           p_cluster_id text, p_city text, p_weather_adjective text, w ootd.scoring_weights,
                           p_limit integer, p_variant text)
RETURNS SETOF ootd.ranked_outfit
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN QUERY
    SELECT k.rank, k.outfit_id, k.title, k.category, k.color, k.daypart, k.vetoed_by, k.priority, k.color_boost,
           k.category_boost, k.affinity_boost, k.liked_penalty, k.cosine, k.daypart_bonus, k.jitter, k.score,
           k.headline, k.cluster_id, k.pool_date, k.source, k.relaxed_rules, k.drawn_from, k.variant,
           k.archetype_boost
    FROM ootd._rank_all(ARRAY[ROW(ROW(p_user_id, p_dna, p_rules, p_taste, p_liked, p_local, p_local_date, p_priority,
                                      p_pool_date, p_cluster_id, p_city, p_weather_adjective)::ootd.serving_context,
                                  w, p_variant)::ootd._ranking_request], p_limit, true) k;
END
$$;
COMMENT ON FUNCTION ootd._rank(bigint, jsonb, jsonb, public.vector, bigint[], timestamp, date, text, date, text, text, text,
                               ootd.scoring_weights, integer, text) IS
    'Private: ootd._rank_all of one request: every candidate with each score component and its rank (NULL = vetoed), and the headline.';

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

-- --------------------------------------------------------------------- API --
-- ootd._check_limit(limit): p_limit of feed and feed_explain, or 22023 outside 1..20.
CREATE FUNCTION ootd._check_limit(p_limit integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 20 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 20, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_limit;
END
$$;
COMMENT ON FUNCTION ootd._check_limit(integer) IS 'Private: p_limit, or 22023 when it is outside 1..20.';

-- ootd._check_user(user): P0002 unless the user exists.
CREATE FUNCTION ootd._check_user(p_user_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ootd.users u WHERE u.id = p_user_id) THEN
        RAISE EXCEPTION 'unknown user %', coalesce(p_user_id::text, 'NULL') USING ERRCODE = 'no_data_found';
    END IF;
END
$$;
COMMENT ON FUNCTION ootd._check_user(bigint) IS 'Private: raises P0002 (unknown user N) unless the user exists.';

-- ootd.feed(user, at, limit): the user's feed, p_limit outfits (1..20), zero
-- LLM calls: the served rows of ootd._ranked (see its header for the steps).
-- First the user's served row (ootd._served, 06_serving_ahead.sql: the same
-- ranking computed ahead, one index probe), when it is current; else ranked
-- live.  variant: the user's variant of the running experiment (NULL when
-- none runs; docs/experiments.md).  A pure read: it never writes, not even
-- a missing row.  Errors: unknown user P0002; p_limit outside 1..20 22023.
-- With no pools at all the result is empty.
CREATE FUNCTION ootd.feed(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
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

-- --------------------------------------------------------------- readiness --
-- ootd.serving_status(at): is serving ready, and how much comes from the cache.
-- pool_date is the UTC date of p_at (the nightly batch's default date);
-- fallback_pools are that date's pools missing from ootd.pool_cache (their
-- feeds are served from ootd.outfits: after a crash, or on a hot standby).
CREATE FUNCTION ootd.serving_status(p_at timestamptz DEFAULT now())
RETURNS TABLE (pool_date date, pools integer, cached_pools integer, fallback_pools integer, ready boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_day    date := (coalesce(p_at, now()) AT TIME ZONE 'UTC')::date;
    v_pools  integer;
    v_cached integer := 0;
BEGIN
    SELECT count(*) INTO v_pools FROM ootd.pools p WHERE p.pool_date = v_day;
    IF NOT pg_is_in_recovery() THEN           -- a standby cannot read UNLOGGED tables
        SELECT count(*) INTO v_cached
        FROM ootd.pools p
        WHERE p.pool_date = v_day
          AND EXISTS (SELECT 1 FROM ootd.pool_cache c WHERE c.pool_date = p.pool_date AND c.cluster_id = p.cluster_id);
    END IF;
    RETURN QUERY SELECT v_day, v_pools, v_cached, v_pools - v_cached, v_pools > 0;
END
$$;
COMMENT ON FUNCTION ootd.serving_status(timestamptz) IS
    'Readiness: pools generated for the UTC date of p_at, how many are cached, how many fall back to durable storage.';

-- ootd.unreachable_nodes(): on a Citus cluster, how many of its other nodes
-- (workers) the caller cannot reach, 0 on a single node or a standby.  SECURITY
-- INVOKER on purpose: the API's readiness asks as ootd_api, the role its
-- delegated feeds and likes reach the workers as, so a role that cannot log in
-- there counts as unreachable.  The failed connection's warning (it names the
-- node's host and port) is kept from the client.
CREATE FUNCTION ootd.unreachable_nodes()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET client_min_messages = error
AS $$
DECLARE
    v_unreachable integer := 0;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_node') IS NOT NULL AND NOT pg_is_in_recovery() THEN
        EXECUTE 'SELECT count(*)::integer FROM pg_catalog.pg_dist_node n
                 WHERE n.isactive AND n.noderole = ''primary'' AND n.groupid <> 0
                   AND NOT pg_catalog.citus_check_connection_to_node(n.nodename, n.nodeport)'
        INTO v_unreachable;
    END IF;
    RETURN v_unreachable;
END
$$;
COMMENT ON FUNCTION ootd.unreachable_nodes() IS
    'Readiness on Citus: active worker nodes the calling role cannot connect to (0 on a single node).';
