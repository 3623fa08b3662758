-- =============================================================================
-- Revision 0010: headlines name the occasion of their items; the veto cascade
-- fills the feed (frozen)
-- The headline says what the first served outfit is for (tonight, the day
-- ahead, your morning, your afternoon, tomorrow: ootd._occasion) with the
-- served pool's weather and archetype (a fallback pool no longer borrows the
-- user's); vetoes are relaxed whenever fewer than p_limit outfits survive, not
-- only when none does, and outfits that break no veto rank first.  Diversity:
-- one outfit of each category, and of each color, before any second.  The
-- scoring formula gets one home, ootd._score.
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd._serving_context(bigint, timestamptz);
DROP FUNCTION ootd._headline(text, text, integer, text);
DROP FUNCTION ootd._daypart_word(integer);

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


-- ootd._headline(weather adjective, archetype adjective, occasion, city):
-- "A breezy minimalist look for tonight in Torrance".  The one home of the
-- headline's wording; the adjectives are the served pool's.
CREATE FUNCTION ootd._headline(p_weather text, p_archetype text, p_occasion text, p_city text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_weather ~* '^[aeiou]' THEN 'An ' ELSE 'A ' END || p_weather || ' ' || p_archetype
           || ' look for ' || p_occasion || ' in ' || p_city
$$;
COMMENT ON FUNCTION ootd._headline(text, text, text, text) IS
    'Private: the feed headline from the served pool''s weather and archetype adjectives, the occasion and the city.';


-- ootd._relax_vetoes(violations, limit): the veto cascade, for when fewer
-- than `limit` candidates survive the vetoes.  violations holds one JSON array per
-- candidate of the veto entries it breaks ("disliked_categories:Dress").
-- Returns the entries to relax, strictest first (the entry blocking the most
-- candidates; ties by name): the fewest that serve least(limit, candidates).
CREATE OR REPLACE FUNCTION ootd._relax_vetoes(p_violations jsonb, p_limit integer)
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


-- ootd._serving_context(user, at): what the ranking needs to know about the
-- user at an instant, as one row: profile, local time, priority daypart, the
-- pool to serve and what its headline names (the pool's weather and archetype
-- adjectives, the city).  Pool: the user's cluster (archetype x the
-- city's weather on the local date); else the latest earlier pool of the
-- same archetype and weather; else the same archetype, any weather; else any
-- pool (latest up to the local date, then the earliest after it); each branch
-- is one index probe and the first that finds wins.  No row: unknown user or
-- no pool at all.
CREATE FUNCTION ootd._serving_context(p_user_id bigint, p_at timestamptz)
RETURNS TABLE (user_id bigint, dna jsonb, rules jsonb, taste public.vector, local timestamp, local_date date,
               priority_daypart text, pool_date date, cluster_id text, city text, weather_adjective text,
               archetype_adjective text)
LANGUAGE sql STABLE
AS $$
    SELECT u.id, u.style_dna, u.style_rules, u.taste, t.local, t.local::date, ootd._priority_daypart(t.local),
           p.pool_date, p.cluster_id, u.city, wc.adjective, ar.adjective
    FROM ootd.users u
    CROSS JOIN LATERAL (SELECT p_at AT TIME ZONE u.timezone AS local,
                               coalesce(u.style_dna ->> 'archetype', ootd.default_archetype()) AS archetype) t
    LEFT JOIN LATERAL (SELECT w.condition FROM ootd.weather_daily w
                       WHERE w.city = u.city AND w.day <= t.local::date
                       ORDER BY w.day DESC LIMIT 1) wx ON true
    CROSS JOIN LATERAL (
        SELECT s.pool_date, s.cluster_id, s.archetype, s.weather
        FROM ((SELECT p.pool_date, p.cluster_id, p.archetype, p.weather FROM ootd.pools p
               WHERE p.archetype = t.archetype AND p.weather = wx.condition AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.archetype, p.weather FROM ootd.pools p
               WHERE p.archetype = t.archetype AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.archetype, p.weather FROM ootd.pools p
               WHERE p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.archetype, p.weather FROM ootd.pools p
               ORDER BY p.pool_date, p.members DESC, p.cluster_id LIMIT 1)) s
        LIMIT 1) p
    LEFT JOIN ootd.weather_conditions wc ON wc.name = p.weather      -- the served pool's, not the user's
    LEFT JOIN ootd.archetypes ar ON ar.name = p.archetype
    WHERE u.id = p_user_id
$$;
COMMENT ON FUNCTION ootd._serving_context(bigint, timestamptz) IS
    'Private: the user at an instant: profile, local time, priority daypart, pool to serve, headline parts (inlined into ootd._ranked).';


-- ootd._score(weights, user, dna, rules, taste, local date, priority daypart,
-- liked, outfit, category, color, daypart, embedding): an outfit's score for
-- a user, component by component, and the total: preferred_color x
-- liked_category x (1 + category_affinity x ln(1 + affinity)) x liked_decay
-- (already liked) + cosine x cos(taste, embedding) + daypart_priority (the
-- priority daypart) + jitter.  The one home of the scoring formula: the feed
-- (ootd._ranked) and the evaluation's oracle use it.
CREATE FUNCTION ootd._score(w ootd.scoring_weights, p_user_id bigint, p_dna jsonb, p_rules jsonb,
                            p_taste public.vector, p_local_date date, p_priority text, p_liked boolean,
                            p_outfit_id bigint, p_category text, p_color text, p_daypart text,
                            p_embedding public.vector)
RETURNS TABLE (color_boost double precision, category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT s.*, s.color_boost * s.category_boost * s.affinity_boost * s.liked_penalty
                + w.cosine * s.cosine + s.daypart_bonus + s.jitter
    FROM (SELECT CASE WHEN p_dna -> 'preferred_colors' ? p_color THEN w.preferred_color ELSE 1 END AS color_boost,
                 CASE WHEN p_rules -> 'liked_categories' ? p_category THEN w.liked_category ELSE 1 END
                     AS category_boost,
                 1 + w.category_affinity * ln(1 + greatest(coalesce(
                     (p_dna -> 'category_affinity' ->> p_category)::double precision, 0), 0)) AS affinity_boost,
                 CASE WHEN p_liked THEN w.liked_decay ELSE 1 END AS liked_penalty,
                 coalesce(1 - (p_taste OPERATOR(public.<=>) p_embedding), 0) AS cosine,
                 CASE WHEN p_daypart = p_priority THEN w.daypart_priority ELSE 0 END AS daypart_bonus,
                 ootd._jitter(w.jitter, p_user_id, p_outfit_id, p_local_date) AS jitter) s
$$;
COMMENT ON FUNCTION ootd._score(ootd.scoring_weights, bigint, jsonb, jsonb, public.vector, date, text, boolean, bigint,
                                text, text, text, public.vector) IS
    'Private: an outfit''s score components for a user and their total (the one home of the scoring formula).';

-- ootd._ranked(user, at, limit): the whole last mile as one set-based query
-- (inlined into ootd.feed and ootd.feed_explain, so each caches one plan):
-- every candidate of the user's pool with each score component and its rank.
--  1. local time from the user's IANA zone; the priority daypart;
--  2. the pool (ootd._serving_context), read by ootd._pool_rows;
--  3. hard veto: an outfit in a disliked category or color is not served,
--     unless fewer than p_limit survive: then ootd._relax_vetoes relaxes
--     entries, strictest first, until p_limit outfits (or the whole pool) are
--     served;
--  4. score: ootd._score (each component and the total);
--  5. order: outfits that break no veto first, then the relaxed ones; then
--     the priority daypart first; within it one outfit of each category
--     before any category's second, and one of each color before any
--     color's second (diversity); then score; then outfit id;
--  6. headline: the served pool's weather and archetype, the occasion of the
--     first p_limit served outfits (ootd._occasion) and the city.
-- Vetoed candidates have a NULL rank.
CREATE OR REPLACE FUNCTION ootd._ranked(p_user_id bigint, p_at timestamptz, p_limit integer)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[])
LANGUAGE sql STABLE
AS $$
    WITH x AS (
        SELECT * FROM ootd._serving_context(p_user_id, p_at)
    ), c AS (
        SELECT c.*, array_remove(ARRAY[
                   CASE WHEN x.rules -> 'disliked_categories' ? c.category THEN 'disliked_categories:' || c.category END,
                   CASE WHEN x.rules -> 'disliked_colors' ? c.color THEN 'disliked_colors:' || c.color END],
                   NULL) AS violations,
               c.outfit_id IN (SELECT k.outfit_id FROM ootd.likes k WHERE k.user_id = x.user_id) AS liked
        FROM x CROSS JOIN LATERAL ootd._pool_rows(x.pool_date, x.cluster_id) c
    ), relaxed AS (
        SELECT CASE WHEN count(*) FILTER (WHERE cardinality(c.violations) = 0) >= least(p_limit, count(*))
                    THEN '{}'::text[]
                    ELSE ootd._relax_vetoes(jsonb_agg(to_jsonb(c.violations)), p_limit) END AS rules
        FROM c
    ), scored AS (
        SELECT c.outfit_id, c.title, c.category, c.color, c.daypart, c.violations, c.source,
               c.violations <@ r.rules AS served, cardinality(c.violations) = 0 AS clean,
               c.daypart = x.priority_daypart AS priority, p.*, r.rules AS relaxed_rules
        FROM c CROSS JOIN x CROSS JOIN relaxed r CROSS JOIN ootd.scoring_weights w
        CROSS JOIN LATERAL ootd._score(w, x.user_id, x.dna, x.rules, x.taste, x.local_date, x.priority_daypart,
                                       c.liked, c.outfit_id, c.category, c.color, c.daypart, c.embedding) p
    ), ordered AS (
        SELECT s.*, row_number() OVER (PARTITION BY s.served, s.clean, s.priority, s.category
                                       ORDER BY s.score DESC, s.outfit_id) AS nth_of_category,
                    row_number() OVER (PARTITION BY s.served, s.clean, s.priority, s.color
                                       ORDER BY s.score DESC, s.outfit_id) AS nth_of_color
        FROM scored s
    )
    SELECT CASE WHEN o.served THEN row_number() OVER served_order::integer END,
           o.outfit_id, o.title, o.category, o.color, o.daypart, o.violations, o.priority,
           o.color_boost, o.category_boost, o.affinity_boost, o.liked_penalty, o.cosine, o.daypart_bonus,
           o.jitter, o.score,
           ootd._headline(x.weather_adjective, x.archetype_adjective,
                          ootd._occasion(x.local, (array_agg(o.daypart) OVER served_all)[1:p_limit]), x.city),
           x.cluster_id, x.pool_date, o.source, o.relaxed_rules
    FROM ordered o CROSS JOIN x
    WINDOW served_order AS (ORDER BY o.served DESC, o.clean DESC, o.priority DESC, (o.nth_of_category > 1),
                            (o.nth_of_color > 1), o.score DESC, o.outfit_id),
           served_all AS (served_order ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
$$;
COMMENT ON FUNCTION ootd._ranked(bigint, timestamptz, integer) IS
    'Private: every candidate of the user''s pool with each score component and its rank (NULL = vetoed); the ranking''s one home.';


REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;

RESET ROLE;
