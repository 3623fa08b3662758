-- =============================================================================
-- Revision 0021, part a (up): the ranking set-based (frozen; issue 28)
-- ootd._rank_all ranks many requests in one query and is the ranking's one
-- home: ootd._rank is ootd._rank_all of one request, and the served feeds'
-- writer (ootd._materialize) ranks every (user, local date) pair of a batch
-- with one call, both priority dayparts.  The headline's archetype adjective
-- is named by ootd._rank_all (ootd._served_archetype_adjective is gone).
-- =============================================================================
SET ROLE ootd_owner;

-- One ranking request (an element of ootd._rank_all's input): a profile at an
-- instant, the weights it is scored with and their experiment variant.
CREATE TYPE ootd._ranking_request AS (
    context ootd.serving_context,
    weights ootd.scoring_weights,
    variant text
);
COMMENT ON TYPE ootd._ranking_request IS
    'Private: a profile at an instant with the weights it is scored with and their variant (ootd._rank_all''s input).';

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
CREATE OR REPLACE FUNCTION ootd._rank(p_user_id bigint, p_dna jsonb, p_rules jsonb, p_taste public.vector, p_liked bigint[],
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

DROP FUNCTION ootd._served_archetype_adjective(date, text[]);
DROP FUNCTION ootd._materialize(bigint, date, integer);

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
CREATE OR REPLACE FUNCTION ootd._rematerialize(p_users bigint[])
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
CREATE OR REPLACE PROCEDURE ootd.refresh_feeds(p_at timestamptz DEFAULT now(), p_day date DEFAULT NULL,
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

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;

RESET ROLE;
