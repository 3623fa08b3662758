-- =============================================================================
-- Revision 0021, part a (down): the ranking one request at a time again
-- (frozen): ootd._rank ranks one context, the writer one user and date.
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd._materialize(bigint[], date[], integer);
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

DROP FUNCTION ootd._rank_all(ootd._ranking_request[], integer, boolean);
DROP TYPE ootd._ranking_request;

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
CREATE OR REPLACE FUNCTION ootd._rematerialize(p_users bigint[])
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
CREATE OR REPLACE PROCEDURE ootd.refresh_feeds(p_at timestamptz DEFAULT now(), p_day date DEFAULT NULL,
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

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;

RESET ROLE;
