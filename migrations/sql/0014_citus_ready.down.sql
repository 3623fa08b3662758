-- =============================================================================
-- Revision 0014 down: back to 0013 (frozen).  The users triggers and the likes
-- triggers return; SQL-language user_clusters, cluster_demand and the other
-- nightly and simulator functions; the scoring
-- weights' whole-row CHECK.  No data is lost.
-- =============================================================================
SET ROLE ootd_owner;

-- nightly
CREATE OR REPLACE FUNCTION ootd.user_clusters(p_day date)
RETURNS TABLE (user_id bigint, cluster_id text, archetype text, weather text, city text, temp_c real,
               style_dna jsonb, style_rules jsonb)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT u.id,
           to_char(p_day, 'YYYYMMDD') || '_' || coalesce(u.style_dna ->> 'archetype', ootd.default_archetype())
                                      || '_' || w.condition,
           coalesce(u.style_dna ->> 'archetype', ootd.default_archetype()),
           w.condition, u.city, w.temp_c, u.style_dna, u.style_rules
    FROM ootd.users u
    JOIN ootd.weather_daily w ON w.day = p_day AND w.city = u.city
$$;
COMMENT ON FUNCTION ootd.user_clusters(date) IS
    'Each user''s style cluster for a day: YYYYMMDD_<archetype>_<weather>; users without an archetype get ootd.default_archetype().';

CREATE OR REPLACE FUNCTION ootd.cluster_demand(p_day date)
RETURNS TABLE (cluster_id text, archetype text, archetype_adjective text, archetype_keywords text[],
               weather text, weather_adjective text, weather_keywords text[], members integer,
               top_colors text[], top_liked_categories text[], common_vetoes text[], common_color_vetoes text[],
               mean_vibe double precision, mean_trend double precision, mean_dare double precision,
               cities text[], mean_temp_c double precision, has_pool boolean)
LANGUAGE sql STABLE
AS $$
    WITH members AS NOT MATERIALIZED (
        SELECT * FROM ootd.user_clusters(p_day)
    ), totals AS (
        SELECT m.cluster_id, min(m.archetype) AS archetype, min(m.weather) AS weather,
               count(*)::integer AS members,
               avg((m.style_dna ->> 'vibe')::double precision)  AS mean_vibe,
               avg((m.style_dna ->> 'trend')::double precision) AS mean_trend,
               avg((m.style_dna ->> 'dare')::double precision)  AS mean_dare,
               avg(m.temp_c)::double precision AS mean_temp_c
        FROM members m
        GROUP BY m.cluster_id
    ), names AS (
        SELECT m.cluster_id, t.kind, t.name, count(*) AS n
        FROM members m
        CROSS JOIN LATERAL (
            SELECT 'color', jsonb_array_elements_text(m.style_dna -> 'preferred_colors')
            UNION ALL SELECT 'liked', jsonb_array_elements_text(m.style_rules -> 'liked_categories')
            UNION ALL SELECT 'veto', jsonb_array_elements_text(m.style_rules -> 'disliked_categories')
            UNION ALL SELECT 'color_veto', jsonb_array_elements_text(m.style_rules -> 'disliked_colors')
            UNION ALL SELECT 'city', m.city
        ) AS t(kind, name)
        GROUP BY m.cluster_id, t.kind, t.name
    ), ranked AS (
        SELECT n.*, row_number() OVER (PARTITION BY n.cluster_id, n.kind ORDER BY n.n DESC, n.name) AS r
        FROM names n
    ), tops AS (
        SELECT r.cluster_id,
               array_agg(r.name ORDER BY r.r) FILTER (WHERE r.kind = 'color' AND r.r <= 5)      AS top_colors,
               array_agg(r.name ORDER BY r.r) FILTER (WHERE r.kind = 'liked' AND r.r <= 4)      AS top_liked,
               array_agg(r.name ORDER BY r.r) FILTER (WHERE r.kind = 'veto' AND r.r <= 4)       AS vetoes,
               array_agg(r.name ORDER BY r.r) FILTER (WHERE r.kind = 'color_veto' AND r.r <= 3) AS color_vetoes,
               array_agg(r.name ORDER BY r.r) FILTER (WHERE r.kind = 'city' AND r.r <= 3)       AS cities
        FROM ranked r
        WHERE r.r <= 5
        GROUP BY r.cluster_id
    )
    SELECT t.cluster_id, t.archetype, a.adjective, a.keywords, t.weather, w.adjective, w.keywords, t.members,
           coalesce(x.top_colors, '{}'), coalesce(x.top_liked, '{}'), coalesce(x.vetoes, '{}'),
           coalesce(x.color_vetoes, '{}'),
           coalesce(t.mean_vibe, 0.5), coalesce(t.mean_trend, 0.5), coalesce(t.mean_dare, 0.5),
           coalesce(x.cities, '{}'), t.mean_temp_c,
           EXISTS (SELECT 1 FROM ootd.pools p WHERE p.pool_date = p_day AND p.cluster_id = t.cluster_id)
    FROM totals t
    JOIN ootd.archetypes a ON a.name = t.archetype
    JOIN ootd.weather_conditions w ON w.name = t.weather
    LEFT JOIN tops x ON x.cluster_id = t.cluster_id
    ORDER BY t.members DESC, t.cluster_id
$$;
COMMENT ON FUNCTION ootd.cluster_demand(date) IS
    'One row per style cluster for a day: members, popular colors/categories, common vetoes, mean traits, has_pool.';

CREATE OR REPLACE FUNCTION ootd.put_weather(p_day date, p_source text, p_forecasts jsonb)
RETURNS integer
LANGUAGE sql
AS $$
    WITH inserted AS (
        INSERT INTO ootd.weather_daily (day, city, condition, temp_c, source)
        SELECT p_day, f.city, f.condition, f.temp_c, p_source
        FROM jsonb_to_recordset(p_forecasts) AS f(city text, condition text, temp_c real)
        ON CONFLICT (day, city) DO NOTHING
        RETURNING 1
    )
    SELECT count(*)::integer FROM inserted
$$;
COMMENT ON FUNCTION ootd.put_weather(date, text, jsonb) IS
    'Record [{city, condition, temp_c}] for a day; existing (day, city) rows are kept. Returns rows inserted.';

CREATE OR REPLACE FUNCTION ootd.recent_titles(p_day date)
RETURNS TABLE (archetype text, weather text, titles text[])
LANGUAGE sql STABLE
AS $$
    SELECT t.archetype, t.weather, array_agg(t.title ORDER BY t.last_served DESC, t.title)
    FROM (
        SELECT p.archetype, p.weather, o.title, max(o.pool_date) AS last_served
        FROM ootd.pools p
        JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id
        WHERE p.pool_date BETWEEN p_day - 3 AND p_day - 1
        GROUP BY p.archetype, p.weather, o.title
    ) AS t
    GROUP BY t.archetype, t.weather
    ORDER BY t.archetype, t.weather
$$;
COMMENT ON FUNCTION ootd.recent_titles(date) IS
    'Titles each archetype x weather served in the 3 days before a day, most recent first: what its nightly prompt must not repeat.';

CREATE OR REPLACE FUNCTION ootd.record_llm_request(p_pool_date date, p_cluster_id text, p_provider text, p_kind text,
                                        p_model text, p_attempt integer)
RETURNS bigint
LANGUAGE sql
AS $$
    INSERT INTO ootd.llm_calls (pool_date, cluster_id, provider, kind, model, attempt, status)
    VALUES (p_pool_date, p_cluster_id, p_provider, p_kind, p_model, p_attempt, 'sent')
    RETURNING id
$$;
COMMENT ON FUNCTION ootd.record_llm_request(date, text, text, text, text, integer) IS
    'Ledger row (status sent) of an LLM request about to be sent; returns its id.';

CREATE OR REPLACE FUNCTION ootd.record_llm_calls(p_pool_date date, p_cluster_id text, p_calls jsonb)
RETURNS integer
LANGUAGE sql
AS $$
    WITH calls AS (
        SELECT c.*
        FROM jsonb_to_recordset(p_calls) AS c(id bigint, provider text, kind text, model text, attempt smallint,
                                              status text, http_status integer, prompt_tokens integer,
                                              completion_tokens integer, latency_ms double precision, error text)
    ), finished AS (
        UPDATE ootd.llm_calls l
        SET status = c.status, http_status = c.http_status, prompt_tokens = coalesce(c.prompt_tokens, 0),
            completion_tokens = coalesce(c.completion_tokens, 0), latency_ms = c.latency_ms, error = c.error
        FROM calls c
        WHERE l.id = c.id AND l.pool_date = p_pool_date AND l.cluster_id = p_cluster_id
        RETURNING 1
    ), inserted AS (
        INSERT INTO ootd.llm_calls (pool_date, cluster_id, provider, kind, model, attempt, status, http_status,
                                    prompt_tokens, completion_tokens, latency_ms, error)
        SELECT p_pool_date, p_cluster_id, c.provider, c.kind, c.model, c.attempt, c.status, c.http_status,
               coalesce(c.prompt_tokens, 0), coalesce(c.completion_tokens, 0), c.latency_ms, c.error
        FROM calls c
        WHERE c.id IS NULL
        RETURNING 1
    )
    SELECT ((SELECT count(*) FROM finished) + (SELECT count(*) FROM inserted))::integer
$$;
COMMENT ON FUNCTION ootd.record_llm_calls(date, text, jsonb) IS
    'Finish (by id) or append the LLM ledger rows of a cluster''s requests; returns rows written.';

CREATE OR REPLACE FUNCTION ootd.pool_catalog(p_pool_date date DEFAULT NULL)
RETURNS TABLE (pool_date date, cluster_id text, archetype text, weather text, members integer)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.pool_date, p.cluster_id, p.archetype, p.weather, p.members
    FROM ootd.pools p
    WHERE p.pool_date = coalesce(p_pool_date, (SELECT max(q.pool_date) FROM ootd.pools q))
    ORDER BY p.archetype, p.weather
$$;
COMMENT ON FUNCTION ootd.pool_catalog(date) IS 'The pools of a date (default: the latest): cluster, archetype, weather, members.';

CREATE OR REPLACE FUNCTION ootd.llm_calls_since(p_since timestamptz)
RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*) FROM ootd.llm_calls c WHERE c.called_at >= p_since
$$;
COMMENT ON FUNCTION ootd.llm_calls_since(timestamptz) IS 'LLM requests recorded in ootd.llm_calls since an instant.';

CREATE OR REPLACE FUNCTION ootd._closest_cities(p_name text)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT regexp_replace(string_agg(m.name, ', ' ORDER BY m.similarity DESC, m.name), ', ([^,]*)$', ' or \1')
    FROM (SELECT c.name, ootd._name_similarity(c.name, p_name) AS similarity
          FROM ootd.cities c
          ORDER BY 2 DESC, 1
          LIMIT 3) m
    WHERE m.similarity >= 0.5
$$;
COMMENT ON FUNCTION ootd._closest_cities(text) IS
    'Private: up to three city names closest to a misspelt one, as "A, B or C" (NULL if none is close).';

CREATE OR REPLACE FUNCTION ootd._rank_colors(p_user_id bigint, p_affinity jsonb, p_limit integer)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(jsonb_agg(t.key ORDER BY t.strength DESC, t.last_liked DESC NULLS LAST, t.key), '[]')
    FROM (SELECT e.key, e.value::numeric AS strength, rl.last_liked
          FROM jsonb_each(p_affinity) e
          LEFT JOIN (SELECT x.color, max(l.liked_at) AS last_liked
                     FROM ootd.likes l JOIN ootd.outfits x ON x.id = l.outfit_id
                     WHERE l.user_id = p_user_id
                     GROUP BY x.color) rl ON rl.color = e.key
          ORDER BY e.value::numeric DESC, rl.last_liked DESC NULLS LAST, e.key
          LIMIT p_limit) t
$$;
COMMENT ON FUNCTION ootd._rank_colors(bigint, jsonb, integer) IS
    'Private: preferred_colors from color_affinity: by strength, latest like, name; p_limit at most.';

CREATE OR REPLACE FUNCTION ootd._context(p_user_id bigint, p_city text, p_timezone text, p_dna jsonb, p_rules jsonb,
                              p_taste public.vector, p_liked bigint[], p_at timestamptz, p_cluster_id text)
RETURNS SETOF ootd.serving_context
LANGUAGE sql STABLE
AS $$
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
    LEFT JOIN ootd.weather_conditions wc ON wc.name = p.weather      -- the served pool's, not the user's
$$;
COMMENT ON FUNCTION ootd._context(bigint, text, text, jsonb, jsonb, public.vector, bigint[], timestamptz, text) IS
    'Private: a profile at an instant as the ranking sees it (local time, priority daypart, pool, likes, headline parts).';

CREATE OR REPLACE FUNCTION ootd._serving_context(p_user_id bigint, p_at timestamptz)
RETURNS SETOF ootd.serving_context
LANGUAGE sql STABLE
AS $$
    SELECT x.*
    FROM ootd.users u
    CROSS JOIN LATERAL ootd._context(u.id, u.city, u.timezone, u.style_dna, u.style_rules, u.taste, NULL, p_at, NULL) x
    WHERE u.id = p_user_id
$$;
COMMENT ON FUNCTION ootd._serving_context(bigint, timestamptz) IS
    'Private: a stored user at an instant (ootd._context; inlined into ootd._ranked).';

CREATE OR REPLACE FUNCTION ootd._rank(p_user_id bigint, p_dna jsonb, p_rules jsonb, p_taste public.vector, p_liked bigint[],
                           p_local timestamp, p_local_date date, p_priority text, p_pool_date date,
                           p_cluster_id text, p_city text, p_weather_adjective text, w ootd.scoring_weights,
                           p_limit integer)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[], drawn_from text)
LANGUAGE sql STABLE
AS $$
    WITH liked AS (            -- once, not per candidate (and no sub-select inside x, which would stop inlining)
        SELECT coalesce(p_liked, ARRAY(SELECT k.outfit_id FROM ootd.likes k WHERE k.user_id = p_user_id)) AS ids
    ), c AS (
        SELECT c.*, array_remove(ARRAY[
                   CASE WHEN p_rules -> 'disliked_categories' ? c.category THEN 'disliked_categories:' || c.category END,
                   CASE WHEN p_rules -> 'disliked_colors' ? c.color THEN 'disliked_colors:' || c.color END],
                   NULL) AS violations,
               c.outfit_id = ANY (l.ids) AS liked
        FROM liked l CROSS JOIN ootd._pool_rows(p_pool_date, p_cluster_id, p_priority, w.neighbour_pools) c
    ), relaxed AS (
        SELECT CASE WHEN count(*) FILTER (WHERE cardinality(c.violations) = 0) >= least(p_limit, count(*))
                    THEN '{}'::text[]
                    ELSE ootd._relax_vetoes((SELECT jsonb_agg(to_jsonb(v.violations)) FROM c v), p_limit) END AS rules
        FROM c                 -- (the sub-select runs only when some rule must be relaxed)
    ), scored AS (             -- fixed-width sort keys first: the sorts below deform them for every comparison
        SELECT c.violations <@ r.rules AS served, cardinality(c.violations) = 0 AS clean,
               c.daypart = p_priority AS priority, p.score, c.outfit_id, p.color_boost, p.category_boost,
               p.affinity_boost, p.liked_penalty, p.cosine, p.daypart_bonus, p.jitter, c.category, c.color,
               c.title, c.daypart, c.violations, c.source, c.drawn_from, r.rules AS relaxed_rules
        FROM c CROSS JOIN relaxed r
        CROSS JOIN LATERAL ootd._score(w, p_user_id, p_dna, p_rules, p_taste, p_local_date, p_priority,
                                       c.liked, c.outfit_id, c.category, c.color, c.daypart, c.embedding) p
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
        SELECT (array_agg(r.drawn_from ORDER BY r.rank))[1] AS first_pool,
               ootd._occasion(p_local, array_agg(r.daypart ORDER BY r.rank)) AS occasion
        FROM ranked r
        WHERE r.rank <= p_limit
    ), headline AS (
        SELECT ootd._headline(p_weather_adjective, a.adjective, h.occasion, p_city) AS text
        FROM head h
        LEFT JOIN ootd.pools p ON p.pool_date = p_pool_date AND p.cluster_id = h.first_pool
        LEFT JOIN ootd.archetypes a ON a.name = p.archetype
    )
    SELECT r.rank, r.outfit_id, r.title, r.category, r.color, r.daypart, r.violations, r.priority,
           r.color_boost, r.category_boost, r.affinity_boost, r.liked_penalty, r.cosine, r.daypart_bonus,
           r.jitter, r.score, h.text, p_cluster_id, p_pool_date, r.source, r.relaxed_rules, r.drawn_from
    FROM ranked r CROSS JOIN headline h
$$;
COMMENT ON FUNCTION ootd._rank(bigint, jsonb, jsonb, public.vector, bigint[], timestamp, date, text, date, text, text, text,
                               ootd.scoring_weights, integer) IS
    'Private: every candidate with each score component and its rank (NULL = vetoed), and the headline; the ranking''s one home.';

CREATE OR REPLACE FUNCTION ootd._ranked(p_user_id bigint, p_at timestamptz, p_limit integer)
RETURNS TABLE (rank integer, outfit_id bigint, title text, category text, color text, daypart text,
               vetoed_by text[], priority boolean, color_boost double precision,
               category_boost double precision, affinity_boost double precision,
               liked_penalty double precision, cosine double precision, daypart_bonus double precision,
               jitter double precision, score double precision, headline text, cluster_id text,
               pool_date date, source text, relaxed_rules text[], drawn_from text)
LANGUAGE sql STABLE
AS $$
    WITH x AS MATERIALIZED (   -- once: flattened, its expressions would be evaluated for every candidate
        SELECT * FROM ootd._serving_context(p_user_id, p_at)
    )
    SELECT r.*
    FROM x
    CROSS JOIN ootd.scoring_weights w
    CROSS JOIN LATERAL ootd._rank(x.user_id, x.dna, x.rules, x.taste, x.liked, x.local, x.local_date, x.priority_daypart,
                                  x.pool_date, x.cluster_id, x.city, x.weather_adjective, w, p_limit) r
$$;
COMMENT ON FUNCTION ootd._ranked(bigint, timestamptz, integer) IS
    'Private: ootd._rank of a stored user at an instant with the weights in force (what ootd.feed serves).';

CREATE OR REPLACE FUNCTION ootd._profile_problem(p_profile jsonb)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(p_profile) IS DISTINCT FROM 'object' THEN 'profile must be a JSON object'
        WHEN p_profile - '{user_id,city,style_dna,style_rules,taste,liked_outfits}'::text[] <> '{}' THEN
            format('profile has unknown key %s (known: user_id, city, style_dna, style_rules, taste, liked_outfits)',
                   jsonb_path_query_first(p_profile - '{user_id,city,style_dna,style_rules,taste,liked_outfits}'::text[],
                                          '$.keyvalue().key'))
        WHEN jsonb_typeof(p_profile -> 'city') IS DISTINCT FROM 'string' THEN 'profile.city must be a city name'
        WHEN NOT EXISTS (SELECT 1 FROM ootd.cities c WHERE lower(c.name) = lower(p_profile ->> 'city')) THEN
            format('unknown city %s', p_profile -> 'city')
        WHEN p_profile ? 'user_id' AND NOT jsonb_path_exists(p_profile, '$.user_id ? (@.type() == "number" && @ == @.floor())')
            THEN 'profile.user_id must be an integer'
        WHEN jsonb_typeof(p_profile -> 'taste') NOT IN ('null', 'array')
             OR (jsonb_typeof(p_profile -> 'taste') = 'array'
                 AND (jsonb_array_length(p_profile -> 'taste') <> 32
                      OR jsonb_path_exists(p_profile, '$.taste[*] ? (@.type() != "number")'))) THEN
            'profile.taste must be null or an array of 32 numbers'
        WHEN jsonb_typeof(p_profile -> 'liked_outfits') NOT IN ('null', 'array')
             OR jsonb_path_exists(p_profile, '$.liked_outfits[*] ? (@.type() != "number" || @ != @.floor())') THEN
            'profile.liked_outfits must be an array of outfit ids'
        ELSE coalesce(
            ootd._style_shape_problem(coalesce(p_profile -> 'style_dna', '{}'), coalesce(p_profile -> 'style_rules', '{}')),
            ootd._style_vocabulary_problem(coalesce(p_profile -> 'style_dna', '{}'),
                                           coalesce(p_profile -> 'style_rules', '{}'), ootd.vocabulary()))
    END
$$;
COMMENT ON FUNCTION ootd._profile_problem(jsonb) IS
    'Private: NULL if a what-if profile is valid (city, style_dna, style_rules, taste, liked_outfits), else the first problem.';

CREATE OR REPLACE FUNCTION ootd.user_profile(p_user_id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_user(p_user_id);
    RETURN (SELECT jsonb_build_object('user_id', u.id, 'city', u.city, 'style_dna', u.style_dna,
                                      'style_rules', u.style_rules, 'taste', u.taste::text::jsonb,
                                      'liked_outfits', to_jsonb(ARRAY(SELECT k.outfit_id FROM ootd.likes k
                                                                      WHERE k.user_id = u.id ORDER BY k.outfit_id)))
            FROM ootd.users u WHERE u.id = p_user_id);
END
$$;
COMMENT ON FUNCTION ootd.user_profile(bigint) IS
    'A stored user as a what-if profile for ootd.simulate (city, style_dna, style_rules, taste, liked_outfits).';

CREATE OR REPLACE FUNCTION ootd._evaluation_sample(p_users integer)
RETURNS bigint[]
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(array_agg(s.id ORDER BY s.h, s.id), '{}')
    FROM (SELECT u.id, hashint8(u.id) AS h FROM ootd.users u ORDER BY hashint8(u.id), u.id LIMIT p_users) s
$$;
COMMENT ON FUNCTION ootd._evaluation_sample(integer) IS
    'Private: the evaluation''s deterministic sample, the first n users by hashint8(id).';

CREATE OR REPLACE FUNCTION ootd._evaluate_feed(p_user_id bigint, p_at timestamptz, p_k integer)
RETURNS SETOF ootd.evaluation_feed
LANGUAGE sql STABLE
AS $$
    WITH r AS (
        SELECT * FROM ootd._ranked(p_user_id, p_at, p_k)
    ), f AS (
        SELECT r.cluster_id, r.pool_date, r.headline, r.relaxed_rules, count(*)::integer AS pool_size
        FROM r GROUP BY r.cluster_id, r.pool_date, r.headline, r.relaxed_rules
    ), u AS (
        SELECT u.id, u.style_dna AS dna, u.style_rules AS rules, u.taste, t.local,
               (SELECT w.condition FROM ootd.weather_daily w
                WHERE w.city = u.city AND w.day <= t.local::date ORDER BY w.day DESC LIMIT 1) AS weather
        FROM ootd.users u CROSS JOIN LATERAL (SELECT p_at AT TIME ZONE u.timezone AS local) t
        WHERE u.id = p_user_id
    ), pools AS (
        SELECT f.pool_date, f.cluster_id FROM f
        UNION
        SELECT p.pool_date, p.cluster_id FROM ootd.pools p, u WHERE p.pool_date = u.local::date AND p.weather = u.weather
    ), ids AS (
        SELECT o.id FROM pools p JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id
        UNION
        SELECT r.outfit_id FROM r
    ), c AS (
        SELECT o.id, o.category, o.color, o.daypart, o.embedding,
               o.id IN (SELECT r.outfit_id FROM r) AS own,
               NOT ootd._vetoed(u.rules, f.relaxed_rules, o.category, o.color) AS admissible,
               greatest(ootd._outfit_score(w, u.id, u.dna, u.rules, u.taste, u.local,
                                           EXISTS (SELECT 1 FROM ootd.likes k WHERE k.user_id = u.id AND k.outfit_id = o.id),
                                           o.id, o.category, o.color, o.daypart, o.embedding), 0) AS gain
        FROM ids JOIN ootd.outfits o ON o.id = ids.id
        CROSS JOIN u CROSS JOIN f CROSS JOIN ootd.scoring_weights w
    ), s AS (                -- scalar lookups: a join lets the planner hash c on a wild row estimate
        SELECT r.rank, r.outfit_id, r.category, r.color, r.daypart,
               (SELECT c.gain FROM c WHERE c.id = r.outfit_id) AS gain,
               (SELECT c.embedding FROM c WHERE c.id = r.outfit_id) AS embedding
        FROM r
        WHERE r.rank <= p_k
    ), ideal AS (
        SELECT ootd._dcg(ARRAY(SELECT c.gain FROM c WHERE c.admissible ORDER BY c.gain DESC LIMIT p_k)) AS oracle,
               ootd._dcg(ARRAY(SELECT c.gain FROM c WHERE c.admissible AND c.own ORDER BY c.gain DESC LIMIT p_k)) AS pool
    )
    SELECT u.id, u.local::time, p_at, p_k, f.cluster_id, f.pool_date, f.headline, f.relaxed_rules,
           ARRAY(SELECT s.outfit_id FROM s ORDER BY s.rank),
           ARRAY(SELECT s.category FROM s ORDER BY s.rank),
           ARRAY(SELECT s.color FROM s ORDER BY s.rank),
           ARRAY(SELECT s.daypart FROM s ORDER BY s.rank),
           f.pool_size,
           (SELECT count(*) FROM s WHERE ootd._vetoed(u.rules, f.relaxed_rules, s.category, s.color))::integer,
           EXISTS (SELECT 1 FROM s WHERE s.daypart <> ootd._headline_occasion(f.headline)),
           ootd._dcg(ARRAY(SELECT s.gain FROM s ORDER BY s.rank)) / nullif(i.oracle, 0),
           i.pool / nullif(i.oracle, 0),
           (SELECT avg(a.embedding OPERATOR(public.<=>) b.embedding) FROM s a JOIN s b ON a.rank < b.rank)
    FROM u CROSS JOIN f CROSS JOIN ideal i
$$;
COMMENT ON FUNCTION ootd._evaluate_feed(bigint, timestamptz, integer) IS
    'Private: one served feed measured: NDCG@k against the 1:1 oracle, pool ceiling, vetoes, headline, diversity.';

CREATE OR REPLACE FUNCTION ootd._taste_halves(p_day date)
RETURNS TABLE (user_id bigint, cluster_id text, archetype text, half integer, center public.vector)
LANGUAGE sql STABLE
AS $$
    WITH m AS (
        SELECT c.user_id, c.cluster_id, c.archetype, u.taste
        FROM ootd.user_clusters(p_day) c JOIN ootd.users u ON u.id = c.user_id
    ), mean AS (
        SELECT m.cluster_id, public.avg(m.taste) AS mean FROM m GROUP BY m.cluster_id
    ), pole AS (
        SELECT DISTINCT ON (m.cluster_id) m.cluster_id, m.taste OPERATOR(public.-) a.mean AS axis
        FROM m JOIN mean a ON a.cluster_id = m.cluster_id
        WHERE m.taste IS NOT NULL
        ORDER BY m.cluster_id, m.taste OPERATOR(public.<->) a.mean DESC, m.user_id
    ), h AS (
        SELECT m.user_id, m.cluster_id, m.archetype, m.taste,
               coalesce(((m.taste OPERATOR(public.-) a.mean) OPERATOR(public.<#>) p.axis) < 0, false)::integer AS half
        FROM m JOIN mean a ON a.cluster_id = m.cluster_id LEFT JOIN pole p ON p.cluster_id = m.cluster_id
    )
    SELECT h.user_id, h.cluster_id, h.archetype, h.half,
           public.avg(h.taste) OVER (PARTITION BY h.cluster_id, h.half)
    FROM h
$$;
COMMENT ON FUNCTION ootd._taste_halves(date) IS
    'Private: each clustered user''s taste half of their archetype x weather cluster (one 2-means step) and the half''s mean taste.';

CREATE OR REPLACE FUNCTION ootd._sweep_pools(p_day date, p_clustering text, p_half integer DEFAULT 0)
RETURNS TABLE (cluster_id text, label text, outfit_id bigint)
LANGUAGE sql STABLE
AS $$
    WITH top AS (
        SELECT DISTINCT ON (p.archetype) p.archetype, p.cluster_id
        FROM ootd.pools p
        WHERE p.pool_date = p_day
        ORDER BY p.archetype, p.members DESC, p.cluster_id
    ), centers AS (
        SELECT DISTINCT ON (h.cluster_id) h.cluster_id, h.center
        FROM ootd._taste_halves(p_day) h
        WHERE p_clustering = 'taste' AND h.half = p_half AND h.center IS NOT NULL
        ORDER BY h.cluster_id
    ), shape AS (
        SELECT o.cluster_id, o.daypart, count(*) AS n
        FROM ootd.outfits o WHERE o.pool_date = p_day GROUP BY o.cluster_id, o.daypart
    ), near AS (
        SELECT p.cluster_id, o.id, s.n,
               row_number() OVER (PARTITION BY p.cluster_id, o.daypart
                                  ORDER BY o.embedding OPERATOR(public.<=>) c.center, o.id) AS r
        FROM ootd.pools p
        JOIN centers c ON c.cluster_id = p.cluster_id
        JOIN ootd.pools q ON q.pool_date = p.pool_date AND q.weather = p.weather
        JOIN ootd.outfits o ON o.pool_date = q.pool_date AND o.cluster_id = q.cluster_id
        JOIN shape s ON s.cluster_id = p.cluster_id AND s.daypart = o.daypart
        WHERE p.pool_date = p_day
    )
    SELECT p.cluster_id, t.cluster_id, o.id
    FROM ootd.pools p
    JOIN top t ON t.archetype = p.archetype
    JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = t.cluster_id
    WHERE p_clustering = 'archetype' AND p.pool_date = p_day
    UNION ALL
    SELECT n.cluster_id, n.cluster_id || '/' || p_half, n.id FROM near n WHERE n.r <= n.n
    UNION ALL
    SELECT o.cluster_id, o.cluster_id || '/' || p_half, o.id
    FROM ootd.outfits o
    WHERE p_clustering = 'taste' AND o.pool_date = p_day
      AND NOT EXISTS (SELECT 1 FROM centers c WHERE c.cluster_id = o.cluster_id)
$$;
COMMENT ON FUNCTION ootd._sweep_pools(date, text, integer) IS
    'Private: the outfits standing in for each pool of a day in a sweep (archetype: its largest pool; taste: the half''s nearest same-weather outfits) and the cluster label.';

CREATE OR REPLACE FUNCTION ootd._weather_mismatch(p_feeds ootd.evaluation_feed[], p_day date)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(jsonb_object_agg('weather_mismatch_share@' || t.k, t.share), '{}')
    FROM (SELECT f.k, avg((p.weather IS DISTINCT FROM wx.condition)::integer)::double precision AS share
          FROM unnest(p_feeds) f
          CROSS JOIN unnest(f.items) i(item)
          JOIN ootd.outfits o ON o.id = i.item
          JOIN ootd.pools p ON p.pool_date = o.pool_date AND p.cluster_id = o.cluster_id
          JOIN ootd.users u ON u.id = f.user_id
          LEFT JOIN LATERAL (SELECT w.condition FROM ootd.weather_daily w
                             WHERE w.city = u.city AND w.day <= p_day ORDER BY w.day DESC LIMIT 1) wx ON true
          GROUP BY f.k) t
$$;
COMMENT ON FUNCTION ootd._weather_mismatch(ootd.evaluation_feed[], date) IS
    'Private: per k, the share of served items generated for another weather than the user''s.';

DROP FUNCTION ootd._archetype_of(jsonb);
DROP FUNCTION ootd._cluster_id(date, text, text);

-- scoring weights
ALTER TABLE ootd.scoring_weights DROP CONSTRAINT scoring_weights_in_range;

CREATE OR REPLACE FUNCTION ootd._weights_problem(w ootd.scoring_weights)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        (SELECT format('%s must be %s, got %s', r.name,
                       CASE WHEN r.max_value IS NOT NULL THEN format('between %s and %s', r.min_value, r.max_value)
                            WHEN r.min_inclusive THEN format('>= %s', r.min_value)
                            ELSE format('> %s', r.min_value) END,
                       coalesce(v.value::text, 'NULL'))
         FROM ootd._weight_ranges() WITH ORDINALITY AS r(name, min_value, min_inclusive, max_value, n)
         CROSS JOIN LATERAL (SELECT (to_jsonb(w) ->> r.name)::double precision AS value) v
         WHERE v.value IS NULL OR v.value < r.min_value OR (v.value = r.min_value AND NOT r.min_inclusive)
            OR v.value > r.max_value
         ORDER BY r.n LIMIT 1),
        CASE WHEN w.neighbour_pools IS NULL THEN 'neighbour_pools must be true or false' END)
$$;
COMMENT ON FUNCTION ootd._weights_problem(ootd.scoring_weights) IS
    'Private: NULL if every scoring weight is in range (ootd._weight_ranges), else the first problem.';

ALTER TABLE ootd.scoring_weights ADD CONSTRAINT scoring_weights_in_range CHECK (ootd._weights_problem(scoring_weights) IS NULL);

DROP FUNCTION ootd._weights_doc_problem(jsonb);

-- likes
CREATE FUNCTION ootd._learn_from_likes()
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
BEGIN
    SELECT count(*), min(c.user_id), min(c.outfit_id) INTO v_rows, v_user, v_outfit FROM changed c;
    IF v_rows = 0 THEN
        RETURN NULL;                   -- nothing changed (a repeated like)
    ELSIF v_rows = 1 AND v_sign > 0 THEN
        -- One like: ootd._fold_likes' arithmetic for one outfit, as one UPDATE of the row it reads.
        UPDATE ootd.users p
        SET (style_dna, taste, taste_norm, likes_count, updated_at) = (
            SELECT p.style_dna || jsonb_build_object(
                       'color_affinity', jsonb_set(z.seeded, ARRAY[x.color], to_jsonb(trim_scale(z.strength))),
                       'preferred_colors', ootd._place_color(coalesce(p.style_dna -> 'preferred_colors', '[]'),
                                                             z.seeded, x.color, z.strength),
                       'category_affinity',
                           jsonb_set(coalesce(p.style_dna -> 'category_affinity', '{}'), ARRAY[x.category],
                                     to_jsonb(coalesce((p.style_dna -> 'category_affinity' ->> x.category)::numeric, 0) + 1)),
                       'vibe',  ootd._stored_mean(ootd._mean_step(coalesce((p.style_dna ->> 'vibe')::float8, 0.5), z.w, x.vibe, 1)),
                       'trend', ootd._stored_mean(ootd._mean_step(coalesce((p.style_dna ->> 'trend')::float8, 0.5), z.w, x.trend, 1)),
                       'dare',  ootd._stored_mean(ootd._mean_step(coalesce((p.style_dna ->> 'dare')::float8, 0.5), z.w, x.dare, 1))),
                   CASE WHEN public.vector_norm(z.total) > 1e-6 THEN public.l2_normalize(z.total) ELSE p.taste END,
                   CASE WHEN public.vector_norm(z.total) > 1e-6 THEN public.vector_norm(z.total) / (z.w + 1)
                        ELSE p.taste_norm END,
                   p.likes_count + 1,
                   now()
            FROM ootd.outfits x,
                 LATERAL (SELECT 1 + p.likes_count::float8 AS w, s.seeded,
                                 coalesce((s.seeded ->> x.color)::numeric, 0) + 1 AS strength,
                                 CASE WHEN p.taste IS NULL THEN x.embedding
                                      ELSE p.taste OPERATOR(public.*)
                                           array_fill(((1 + p.likes_count::float8) * p.taste_norm)::real,
                                                      ARRAY[public.vector_dims(p.taste)])::public.vector
                                           OPERATOR(public.+) x.embedding END AS total
                          FROM (SELECT coalesce(p.style_dna -> 'color_affinity',
                                                ootd._seed_colors(p.style_dna -> 'preferred_colors')) AS seeded) s
                          OFFSET 0) z              -- evaluated once, not once per use
            WHERE x.id = v_outfit)
        WHERE p.id = v_user;
        RETURN NULL;
    END IF;
    FOR r IN
        SELECT c.user_id, array_agg(x ORDER BY c.liked_at, c.outfit_id) AS outfits
        FROM changed c JOIN ootd.outfits x ON x.id = c.outfit_id
        GROUP BY c.user_id
        ORDER BY c.user_id              -- the same lock order in every statement: no deadlock
    LOOP
        PERFORM ootd._fold_likes(r.user_id, r.outfits, v_sign);
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._learn_from_likes() IS
    'Private trigger: folds liked (or unliked) outfits into the user''s style_dna and taste; no lost updates, no deadlocks.';

CREATE OR REPLACE FUNCTION ootd.like(p_user_id bigint, p_outfit_id bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_like_target(p_user_id, p_outfit_id);
    INSERT INTO ootd.likes (user_id, outfit_id) VALUES (p_user_id, p_outfit_id)
    ON CONFLICT (user_id, outfit_id) DO NOTHING;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION ootd.like(bigint, bigint) IS
    'Like an outfit: true if new, false if already liked; updates style_dna and taste in the same transaction.';

CREATE OR REPLACE FUNCTION ootd.unlike(p_user_id bigint, p_outfit_id bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ootd._check_like_target(p_user_id, p_outfit_id);
    DELETE FROM ootd.likes l WHERE l.user_id = p_user_id AND l.outfit_id = p_outfit_id;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION ootd.unlike(bigint, bigint) IS
    'Take a like back: true if the user had liked the outfit; reverses its effect on style_dna and taste.';

DROP FUNCTION ootd._learn_like(bigint, bigint);

CREATE TRIGGER likes_learn_insert
    AFTER INSERT ON ootd.likes
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._learn_from_likes();

CREATE TRIGGER likes_learn_delete
    AFTER DELETE ON ootd.likes
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._learn_from_likes();

-- users
ALTER TABLE ootd.users DROP CONSTRAINT users_profile_valid;
DROP FUNCTION ootd._user_is_valid(bigint, text, jsonb, jsonb);
DROP FUNCTION ootd._reject_user(bigint, text, text);
DROP FUNCTION ootd.refresh_vocabulary();
DROP FUNCTION ootd._vocabulary_snapshot();

CREATE FUNCTION ootd._users_validate()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    bad     record;
    v_vocab jsonb;
BEGIN
    v_vocab := ootd.vocabulary();  -- once per statement, not per row
    SELECT n.id, n.timezone INTO bad
    FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM ootd.timezones t WHERE t.name = n.timezone)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'user %: invalid time zone "%": not an IANA time zone name', bad.id, bad.timezone
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use a name such as America/Los_Angeles (see ootd.timezones); POSIX strings like UTC+5 have reversed signs and are rejected.';
    END IF;

    SELECT s.id, s.problem INTO bad
    FROM (SELECT n.id, ootd._style_shape_problem(n.style_dna, n.style_rules) AS problem
          FROM new_rows n) s
    WHERE s.problem IS NOT NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'user %: %', bad.id, bad.problem
            USING ERRCODE = 'check_violation', TABLE = 'users', SCHEMA = 'ootd';
    END IF;

    SELECT s.id, s.problem INTO bad
    FROM (SELECT n.id, ootd._style_vocabulary_problem(n.style_dna, n.style_rules, v_vocab) AS problem
          FROM new_rows n) s
    WHERE s.problem IS NOT NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'user %: %', bad.id, bad.problem
            USING ERRCODE = 'foreign_key_violation', TABLE = 'users', SCHEMA = 'ootd',
                  HINT = 'Known names are listed by SELECT ootd.vocabulary();';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION ootd._users_validate() IS
    'Private trigger: validates time zone, style_dna and style_rules of every inserted/updated user, set-based.';

CREATE TRIGGER users_validate_insert
    AFTER INSERT ON ootd.users
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._users_validate();

-- An UPDATE made by another trigger (pg_trigger_depth() > 0: the likes
-- trigger, whose profile is computed from a validated row and from outfits
-- whose category and color reference the vocabulary) is not re-validated.
-- A WHEN clause, not a setting: no session can switch it.
CREATE TRIGGER users_validate_update
    AFTER UPDATE ON ootd.users
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (pg_trigger_depth() = 0)
    EXECUTE FUNCTION ootd._users_validate();

COMMENT ON COLUMN ootd.users.likes_count IS 'Current likes; with the stated profile as one more observation, the weight of the running means the likes trigger keeps.';

COMMENT ON FUNCTION ootd._style_shape_problem(jsonb, jsonb) IS
    'Private: NULL if style_dna/style_rules have a valid shape, else the first problem (used by the users triggers).';

-- ------------------------------------------------------------------- score --
-- ------------------------------------------------------------------ ranking --
-- ootd._score(weights, user, dna, rules, taste, local date, priority daypart,
-- liked, outfit, category, color, daypart, embedding): an outfit's score for
-- a user, component by component, and the total: preferred_color x
-- liked_category x (1 + category_affinity x ln(1 + affinity)) x liked_decay
-- (already liked) + cosine x cos(taste, embedding) + daypart_priority (the
-- priority daypart) + jitter.  The one home of the scoring formula: the feed
-- (ootd._ranked) and the evaluation's oracle use it.
CREATE OR REPLACE FUNCTION ootd._score(w ootd.scoring_weights, p_user_id bigint, p_dna jsonb, p_rules jsonb,
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

-- ---------------------------------------------------------------- shape --
-- ---------------------------------------------------------------- functions --
-- ootd._style_shape_problem(dna, rules): NULL when both documents have the
-- right shape, else a sentence naming the first problem.  One CASE
-- expression with no sub-selects, so the planner inlines it and validating a
-- million-row COPY costs a few C-level jsonb operations per row.
CREATE OR REPLACE FUNCTION ootd._style_shape_problem(p_dna jsonb, p_rules jsonb)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(p_dna) IS DISTINCT FROM 'object' THEN
            'style_dna must be a JSON object'
        WHEN jsonb_typeof(p_rules) IS DISTINCT FROM 'object' THEN
            'style_rules must be a JSON object'
        WHEN p_dna - '{archetype,preferred_colors,category_affinity,color_affinity,vibe,trend,dare}'::text[] <> '{}' THEN
            format('style_dna has unknown key %s (known: archetype, preferred_colors, category_affinity, color_affinity, vibe, trend, dare)',
                   jsonb_path_query_first(p_dna - '{archetype,preferred_colors,category_affinity,color_affinity,vibe,trend,dare}'::text[],
                                          '$.keyvalue().key'))
        WHEN p_rules - '{liked_categories,disliked_categories,disliked_colors}'::text[] <> '{}' THEN
            format('style_rules has unknown key %s (known: liked_categories, disliked_categories, disliked_colors)',
                   jsonb_path_query_first(p_rules - '{liked_categories,disliked_categories,disliked_colors}'::text[],
                                          '$.keyvalue().key'))
        WHEN p_dna ? 'archetype' AND jsonb_typeof(p_dna -> 'archetype') <> 'string' THEN
            'style_dna.archetype must be a string'
        WHEN p_dna ? 'preferred_colors' AND (jsonb_typeof(p_dna -> 'preferred_colors') <> 'array'
              OR jsonb_path_exists(p_dna, '$.preferred_colors[*] ? (@.type() != "string")')) THEN
            'style_dna.preferred_colors must be an array of color names'
        WHEN p_dna ? 'category_affinity' AND (jsonb_typeof(p_dna -> 'category_affinity') <> 'object'
              OR jsonb_path_exists(p_dna, '$.category_affinity.* ? (@.type() != "number" || @ < 0)')) THEN
            'style_dna.category_affinity must map category names to numbers >= 0'
        WHEN p_dna ? 'color_affinity' AND (jsonb_typeof(p_dna -> 'color_affinity') <> 'object'
              OR jsonb_path_exists(p_dna, '$.color_affinity.* ? (@.type() != "number" || @ < 0)')) THEN
            'style_dna.color_affinity must map color names to numbers >= 0'
        WHEN jsonb_path_exists(p_dna, '$.vibe ? (@.type() != "number" || @ < 0 || @ > 1)') THEN
            'style_dna.vibe must be a number between 0 and 1'
        WHEN jsonb_path_exists(p_dna, '$.trend ? (@.type() != "number" || @ < 0 || @ > 1)') THEN
            'style_dna.trend must be a number between 0 and 1'
        WHEN jsonb_path_exists(p_dna, '$.dare ? (@.type() != "number" || @ < 0 || @ > 1)') THEN
            'style_dna.dare must be a number between 0 and 1'
        WHEN p_rules ? 'liked_categories' AND (jsonb_typeof(p_rules -> 'liked_categories') <> 'array'
              OR jsonb_path_exists(p_rules, '$.liked_categories[*] ? (@.type() != "string")')) THEN
            'style_rules.liked_categories must be an array of category names'
        WHEN p_rules ? 'disliked_categories' AND (jsonb_typeof(p_rules -> 'disliked_categories') <> 'array'
              OR jsonb_path_exists(p_rules, '$.disliked_categories[*] ? (@.type() != "string")')) THEN
            'style_rules.disliked_categories must be an array of category names'
        WHEN p_rules ? 'disliked_colors' AND (jsonb_typeof(p_rules -> 'disliked_colors') <> 'array'
              OR jsonb_path_exists(p_rules, '$.disliked_colors[*] ? (@.type() != "string")')) THEN
            'style_rules.disliked_colors must be an array of color names'
        WHEN jsonb_path_exists(p_rules, '$.liked_categories[*] ? (@ == $.disliked_categories[*])') THEN
            format('category %s is both liked and disliked in style_rules',
                   jsonb_path_query_first(p_rules, '$.liked_categories[*] ? (@ == $.disliked_categories[*])'))
    END
$$;
COMMENT ON FUNCTION ootd._style_shape_problem(jsonb, jsonb) IS
    'Private: NULL if style_dna/style_rules have a valid shape, else the first problem (used by the users triggers).';

RESET ROLE;
