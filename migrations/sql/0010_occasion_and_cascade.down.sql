-- =============================================================================
-- Revision 0010 down: back to 0008/0009's headline and cascade (frozen)
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd._serving_context(bigint, timestamptz);
DROP FUNCTION ootd._headline(text, text, text, text);
DROP FUNCTION ootd._occasion(timestamp, text[]);

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


-- ootd._headline(weather adjective, archetype adjective, local hour, city):
-- "A breezy minimalist look for your afternoon in Torrance".  The one home of
-- the headline's wording.
CREATE FUNCTION ootd._headline(p_weather text, p_archetype text, p_hour integer, p_city text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_weather ~* '^[aeiou]' THEN 'An ' ELSE 'A ' END || p_weather || ' ' || p_archetype
           || ' look for your ' || ootd._daypart_word(p_hour) || ' in ' || p_city
$$;
COMMENT ON FUNCTION ootd._headline(text, text, integer, text) IS
    'Private: the feed headline from the weather and archetype adjectives, the local hour and the city.';


-- ootd._relax_vetoes(violations, limit): the veto cascade, for when no
-- candidate survives the vetoes.  violations holds one JSON array per
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
-- user at an instant, as one row: profile, local date, priority daypart, the
-- pool to serve and the headline.  Pool: the user's cluster (archetype x the
-- city's weather on the local date); else the latest earlier pool of the
-- same archetype and weather; else the same archetype, any weather; else any
-- pool (latest up to the local date, then the earliest after it); each branch
-- is one index probe and the first that finds wins.  No row: unknown user or
-- no pool at all.
CREATE FUNCTION ootd._serving_context(p_user_id bigint, p_at timestamptz)
RETURNS TABLE (user_id bigint, dna jsonb, rules jsonb, taste public.vector, local_date date,
               priority_daypart text, pool_date date, cluster_id text, headline text)
LANGUAGE sql STABLE
AS $$
    SELECT u.id, u.style_dna, u.style_rules, u.taste, t.local::date, ootd._priority_daypart(t.local),
           p.pool_date, p.cluster_id,
           ootd._headline(wc.adjective, ar.adjective, extract(hour FROM t.local)::integer, u.city)
    FROM ootd.users u
    CROSS JOIN LATERAL (SELECT p_at AT TIME ZONE u.timezone AS local,
                               coalesce(u.style_dna ->> 'archetype', ootd.default_archetype()) AS archetype) t
    LEFT JOIN LATERAL (SELECT w.condition FROM ootd.weather_daily w
                       WHERE w.city = u.city AND w.day <= t.local::date
                       ORDER BY w.day DESC LIMIT 1) wx ON true
    CROSS JOIN LATERAL (
        SELECT s.pool_date, s.cluster_id, s.weather
        FROM ((SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p.archetype = t.archetype AND p.weather = wx.condition AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p.archetype = t.archetype AND p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               WHERE p.pool_date <= t.local::date
               ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
              UNION ALL
              (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
               ORDER BY p.pool_date, p.members DESC, p.cluster_id LIMIT 1)) s
        LIMIT 1) p
    LEFT JOIN ootd.weather_conditions wc ON wc.name = coalesce(wx.condition, p.weather)
    LEFT JOIN ootd.archetypes ar ON ar.name = t.archetype
    WHERE u.id = p_user_id
$$;
COMMENT ON FUNCTION ootd._serving_context(bigint, timestamptz) IS
    'Private: the user at an instant: profile, local date, priority daypart, pool to serve, headline (inlined into ootd._ranked).';


-- ootd._ranked(user, at, limit): the whole last mile as one set-based query
-- (inlined into ootd.feed and ootd.feed_explain, so each caches one plan):
-- every candidate of the user's pool with each score component and its rank.
--  1. local time from the user's IANA zone; the priority daypart;
--  2. the pool (ootd._serving_context), read by ootd._pool_rows;
--  3. hard veto: an outfit in a disliked category or color is not served,
--     unless nothing survives: then ootd._relax_vetoes relaxes entries,
--     strictest first, until p_limit outfits (or the whole pool) are served;
--  4. score = preferred_color x liked_category x (1 + category_affinity x
--     ln(1 + affinity)) x liked_decay (already liked) + cosine x cos(taste,
--     embedding) + daypart_priority (priority daypart) + jitter;
--  5. order: priority daypart first; within it at most two outfits of a
--     category before any third (diversity); then score; then outfit id.
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
                   NULL) AS violations
        FROM x CROSS JOIN LATERAL ootd._pool_rows(x.pool_date, x.cluster_id) c
    ), relaxed AS (
        SELECT CASE WHEN bool_or(cardinality(c.violations) = 0) THEN '{}'::text[]
                    ELSE ootd._relax_vetoes(jsonb_agg(to_jsonb(c.violations)), p_limit) END AS rules
        FROM c
    ), scored AS (
        SELECT c.outfit_id, c.title, c.category, c.color, c.daypart, c.violations, c.source,
               c.violations <@ r.rules AS served, c.daypart = x.priority_daypart AS priority,
               CASE WHEN x.dna -> 'preferred_colors' ? c.color THEN w.preferred_color ELSE 1 END AS color_boost,
               CASE WHEN x.rules -> 'liked_categories' ? c.category THEN w.liked_category ELSE 1 END AS category_boost,
               1 + w.category_affinity * ln(1 + greatest(coalesce(
                   (x.dna -> 'category_affinity' ->> c.category)::double precision, 0), 0)) AS affinity_boost,
               CASE WHEN c.outfit_id IN (SELECT k.outfit_id FROM ootd.likes k WHERE k.user_id = x.user_id)
                    THEN w.liked_decay ELSE 1 END AS liked_penalty,
               coalesce(1 - (x.taste OPERATOR(public.<=>) c.embedding), 0) AS cosine,
               CASE WHEN c.daypart = x.priority_daypart THEN w.daypart_priority ELSE 0 END AS daypart_bonus,
               ootd._jitter(w.jitter, x.user_id, c.outfit_id, x.local_date) AS jitter,
               w.cosine AS cosine_weight, r.rules AS relaxed_rules
        FROM c CROSS JOIN x CROSS JOIN relaxed r CROSS JOIN ootd.scoring_weights w
    ), ordered AS (
        SELECT s.*, row_number() OVER (PARTITION BY s.served, s.priority, s.category
                                       ORDER BY s.score DESC, s.outfit_id) AS nth_of_category
        FROM (SELECT s.*, s.color_boost * s.category_boost * s.affinity_boost * s.liked_penalty
                          + s.cosine_weight * s.cosine + s.daypart_bonus + s.jitter AS score
              FROM scored s) s
    )
    SELECT CASE WHEN o.served
                THEN row_number() OVER (ORDER BY o.served DESC, o.priority DESC, (o.nth_of_category > 2),
                                                 o.score DESC, o.outfit_id)::integer END,
           o.outfit_id, o.title, o.category, o.color, o.daypart, o.violations, o.priority,
           o.color_boost, o.category_boost, o.affinity_boost, o.liked_penalty, o.cosine, o.daypart_bonus,
           o.jitter, o.score, x.headline, x.cluster_id, x.pool_date, o.source, o.relaxed_rules
    FROM ordered o CROSS JOIN x
$$;
COMMENT ON FUNCTION ootd._ranked(bigint, timestamptz, integer) IS
    'Private: every candidate of the user''s pool with each score component and its rank (NULL = vetoed); the ranking''s one home.';


DROP FUNCTION ootd._score(ootd.scoring_weights, bigint, jsonb, jsonb, public.vector, date, text, boolean, bigint,
                          text, text, text, public.vector);

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;

RESET ROLE;
