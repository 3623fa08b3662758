-- =============================================================================
-- Revision 0020, part a (down): no served feeds (frozen); ootd.feed ranks
-- every call live again, and ootd._rank names the headline's archetype itself.
-- =============================================================================
SET ROLE ootd_owner;

-- One statement per EXECUTE: on Citus a distributed or reference table's DDL text goes to the workers.
DO $ddl$
BEGIN
    EXECUTE $sql$DROP TRIGGER IF EXISTS experiment_variants_inputs_written ON ootd.experiment_variants$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS experiment_variants_inputs_changed ON ootd.experiment_variants$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS experiments_inputs_written ON ootd.experiments$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS experiments_inputs_changed ON ootd.experiments$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS colors_inputs_written ON ootd.colors$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS colors_inputs_changed ON ootd.colors$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS categories_inputs_written ON ootd.categories$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS categories_inputs_changed ON ootd.categories$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS weather_conditions_inputs_written ON ootd.weather_conditions$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS weather_conditions_inputs_changed ON ootd.weather_conditions$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS archetypes_inputs_written ON ootd.archetypes$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS archetypes_inputs_changed ON ootd.archetypes$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS weather_daily_inputs_written ON ootd.weather_daily$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS weather_daily_inputs_changed ON ootd.weather_daily$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS outfits_inputs_written ON ootd.outfits$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS outfits_inputs_changed ON ootd.outfits$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS pools_inputs_written ON ootd.pools$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS pools_inputs_changed ON ootd.pools$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS scoring_weights_inputs_written ON ootd.scoring_weights$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS scoring_weights_inputs_changed ON ootd.scoring_weights$sql$;
    EXECUTE $sql$DROP TRIGGER IF EXISTS users_rematerialize ON ootd.users$sql$;
END
$ddl$;

-- ootd.feed(user, at, limit): the user's feed, p_limit outfits (1..20), zero
-- LLM calls: the served rows of ootd._ranked (see its header for the steps).
-- variant: the user's variant of the running experiment (NULL when none
-- runs; docs/experiments.md).  A pure read, computed on every call.  Errors: unknown user P0002; p_limit
-- outside 1..20 22023.  With no pools at all the result is empty.
CREATE OR REPLACE FUNCTION ootd.feed(p_user_id bigint, p_at timestamptz DEFAULT now(), p_limit integer DEFAULT 3)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               score double precision, headline text, cluster_id text, relaxed_rules text[], variant text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_limit(p_limit);
    RETURN QUERY
    SELECT r.rank, r.outfit_id, r.title, r.category, r.color, r.daypart, r.score, r.headline, r.cluster_id,
           r.relaxed_rules, r.variant
    FROM ootd._ranked(p_user_id, coalesce(p_at, now()), p_limit) r
    WHERE r.rank <= p_limit
    ORDER BY r.rank;
    IF NOT FOUND THEN
        PERFORM ootd._check_user(p_user_id);   -- no rows: an unknown user (P0002), or no pool at all
    END IF;
END
$$;
COMMENT ON FUNCTION ootd.feed(bigint, timestamptz, integer) IS
    'The user''s Outfit-of-the-Day feed at a moment: ranked outfits, headline, cluster, relaxed veto rules, experiment variant; a pure read.';

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
--     first p_limit served outfits were drawn from (ootd._served_archetype:
--     more than half of them; else none), their occasion (ootd._occasion)
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
    ), head AS (
        SELECT ootd._served_archetype(array_agg(r.archetype ORDER BY r.rank)) AS archetype,
               ootd._occasion(p_local, array_agg(r.daypart ORDER BY r.rank)) AS occasion
        FROM ranked r
        WHERE r.rank <= p_limit
    ), headline AS (
        SELECT ootd._headline(p_weather_adjective, a.adjective, h.occasion, p_city) AS text
        FROM head h
        LEFT JOIN ootd.archetypes a ON a.name = h.archetype
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

-- ootd._pool_rows(pool date, cluster, priority daypart, neighbours): the
-- candidates: every outfit of the served pool and, with neighbours, the
-- priority daypart's outfits of the other pools of that date and weather (the
-- user's taste may fit them better than their own cluster's; their LLM calls
-- are made anyway).  Each pool is read from the UNLOGGED cache when it holds
-- it, else from durable ootd.outfits (after a crash; always on a hot
-- standby, which cannot read UNLOGGED tables: this is PL/pgSQL so that a
-- standby never even plans the cache query).
CREATE OR REPLACE FUNCTION ootd._pool_rows(p_pool_date date, p_cluster_id text, p_priority text, p_neighbours boolean)
RETURNS SETOF ootd._candidate
LANGUAGE plpgsql STABLE ROWS 110
AS $$
DECLARE
    v_clusters text[] := ARRAY[p_cluster_id];
BEGIN
    IF p_neighbours THEN
        v_clusters := v_clusters || ARRAY(
            SELECT q.cluster_id
            FROM ootd.pools p JOIN ootd.pools q ON q.pool_date = p.pool_date AND q.weather = p.weather
            WHERE p.pool_date = p_pool_date AND p.cluster_id = p_cluster_id AND q.cluster_id <> p.cluster_id
            ORDER BY q.cluster_id);
    END IF;
    IF pg_is_in_recovery() THEN
        RETURN QUERY
        SELECT o.id, o.daypart, o.title, o.category, o.color, o.embedding, 'durable', o.cluster_id
        FROM ootd.outfits o
        WHERE o.pool_date = p_pool_date AND o.cluster_id = ANY (v_clusters)
          AND (o.cluster_id = p_cluster_id OR o.daypart = p_priority);
        RETURN;
    END IF;
    RETURN QUERY
    WITH cached AS MATERIALIZED (
        SELECT c.outfit_id, c.daypart, c.title, c.category, c.color, c.embedding, 'cache'::text, c.cluster_id
        FROM ootd.pool_cache c
        WHERE c.pool_date = p_pool_date AND c.cluster_id = ANY (v_clusters)
          AND (c.cluster_id = p_cluster_id OR c.daypart = p_priority)
    )
    SELECT * FROM cached
    UNION ALL
    SELECT o.id, o.daypart, o.title, o.category, o.color, o.embedding, 'durable', o.cluster_id
    FROM ootd.outfits o
    WHERE o.pool_date = p_pool_date
      AND o.cluster_id = ANY (ARRAY(SELECT unnest(v_clusters) EXCEPT SELECT k.cluster_id FROM cached k))
      AND (o.cluster_id = p_cluster_id OR o.daypart = p_priority);
END
$$;
COMMENT ON FUNCTION ootd._pool_rows(date, text, text, boolean) IS
    'Private: the served pool''s outfits and its same-weather neighbours'' priority-daypart ones, each pool from the cache, else from durable ootd.outfits.';

ALTER FUNCTION ootd._pool_rows(date, text, text, boolean) RESET plan_cache_mode;

DROP FUNCTION ootd._users_changed();
DROP FUNCTION ootd.served_feeds_status();
DROP PROCEDURE ootd.refresh_feeds(timestamptz, date, integer, integer);
DROP FUNCTION ootd._rematerialize(bigint[]);
DROP FUNCTION ootd._materialize(bigint, date, integer);
DROP FUNCTION ootd._served(bigint, timestamptz, integer);
DROP FUNCTION ootd._materializing();
DROP FUNCTION ootd._serving_inputs_changed();
DROP FUNCTION ootd._served_archetype_adjective(date, text[]);
DROP TABLE ootd.served_feeds;
DROP TABLE ootd.serving_inputs;

RESET ROLE;
