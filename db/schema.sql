-- =============================================================================
-- ootd: the schema, as it is today (the readable source of truth)
--
-- Edit this file in place.  Every change here also needs a new, frozen
-- Alembic revision under migrations/ that brings an existing database to the
-- same state; tests/test_migrations.py proves the two agree.
--
-- Sections, in this order:
--   1. Roles            6. Functions
--   2. Extensions       7. Views
--   3. Schema           8. Triggers
--   4. Reference data   9. Privileges
--   5. Core tables
-- Run as a superuser (CREATE EXTENSION vector needs one), or as a role with
-- CREATEROLE once the extension exists, inside one transaction.
-- =============================================================================


-- =============================================================================
-- 1. Roles (cluster-wide; created once, shared by every ootd database)
--   ootd_owner    NOLOGIN, owns every object; nobody logs in as it.
--   ootd_api      executes the few functions the HTTP API needs; no table access.
--   ootd_batch    the nightly batch: reads users, writes pools and the LLM ledger.
--   ootd_analyst  read-only on every table and view.
-- Login roles are the DBA's: e.g. CREATE ROLE api_login LOGIN IN ROLE ootd_api.
-- =============================================================================
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['ootd_owner', 'ootd_api', 'ootd_batch', 'ootd_analyst'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    -- The installing role must be able to SET ROLE ootd_owner below.
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT ootd_owner TO %I', current_user);
    END IF;
END
$roles$;


-- =============================================================================
-- 2. Extensions
-- =============================================================================
CREATE EXTENSION IF NOT EXISTS vector;


-- =============================================================================
-- 3. Schema (everything below is created by, and owned by, ootd_owner)
-- =============================================================================
CREATE SCHEMA ootd AUTHORIZATION ootd_owner;
COMMENT ON SCHEMA ootd IS 'Outfit-of-the-day feeds at O(K) LLM cost: pools per style cluster, served by ootd.feed().';

SET ROLE ootd_owner;

-- Nothing ootd_owner creates is executable by PUBLIC unless granted below.
ALTER DEFAULT PRIVILEGES FOR ROLE ootd_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE ootd_owner IN SCHEMA ootd GRANT SELECT ON TABLES TO ootd_analyst;


-- =============================================================================
-- 4. Reference data
-- =============================================================================

-- IANA zone names this server knows, minus POSIX-style and offset-only names
-- (UTC+5, EST5EDT, Etc/GMT+5: their sign conventions are reversed and they
-- carry no daylight-saving rules for a place).  Filled from pg_timezone_names
-- when the schema is installed.
CREATE TABLE ootd.timezones (
    name text PRIMARY KEY
);
COMMENT ON TABLE ootd.timezones IS 'Accepted IANA time zone names (region/city form, plus UTC).';

INSERT INTO ootd.timezones (name)
SELECT name
FROM pg_catalog.pg_timezone_names
WHERE name !~ '^(posix|right)/'
  AND name !~ '^Etc/GMT[+-]'
  AND name !~ '^[A-Z]{3,4}[0-9+-]'
  AND name NOT IN ('Factory', 'posixrules', 'localtime');

CREATE TABLE ootd.archetypes (
    name      text PRIMARY KEY CHECK (name ~ '^[A-Z][A-Za-z]+$'),
    adjective text NOT NULL,
    keywords  text[] NOT NULL
);
COMMENT ON TABLE ootd.archetypes IS 'Style archetypes; adjective is what a headline says ("A breezy minimalist look...").';

INSERT INTO ootd.archetypes (name, adjective, keywords) VALUES
    ('Minimal',    'minimalist',   '{clean,tailored,monochrome,structured,understated}'),
    ('Classic',    'classic',      '{timeless,tailored,polished,elegant,refined}'),
    ('Casual',     'laid-back',    '{relaxed,comfortable,easy,soft,everyday}'),
    ('Streetwear', 'street-smart', '{oversized,graphic,urban,bold,sneaker}'),
    ('Bohemian',   'boho',         '{flowing,earthy,layered,embroidered,relaxed}'),
    ('Romantic',   'romantic',     '{soft,delicate,floral,feminine,flowing}'),
    ('Edgy',       'edgy',         '{leather,dark,bold,studded,sharp}'),
    ('Sporty',     'sporty',       '{athletic,technical,comfortable,sleek,active}'),
    ('Preppy',     'preppy',       '{polished,collegiate,crisp,tailored,classic}'),
    ('Glam',       'glamorous',    '{sequined,luxe,bold,statement,shimmering}');

CREATE TABLE ootd.categories (
    name    text PRIMARY KEY CHECK (name ~ '^[A-Z][A-Za-z-]+$'),
    garment text NOT NULL CHECK (garment IN ('one-piece', 'top', 'bottom', 'outerwear')),
    warmth  smallint NOT NULL CHECK (warmth BETWEEN 0 AND 3)
);
COMMENT ON TABLE ootd.categories IS 'Garment categories an outfit''s hero piece belongs to (the unit of a veto).';

INSERT INTO ootd.categories (name, garment, warmth) VALUES
    ('Dress',      'one-piece', 1),
    ('Jumpsuit',   'one-piece', 1),
    ('Suit',       'one-piece', 2),
    ('Top',        'top',       0),
    ('Shirt',      'top',       1),
    ('Knitwear',   'top',       2),
    ('Skirt',      'bottom',    1),
    ('Trousers',   'bottom',    2),
    ('Jeans',      'bottom',    2),
    ('Shorts',     'bottom',    0),
    ('Blazer',     'outerwear', 2),
    ('Jacket',     'outerwear', 2),
    ('Coat',       'outerwear', 3),
    ('Activewear', 'one-piece', 1);

CREATE TABLE ootd.colors (
    name   text PRIMARY KEY CHECK (name ~ '^[A-Z][A-Za-z]+$'),
    hex    text NOT NULL CHECK (hex ~ '^#[0-9a-f]{6}$'),
    family text NOT NULL CHECK (family IN ('neutral', 'warm', 'cool'))
);
COMMENT ON TABLE ootd.colors IS 'Colors an outfit''s hero piece can have.';

INSERT INTO ootd.colors (name, hex, family) VALUES
    ('Black',    '#111111', 'neutral'),
    ('White',    '#f7f7f5', 'neutral'),
    ('Ivory',    '#f3efe0', 'neutral'),
    ('Beige',    '#d8c8a8', 'neutral'),
    ('Camel',    '#c19a6b', 'warm'),
    ('Brown',    '#6b4a2e', 'warm'),
    ('Grey',     '#8a8d91', 'neutral'),
    ('Navy',     '#1f2a44', 'cool'),
    ('Blue',     '#3a6ea5', 'cool'),
    ('Green',    '#3b7a57', 'cool'),
    ('Olive',    '#6b6b3a', 'warm'),
    ('Red',      '#b3202a', 'warm'),
    ('Burgundy', '#6d1a36', 'warm'),
    ('Pink',     '#e8a0b4', 'warm'),
    ('Yellow',   '#e8c547', 'warm'),
    ('Orange',   '#d9702b', 'warm'),
    ('Purple',   '#6a4c93', 'cool'),
    ('Lavender', '#b8a9d9', 'cool'),
    ('Silver',   '#c0c0c8', 'cool'),
    ('Gold',     '#c9a227', 'warm');

-- Four broad conditions keep K bounded: 10 archetypes x 4 conditions = at most
-- 40 clusters a day, however many users there are.
CREATE TABLE ootd.weather_conditions (
    name      text PRIMARY KEY CHECK (name ~ '^[A-Z][A-Za-z]+$'),
    adjective text NOT NULL,
    keywords  text[] NOT NULL
);
COMMENT ON TABLE ootd.weather_conditions IS 'Weather conditions used in cluster ids; adjective is what a headline says.';

INSERT INTO ootd.weather_conditions (name, adjective, keywords) VALUES
    ('Sunny', 'sun-ready',  '{light,breathable,linen,bright,airy}'),
    ('Windy', 'breezy',     '{layered,secure,light-jacket,structured,crisp}'),
    ('Rainy', 'rain-ready', '{water-resistant,trench,boots,layered,practical}'),
    ('Cold',  'cozy',       '{wool,knit,insulated,layered,warm}');

CREATE TABLE ootd.cities (
    name         text PRIMARY KEY,
    country      text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    timezone     text NOT NULL REFERENCES ootd.timezones (name),
    latitude     double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude    double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    population_k integer NOT NULL CHECK (population_k > 0)
);
COMMENT ON TABLE ootd.cities IS 'Cities users live in: weather is looked up per city; headlines name the city.';
COMMENT ON COLUMN ootd.cities.population_k IS 'Approximate metro population in thousands (weights synthetic users).';
CREATE UNIQUE INDEX cities_lower_name_key ON ootd.cities (lower(name));

INSERT INTO ootd.cities (name, country, timezone, latitude, longitude, population_k) VALUES
    ('Torrance',      'US', 'America/Los_Angeles',            33.8358, -118.3406,   145),
    ('Los Angeles',   'US', 'America/Los_Angeles',            34.0522, -118.2437, 12500),
    ('San Francisco', 'US', 'America/Los_Angeles',            37.7749, -122.4194,  4700),
    ('Seattle',       'US', 'America/Los_Angeles',            47.6062, -122.3321,  4000),
    ('Denver',        'US', 'America/Denver',                 39.7392, -104.9903,  2900),
    ('Phoenix',       'US', 'America/Phoenix',                33.4484, -112.0740,  4900),
    ('Chicago',       'US', 'America/Chicago',                41.8781,  -87.6298,  9400),
    ('Austin',        'US', 'America/Chicago',                30.2672,  -97.7431,  2300),
    ('New York',      'US', 'America/New_York',               40.7128,  -74.0060, 19500),
    ('Miami',         'US', 'America/New_York',               25.7617,  -80.1918,  6100),
    ('Toronto',       'CA', 'America/Toronto',                43.6532,  -79.3832,  6200),
    ('St. John''s',   'CA', 'America/St_Johns',               47.5615,  -52.7126,   210),
    ('Mexico City',   'MX', 'America/Mexico_City',            19.4326,  -99.1332, 21800),
    ('São Paulo',     'BR', 'America/Sao_Paulo',             -23.5505,  -46.6333, 22400),
    ('Buenos Aires',  'AR', 'America/Argentina/Buenos_Aires', -34.6037,  -58.3816, 15400),
    ('Santiago',      'CL', 'America/Santiago',              -33.4489,  -70.6693,  6900),
    ('London',        'GB', 'Europe/London',                  51.5074,   -0.1278,  9500),
    ('Dublin',        'IE', 'Europe/Dublin',                  53.3498,   -6.2603,  1400),
    ('Lisbon',        'PT', 'Europe/Lisbon',                  38.7223,   -9.1393,  2900),
    ('Paris',         'FR', 'Europe/Paris',                   48.8566,    2.3522, 11100),
    ('Berlin',        'DE', 'Europe/Berlin',                  52.5200,   13.4050,  3600),
    ('Milan',         'IT', 'Europe/Rome',                    45.4642,    9.1900,  3200),
    ('Madrid',        'ES', 'Europe/Madrid',                  40.4168,   -3.7038,  6700),
    ('Amsterdam',     'NL', 'Europe/Amsterdam',               52.3676,    4.9041,  2500),
    ('Stockholm',     'SE', 'Europe/Stockholm',               59.3293,   18.0686,  1700),
    ('Oslo',          'NO', 'Europe/Oslo',                    59.9139,   10.7522,  1100),
    ('Athens',        'GR', 'Europe/Athens',                  37.9838,   23.7275,  3100),
    ('Istanbul',      'TR', 'Europe/Istanbul',                41.0082,   28.9784, 15600),
    ('Cairo',         'EG', 'Africa/Cairo',                   30.0444,   31.2357, 21300),
    ('Lagos',         'NG', 'Africa/Lagos',                    6.5244,    3.3792, 15400),
    ('Nairobi',       'KE', 'Africa/Nairobi',                 -1.2921,   36.8219,  4900),
    ('Johannesburg',  'ZA', 'Africa/Johannesburg',           -26.2041,   28.0473,  6000),
    ('Dubai',         'AE', 'Asia/Dubai',                     25.2048,   55.2708,  3500),
    ('Tehran',        'IR', 'Asia/Tehran',                    35.6892,   51.3890,  9400),
    ('Mumbai',        'IN', 'Asia/Kolkata',                   19.0760,   72.8777, 21000),
    ('Delhi',         'IN', 'Asia/Kolkata',                   28.7041,   77.1025, 32000),
    ('Bengaluru',     'IN', 'Asia/Kolkata',                   12.9716,   77.5946, 13600),
    ('Kathmandu',     'NP', 'Asia/Kathmandu',                 27.7172,   85.3240,  1500),
    ('Bangkok',       'TH', 'Asia/Bangkok',                   13.7563,  100.5018, 11000),
    ('Singapore',     'SG', 'Asia/Singapore',                  1.3521,  103.8198,  5900),
    ('Hong Kong',     'HK', 'Asia/Hong_Kong',                 22.3193,  114.1694,  7500),
    ('Shanghai',      'CN', 'Asia/Shanghai',                  31.2304,  121.4737, 29200),
    ('Seoul',         'KR', 'Asia/Seoul',                     37.5665,  126.9780,  9900),
    ('Tokyo',         'JP', 'Asia/Tokyo',                     35.6762,  139.6503, 37000),
    ('Sydney',        'AU', 'Australia/Sydney',              -33.8688,  151.2093,  5300),
    ('Melbourne',     'AU', 'Australia/Melbourne',           -37.8136,  144.9631,  5200),
    ('Adelaide',      'AU', 'Australia/Adelaide',            -34.9285,  138.6007,  1400),
    ('Perth',         'AU', 'Australia/Perth',               -31.9505,  115.8605,  2200),
    ('Auckland',      'NZ', 'Pacific/Auckland',              -36.8485,  174.7633,  1700),
    ('Honolulu',      'US', 'Pacific/Honolulu',               21.3069, -157.8583,  1000);


-- =============================================================================
-- 5. Core tables
-- =============================================================================

-- style_dna:   {"archetype": "Minimal", "preferred_colors": ["Beige", ...],
--               "category_affinity": {"Dress": 2, ...},
--               "color_affinity": {"Beige": 2.5, ...},   (kept by the likes trigger)
--               "vibe": 0.4, "trend": 0.6, "dare": 0.2}
-- style_rules: {"liked_categories": [...], "disliked_categories": [...],
--               "disliked_colors": [...]}
-- Both are validated by the statement-level triggers in section 7: shapes,
-- known keys only, and names that exist in the reference tables.
CREATE TABLE ootd.users (
    id          bigint PRIMARY KEY CHECK (id > 0),
    city        text NOT NULL REFERENCES ootd.cities (name),
    timezone    text NOT NULL,
    style_dna   jsonb NOT NULL DEFAULT '{}',
    style_rules jsonb NOT NULL DEFAULT '{}',
    taste       public.vector(32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    likes_count integer NOT NULL DEFAULT 0 CHECK (likes_count >= 0),
    taste_norm  real NOT NULL DEFAULT 1 CHECK (taste_norm >= 0)
);
COMMENT ON TABLE ootd.users IS 'App users with their style DNA (learned), style rules (stated) and taste vector.';
COMMENT ON COLUMN ootd.users.timezone IS 'IANA zone name (see ootd.timezones); decides the user''s local date and daypart.';
COMMENT ON COLUMN ootd.users.taste IS 'Taste vector in the outfit-embedding space (32 dims); cosine against outfit embeddings.';
COMMENT ON COLUMN ootd.users.likes_count IS 'Current likes; with the stated profile as one more observation, the weight of the running means the likes trigger keeps.';
COMMENT ON COLUMN ootd.users.taste_norm IS 'Length of the running mean of liked unit embeddings whose direction is taste (lets an unlike subtract exactly).';

-- One pool per (date, cluster): the unit the LLM generates and the feed serves.
CREATE TABLE ootd.pools (
    pool_date    date NOT NULL,
    cluster_id   text NOT NULL,
    archetype    text NOT NULL REFERENCES ootd.archetypes (name),
    weather      text NOT NULL REFERENCES ootd.weather_conditions (name),
    model        text NOT NULL,
    generated_at timestamptz NOT NULL DEFAULT now(),
    members      integer NOT NULL DEFAULT 0 CHECK (members >= 0),
    provider     text NOT NULL DEFAULT 'offline' CHECK (provider IN ('openai', 'offline', 'plpython')),
    PRIMARY KEY (pool_date, cluster_id),
    CHECK (cluster_id = to_char(pool_date, 'YYYYMMDD') || '_' || archetype || '_' || weather)
);
COMMENT ON TABLE ootd.pools IS 'One generated pool per date and style cluster (cluster id: YYYYMMDD_Archetype_Weather).';
COMMENT ON COLUMN ootd.pools.members IS 'Users in the cluster when the pool was generated.';

CREATE TABLE ootd.outfits (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pool_date   date NOT NULL,
    cluster_id  text NOT NULL,
    slot        smallint NOT NULL CHECK (slot BETWEEN 1 AND 20),
    daypart     text NOT NULL CHECK (daypart IN ('Daytime', 'NightOut')),
    title       text NOT NULL CHECK (length(title) BETWEEN 3 AND 120),
    category    text NOT NULL REFERENCES ootd.categories (name),
    color       text NOT NULL REFERENCES ootd.colors (name),
    pieces      text[] NOT NULL CHECK (cardinality(pieces) BETWEEN 1 AND 8),
    vibe        real NOT NULL CHECK (vibe BETWEEN 0 AND 1),
    trend       real NOT NULL CHECK (trend BETWEEN 0 AND 1),
    dare        real NOT NULL CHECK (dare BETWEEN 0 AND 1),
    reason      text NOT NULL,
    embedding   public.vector(32) NOT NULL,
    FOREIGN KEY (pool_date, cluster_id) REFERENCES ootd.pools (pool_date, cluster_id) ON DELETE CASCADE,
    UNIQUE (pool_date, cluster_id, slot)
);
CREATE UNIQUE INDEX outfits_pool_title_key ON ootd.outfits (pool_date, cluster_id, lower(title));
COMMENT ON TABLE ootd.outfits IS 'Durable outfit pools: 20 per pool (10 Daytime, 10 NightOut).';

-- The stand-in for Redis: rebuilt from ootd.outfits, lost on a crash (UNLOGGED
-- tables are truncated by crash recovery), never the source of truth.
CREATE UNLOGGED TABLE ootd.pool_cache (
    pool_date   date NOT NULL,
    cluster_id  text NOT NULL,
    outfit_id   bigint NOT NULL,
    slot        smallint NOT NULL,
    daypart     text NOT NULL,
    title       text NOT NULL,
    category    text NOT NULL,
    color       text NOT NULL,
    vibe        real NOT NULL,
    trend       real NOT NULL,
    dare        real NOT NULL,
    embedding   public.vector(32) NOT NULL,
    cached_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pool_date, cluster_id, outfit_id)
);
COMMENT ON TABLE ootd.pool_cache IS 'UNLOGGED serving copy of ootd.outfits (the Redis stand-in); emptied by crash recovery.';

CREATE TABLE ootd.likes (
    user_id   bigint NOT NULL REFERENCES ootd.users (id) ON DELETE CASCADE,
    outfit_id bigint NOT NULL REFERENCES ootd.outfits (id),
    liked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, outfit_id)
);
CREATE INDEX likes_outfit_id_idx ON ootd.likes (outfit_id);
COMMENT ON TABLE ootd.likes IS 'Implicit feedback: a row per liked outfit.';

CREATE TABLE ootd.llm_calls (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    called_at         timestamptz NOT NULL DEFAULT now(),
    pool_date         date NOT NULL,
    cluster_id        text NOT NULL,
    provider          text NOT NULL CHECK (provider IN ('openai', 'offline', 'plpython')),
    kind              text NOT NULL CHECK (kind IN ('chat', 'embedding')),
    model             text NOT NULL,
    attempt           smallint NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    status            text NOT NULL CHECK (status IN ('sent', 'ok', 'invalid', 'error')),
    http_status       integer,
    prompt_tokens     integer NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens integer NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    latency_ms        double precision CHECK (latency_ms >= 0),
    error             text,
    CONSTRAINT llm_calls_finished_check CHECK (status = 'sent' OR latency_ms IS NOT NULL)
);
CREATE INDEX llm_calls_pool_idx ON ootd.llm_calls (pool_date, cluster_id);
COMMENT ON TABLE ootd.llm_calls IS 'The LLM ledger: one row per request (chat or embedding), written (status sent) before it is sent, then finished.';
COMMENT ON COLUMN ootd.llm_calls.status IS 'sent: recorded before sending, outcome unknown (the run was killed); ok, invalid (answered, failed validation) or error.';

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

INSERT INTO ootd.scoring_weights DEFAULT VALUES;


CREATE TABLE ootd.weather_daily (
    day         date NOT NULL,
    city        text NOT NULL REFERENCES ootd.cities (name),
    condition   text NOT NULL REFERENCES ootd.weather_conditions (name),
    temp_c      real NOT NULL CHECK (temp_c BETWEEN -80 AND 60),
    source      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, city)
);
COMMENT ON TABLE ootd.weather_daily IS 'Weather per city and day, written by the nightly batch; the first forecast for a day wins.';

CREATE TABLE ootd.llm_prices (
    model                 text PRIMARY KEY,
    prompt_usd_per_1m     double precision NOT NULL CHECK (prompt_usd_per_1m >= 0),
    completion_usd_per_1m double precision NOT NULL CHECK (completion_usd_per_1m >= 0),
    is_reference          boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX llm_prices_one_reference ON ootd.llm_prices (is_reference) WHERE is_reference;
COMMENT ON TABLE ootd.llm_prices IS 'USD per million tokens by model (edit freely); the reference model prices every call in llm_cost_daily''s *_at_reference columns.';

INSERT INTO ootd.llm_prices (model, prompt_usd_per_1m, completion_usd_per_1m, is_reference) VALUES
    ('gpt-4o-mini',            0.15,  0.60, true),
    ('gpt-4o',                 2.50, 10.00, false),
    ('gpt-4.1-mini',           0.40,  1.60, false),
    ('qwen2.5-72b-instruct',   0.40,  1.20, false),
    ('text-embedding-3-small', 0.02,  0.00, false),
    ('ootd-offline-stylist-1', 0.00,  0.00, false);


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

-- =============================================================================
-- 6. Functions
-- =============================================================================

-- ootd.vocabulary(): the controlled vocabulary as one JSON object.
-- Validation below and the LLM's JSON-schema enums are built from it, so a new
-- color is one INSERT away from being usable everywhere.
CREATE FUNCTION ootd.vocabulary()
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT jsonb_build_object(
        'archetypes', (SELECT jsonb_agg(name ORDER BY name) FROM ootd.archetypes),
        'categories', (SELECT jsonb_agg(name ORDER BY name) FROM ootd.categories),
        'colors',     (SELECT jsonb_agg(name ORDER BY name) FROM ootd.colors),
        'weather',    (SELECT jsonb_agg(name ORDER BY name) FROM ootd.weather_conditions)
    )
$$;
COMMENT ON FUNCTION ootd.vocabulary() IS
    'Controlled vocabulary {archetypes, categories, colors, weather} as JSON arrays of names.';

-- ootd._style_shape_problem(dna, rules): NULL when both documents have the
-- right shape, else a sentence naming the first problem.  One CASE
-- expression with no sub-selects, so the planner inlines it and validating a
-- million-row COPY costs a few C-level jsonb operations per row.
CREATE FUNCTION ootd._style_shape_problem(p_dna jsonb, p_rules jsonb)
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

-- ootd._style_vocabulary_problem(dna, rules, vocab): NULL when every name in
-- the (well-shaped) documents exists in the vocabulary, else a sentence naming
-- the first unknown one.  The WHEN tests are C-level containment checks; the
-- jsonpath that finds the culprit runs only for a bad row.
CREATE FUNCTION ootd._style_vocabulary_problem(p_dna jsonb, p_rules jsonb, p_vocab jsonb)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_dna ? 'archetype' AND NOT (p_vocab -> 'archetypes') @> (p_dna -> 'archetype') THEN
            format('unknown archetype %s in style_dna.archetype', p_dna -> 'archetype')
        WHEN NOT (p_dna -> 'preferred_colors') <@ (p_vocab -> 'colors') THEN
            format('unknown color %s in style_dna.preferred_colors',
                   jsonb_path_query_first(p_dna, '$.preferred_colors[*] ? (!(@ == $colors[*]))', p_vocab))
        WHEN p_dna -> 'category_affinity' <> '{}'
             AND jsonb_path_exists(p_dna, '$.category_affinity.keyvalue() ? (!(@.key == $categories[*]))', p_vocab) THEN
            format('unknown category %s in style_dna.category_affinity',
                   jsonb_path_query_first(p_dna, '$.category_affinity.keyvalue() ? (!(@.key == $categories[*])).key', p_vocab))
        WHEN p_dna -> 'color_affinity' <> '{}'
             AND jsonb_path_exists(p_dna, '$.color_affinity.keyvalue() ? (!(@.key == $colors[*]))', p_vocab) THEN
            format('unknown color %s in style_dna.color_affinity',
                   jsonb_path_query_first(p_dna, '$.color_affinity.keyvalue() ? (!(@.key == $colors[*])).key', p_vocab))
        WHEN NOT (p_rules -> 'liked_categories') <@ (p_vocab -> 'categories') THEN
            format('unknown category %s in style_rules.liked_categories',
                   jsonb_path_query_first(p_rules, '$.liked_categories[*] ? (!(@ == $categories[*]))', p_vocab))
        WHEN NOT (p_rules -> 'disliked_categories') <@ (p_vocab -> 'categories') THEN
            format('unknown category %s in style_rules.disliked_categories',
                   jsonb_path_query_first(p_rules, '$.disliked_categories[*] ? (!(@ == $categories[*]))', p_vocab))
        WHEN NOT (p_rules -> 'disliked_colors') <@ (p_vocab -> 'colors') THEN
            format('unknown color %s in style_rules.disliked_colors',
                   jsonb_path_query_first(p_rules, '$.disliked_colors[*] ? (!(@ == $colors[*]))', p_vocab))
    END
$$;
COMMENT ON FUNCTION ootd._style_vocabulary_problem(jsonb, jsonb, jsonb) IS
    'Private: NULL if every archetype, category and color named in style_dna/style_rules exists, else the first unknown one.';

-- ootd._users_validate(): statement-level trigger over the transition table
-- `new_rows`, so a COPY of a million users is validated in three set-based
-- passes instead of a million PL/pgSQL calls.  Raising aborts the statement:
-- nothing is written.  No setting skips it: the likes trigger's UPDATEs are
-- validated like any other.
--   22023 invalid_parameter_value  time zone is not an IANA zone name
--   23514 check_violation          style_dna / style_rules have the wrong shape
--   23503 foreign_key_violation    an archetype, category or color is unknown
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

-- ootd._name_similarity(a, b): Dice coefficient of the two names' distinct
-- lower-case letter pairs, 0..1 (1 = the same pairs).
CREATE FUNCTION ootd._name_similarity(p_a text, p_b text)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    WITH a AS (SELECT DISTINCT substr(lower(p_a), i, 2) AS pair FROM generate_series(1, length(p_a) - 1) i),
         b AS (SELECT DISTINCT substr(lower(p_b), i, 2) AS pair FROM generate_series(1, length(p_b) - 1) i)
    SELECT coalesce(2.0 * (SELECT count(*) FROM a JOIN b USING (pair))
                    / nullif((SELECT count(*) FROM a) + (SELECT count(*) FROM b), 0), 0)::double precision
$$;
COMMENT ON FUNCTION ootd._name_similarity(text, text) IS
    'Private: Dice coefficient of two names'' lower-case letter pairs (0 = nothing shared, 1 = same pairs).';

-- ootd._closest_cities(name): up to three known city names most like `name`
-- (Dice coefficient of letter pairs, at least 0.5), "A, B or C"; NULL if none.
CREATE FUNCTION ootd._closest_cities(p_name text)
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

-- ootd._resolve_city(name): the city's canonical name and time zone, matched
-- whatever the case ("torrance" is Torrance).  Unknown: 23503 naming the
-- closest known names.
CREATE FUNCTION ootd._resolve_city(p_name text, OUT name text, OUT timezone text)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    SELECT c.name, c.timezone INTO name, timezone FROM ootd.cities c WHERE lower(c.name) = lower(p_name);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown city "%"%', p_name,
                        coalesce(' (did you mean ' || ootd._closest_cities(p_name) || '?)', '')
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'Known cities are listed by SELECT name FROM ootd.cities; add one with ootd.add_city(...) (ootd city add).';
    END IF;
END
$$;
COMMENT ON FUNCTION ootd._resolve_city(text) IS
    'Private: canonical name and time zone of a city given in any case; 23503 with the closest names if unknown.';

-- ootd.put_user(...): create a user, or update one.  A new user needs a city
-- (the time zone defaults to the city's).  An update changes only what is
-- given (NULL = keep): a new city moves the time zone with it unless one is
-- given; style_dna and style_rules are merged key by key, so setting
-- style_rules never touches the learned style_dna (and unlikes stay exact).
-- Cities match whatever the case.  Errors: 22023 bad id, 23502 new user
-- without a city, 23503 unknown city; the users triggers check the rest.
CREATE FUNCTION ootd.put_user(
    p_id          bigint,
    p_city        text DEFAULT NULL,
    p_timezone    text DEFAULT NULL,
    p_style_dna   jsonb DEFAULT NULL,
    p_style_rules jsonb DEFAULT NULL
)
RETURNS ootd.users
LANGUAGE plpgsql
AS $$
DECLARE
    v_city ootd.cities;
    v_user ootd.users;
BEGIN
    IF p_id IS NULL OR p_id <= 0 THEN
        RAISE EXCEPTION 'user id must be a positive integer, got %', coalesce(p_id::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_city IS NOT NULL THEN
        SELECT r.name, r.timezone INTO v_city.name, v_city.timezone FROM ootd._resolve_city(p_city) r;
    END IF;
    UPDATE ootd.users u
    SET city        = coalesce(v_city.name, u.city),
        timezone    = coalesce(p_timezone, v_city.timezone, u.timezone),
        style_dna   = u.style_dna || coalesce(p_style_dna, '{}'),
        style_rules = u.style_rules || coalesce(p_style_rules, '{}'),
        updated_at  = now()
    WHERE u.id = p_id
    RETURNING u.* INTO v_user;
    IF FOUND THEN
        RETURN v_user;
    END IF;
    IF p_city IS NULL THEN
        RAISE EXCEPTION 'user % does not exist: a new user needs a city', p_id
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Give one, e.g. ootd user ID --city Torrance.';
    END IF;
    INSERT INTO ootd.users AS u (id, city, timezone, style_dna, style_rules)
    VALUES (p_id, v_city.name, coalesce(p_timezone, v_city.timezone),
            coalesce(p_style_dna, '{}'), coalesce(p_style_rules, '{}'))
    RETURNING u.* INTO v_user;
    RETURN v_user;
END
$$;
COMMENT ON FUNCTION ootd.put_user(bigint, text, text, jsonb, jsonb) IS
    'Create a user (needs a city) or update one: only the arguments given change, style documents merge key by key.';

-- ootd.add_city(name, timezone, latitude, longitude, country, population_k):
-- a new city users may live in (weather is forecast for it from the next
-- nightly run).  Errors: 22023 empty name, unknown time zone or coordinates
-- out of range, 23505 a city of that name exists (any case).
CREATE FUNCTION ootd.add_city(p_name text, p_timezone text, p_latitude double precision,
                              p_longitude double precision, p_country text DEFAULT 'ZZ',
                              p_population_k integer DEFAULT 100)
RETURNS ootd.cities
LANGUAGE plpgsql
AS $$
DECLARE
    v_name text := btrim(p_name);
    v_city ootd.cities;
BEGIN
    IF coalesce(v_name, '') = '' THEN
        RAISE EXCEPTION 'a city needs a name' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ootd.timezones t WHERE t.name = p_timezone) THEN
        RAISE EXCEPTION 'city "%": invalid time zone "%": not an IANA time zone name', v_name, p_timezone
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use a name such as America/Los_Angeles (see ootd.timezones).';
    END IF;
    IF p_latitude IS NULL OR p_longitude IS NULL OR p_latitude NOT BETWEEN -90 AND 90
       OR p_longitude NOT BETWEEN -180 AND 180 THEN
        RAISE EXCEPTION 'city "%": latitude must be within -90..90 and longitude within -180..180, got % and %',
                        v_name, coalesce(p_latitude::text, 'NULL'), coalesce(p_longitude::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_country IS NULL OR p_country !~ '^[A-Z]{2}$' THEN
        RAISE EXCEPTION 'city "%": country must be an ISO 3166 code of two capital letters, got "%"', v_name, p_country
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_population_k IS NULL OR p_population_k <= 0 THEN
        RAISE EXCEPTION 'city "%": population_k must be a positive number of thousands', v_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.* INTO v_city FROM ootd.cities c WHERE lower(c.name) = lower(v_name);
    IF FOUND THEN
        RAISE EXCEPTION 'city "%" already exists as "%"', v_name, v_city.name USING ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO ootd.cities AS c (name, country, timezone, latitude, longitude, population_k)
    VALUES (v_name, p_country, p_timezone, p_latitude, p_longitude, p_population_k)
    RETURNING c.* INTO v_city;
    RETURN v_city;
END
$$;
COMMENT ON FUNCTION ootd.add_city(text, text, double precision, double precision, text, integer) IS
    'Add a city users may live in (ZZ = country unknown); validates time zone and coordinates, names are unique in any case.';


-- ootd.put_weather(day, source, forecasts): record one day's weather for many
-- cities at once.  forecasts = [{"city", "condition", "temp_c"}, ...].  The
-- first forecast recorded for a (day, city) wins, so a re-run of the nightly
-- batch clusters users exactly as the first run did.  Returns rows inserted.
CREATE FUNCTION ootd.put_weather(p_day date, p_source text, p_forecasts jsonb)
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

-- ootd.default_archetype(): the archetype of users whose style_dna has none.
-- "Casual" is the broadest, most neutral vocabulary in the taxonomy.
CREATE FUNCTION ootd.default_archetype()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 'Casual'::text $$;
COMMENT ON FUNCTION ootd.default_archetype() IS
    'Archetype assumed for users without style_dna.archetype (Casual).';

-- ootd.user_clusters(day): every user's cluster for a day, deterministically:
-- cluster_id = YYYYMMDD_<archetype>_<weather in the user's city>.  Users whose
-- city has no weather for the day are not clustered (the batch records
-- weather for every city first).  A single inlinable SELECT: callers'
-- aggregates run as one plan over ootd.users.
CREATE FUNCTION ootd.user_clusters(p_day date)
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

-- ootd.cluster_demand(day): one row per cluster (K rows, never N users) with
-- what the prompt needs: members, popular colors and categories, common
-- vetoes, mean traits, main cities, and whether the pool already exists.
CREATE FUNCTION ootd.cluster_demand(p_day date)
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

-- ootd.store_pool(...): store one validated pool durably, atomically.
-- outfits = [{"title","daypart","category","color","pieces","vibe","trend",
-- "dare","reason","embedding":[32 numbers]}, ...], exactly 10 Daytime + 10
-- NightOut.  A pool that already exists is never overwritten (SQLSTATE 23505):
-- re-runs skip finished clusters before calling the LLM.
CREATE FUNCTION ootd.store_pool(p_pool_date date, p_cluster_id text, p_provider text, p_model text,
                                p_members integer, p_outfits jsonb)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_parts  text[] := regexp_match(p_cluster_id, '^(\d{8})_([A-Z][A-Za-z]+)_([A-Z][A-Za-z]+)$');
    v_count  integer;
    v_day    integer;
BEGIN
    IF v_parts IS NULL OR v_parts[1] <> to_char(p_pool_date, 'YYYYMMDD') THEN
        RAISE EXCEPTION 'cluster id "%" does not match YYYYMMDD_Archetype_Weather for %', p_cluster_id, p_pool_date
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(p_outfits) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'pool % must be a JSON array of outfits', p_cluster_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_count := jsonb_array_length(p_outfits);
    SELECT count(*) INTO v_day FROM jsonb_array_elements(p_outfits) o WHERE o ->> 'daypart' = 'Daytime';
    IF v_count <> 20 OR v_day <> 10 THEN
        RAISE EXCEPTION 'pool % must hold 10 Daytime and 10 NightOut outfits, got % and %',
                        p_cluster_id, v_day, v_count - v_day
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO ootd.pools (pool_date, cluster_id, archetype, weather, model, members, provider)
    VALUES (p_pool_date, p_cluster_id, v_parts[2], v_parts[3], p_model, p_members, p_provider)
    ON CONFLICT (pool_date, cluster_id) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pool % already exists', p_cluster_id
            USING ERRCODE = 'unique_violation';
    END IF;

    INSERT INTO ootd.outfits (pool_date, cluster_id, slot, daypart, title, category, color, pieces,
                              vibe, trend, dare, reason, embedding)
    SELECT p_pool_date, p_cluster_id, o.ordinality::smallint, o.value ->> 'daypart', o.value ->> 'title',
           o.value ->> 'category', o.value ->> 'color',
           ARRAY(SELECT jsonb_array_elements_text(o.value -> 'pieces')),
           (o.value ->> 'vibe')::real, (o.value ->> 'trend')::real, (o.value ->> 'dare')::real,
           o.value ->> 'reason', (o.value ->> 'embedding')::public.vector(32)
    FROM jsonb_array_elements(p_outfits) WITH ORDINALITY AS o(value, ordinality);
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION ootd.store_pool(date, text, text, text, integer, jsonb) IS
    'Store one pool of 20 outfits (10 Daytime, 10 NightOut) with embeddings, atomically; never overwrites.';

-- ootd.refresh_pool_cache(day, keep_days): copy the day's durable pools into
-- the UNLOGGED cache and drop entries more than keep_days older than both the
-- day and the database's current date (so a far-future day never evicts the
-- pools being served today), in one transaction.  DELETE + INSERT (not
-- TRUNCATE) takes no lock a reader waits on: readers keep seeing the old rows
-- until commit, then all the new ones.
CREATE FUNCTION ootd.refresh_pool_cache(p_day date, p_keep_days integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows integer;
BEGIN
    DELETE FROM ootd.pool_cache c
    WHERE c.pool_date = p_day OR c.pool_date < least(p_day, current_date) - p_keep_days;
    INSERT INTO ootd.pool_cache (pool_date, cluster_id, outfit_id, slot, daypart, title, category, color,
                                 vibe, trend, dare, embedding)
    SELECT o.pool_date, o.cluster_id, o.id, o.slot, o.daypart, o.title, o.category, o.color,
           o.vibe, o.trend, o.dare, o.embedding
    FROM ootd.outfits o
    WHERE o.pool_date = p_day;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION ootd.refresh_pool_cache(date, integer) IS
    'Replace the cache rows of a day with its durable pools and prune days older than keep_days; one transaction.';

-- ootd.record_llm_request(day, cluster, provider, kind, model, attempt): the
-- ledger row of a request about to be sent (status 'sent'), committed before
-- it goes out, so a run killed mid-request still counts every request the
-- server may have received (and billed).  Returns its id for
-- ootd.record_llm_calls to finish.
CREATE FUNCTION ootd.record_llm_request(p_pool_date date, p_cluster_id text, p_provider text, p_kind text,
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

-- ootd.record_llm_calls(day, cluster, calls): the outcome of a cluster's
-- requests, one per element: an element with the "id" of its
-- ootd.record_llm_request row finishes that row, one without is appended.
-- calls = [{"id","provider","kind","model","attempt","status","http_status",
-- "prompt_tokens","completion_tokens","latency_ms","error"}].
CREATE FUNCTION ootd.record_llm_calls(p_pool_date date, p_cluster_id text, p_calls jsonb)
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

-- ootd.check_pool_date(day): raises 22023 when a pool date lies more than one
-- day after the database's current date (the latest local date anywhere): a
-- typo such as 9999-12-31 would spend a night of LLM calls on nobody.
-- `ootd nightly --force` skips the check.
CREATE FUNCTION ootd.check_pool_date(p_day date)
RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF p_day IS NULL OR p_day > current_date + 1 THEN
        RAISE EXCEPTION 'pool date % is more than one day after the database''s current date %',
                        coalesce(p_day::text, 'NULL'), current_date
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Generate it anyway with ootd nightly --force.';
    END IF;
END
$$;
COMMENT ON FUNCTION ootd.check_pool_date(date) IS
    'Raises 22023 if a pool date is more than one day after current_date (ootd nightly refuses it unless --force).';

-- ootd.generate_pool(cluster_id): one cluster's pool generated from inside the
-- database, for DBAs who live in psql or schedule with pg_cron.  Where the
-- server has plpython3u, migration 0005 installs a PL/Python function whose
-- body is batch/plpython_body.py: the batch's own generation, validation and
-- storage (status stored | exists | failed; see docs/generate_pool.md).  This
-- is the version for servers without it (the embedded default, most managed
-- services): same signature, SQLSTATE 0A000, and the way that works instead.
CREATE FUNCTION ootd.generate_pool(p_cluster_id text)
RETURNS TABLE (cluster_id text, status text, provider text, model text, outfits integer, requests integer,
               error text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'ootd.generate_pool(%) needs plpython3u, which this server does not have; generate pools with `ootd nightly` instead',
                    quote_literal(p_cluster_id)
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Run `ootd nightly --date YYYY-MM-DD` (from cron, with DATABASE_URL set) on a machine with ootd installed; see docs/generate_pool.md.';
END
$$;
COMMENT ON FUNCTION ootd.generate_pool(text) IS
    'Generate one cluster''s pool in the database (PL/Python). This server has no plpython3u: raises 0A000; use `ootd nightly`.';


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

-- ootd.rehydrate_cache(day, days): after an unclean shutdown (crash recovery
-- empties UNLOGGED tables) copy the durable pools of the local dates being
-- served around `day` (day - days .. day + 1) back into the cache.
-- Idempotent, and writes nothing when the cache already holds them (or on a
-- hot standby, which cannot write), so `ootd db start`, `ootd serve` and `ootd nightly` call it every time.
-- Returns rows added.  Feeds never need it to be correct, only to be served
-- from the cache.
CREATE FUNCTION ootd.rehydrate_cache(p_day date DEFAULT current_date, p_days integer DEFAULT 3)
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

-- ootd._seed_colors(stated): the color_affinity a user's first like starts
-- from: each stated preferred color at 0.5, 0.499, ... in stated order, so
-- stated colors rank below any liked one and keep their order among themselves.
CREATE FUNCTION ootd._seed_colors(p_stated jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_object_agg(e.color, trim_scale(0.5 - 0.001 * (e.i - 1))), '{}')
    FROM jsonb_array_elements_text(coalesce(p_stated, '[]')) WITH ORDINALITY AS e(color, i)
$$;
COMMENT ON FUNCTION ootd._seed_colors(jsonb) IS
    'Private: color_affinity seeded from the stated preferred_colors (0.5, 0.499, ... in stated order).';

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

-- ootd.like(user, outfit): record a like; true if it is new, false if the user
-- had already liked the outfit (then nothing changes).  The likes trigger
-- updates the profile in the same transaction.  Unknown user or outfit:
-- 23503 foreign_key_violation.
CREATE FUNCTION ootd.like(p_user_id bigint, p_outfit_id bigint)
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

-- ootd.unlike(user, outfit): take a like back; true if there was one.  The
-- likes trigger reverses its effect on the profile.  Unknown user or outfit:
-- 23503 foreign_key_violation.
CREATE FUNCTION ootd.unlike(p_user_id bigint, p_outfit_id bigint)
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

-- ootd._check_like_target(user, outfit): the readable errors of like/unlike.
CREATE FUNCTION ootd._check_like_target(p_user_id bigint, p_outfit_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ootd.users u WHERE u.id = p_user_id) THEN
        RAISE EXCEPTION 'unknown user %', coalesce(p_user_id::text, 'NULL')
            USING ERRCODE = 'foreign_key_violation', TABLE = 'users', SCHEMA = 'ootd';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ootd.outfits o WHERE o.id = p_outfit_id) THEN
        RAISE EXCEPTION 'unknown outfit %', coalesce(p_outfit_id::text, 'NULL')
            USING ERRCODE = 'foreign_key_violation', TABLE = 'outfits', SCHEMA = 'ootd';
    END IF;
END
$$;
COMMENT ON FUNCTION ootd._check_like_target(bigint, bigint) IS
    'Private: raises 23503 naming the unknown user or outfit of a like/unlike.';

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

-- =============================================================================
-- 7. Views
-- =============================================================================

-- ootd.llm_cost_daily: what each day's pools cost, and what one LLM call per
-- user would have cost.  est_cost_usd prices each call at its own model's
-- price (unknown models cost NULL); *_at_reference prices every token at the
-- reference model's price, which makes offline runs comparable.  The naive
-- design makes one generation per user, so its cost is users_served x the
-- mean cost of a generated pool (chat and embedding requests, retries
-- included).
CREATE VIEW ootd.llm_cost_daily AS
WITH ref AS (
    SELECT prompt_usd_per_1m, completion_usd_per_1m FROM ootd.llm_prices WHERE is_reference
), calls AS (
    SELECT c.pool_date,
           count(*) FILTER (WHERE c.kind = 'chat')                     AS chat_calls,
           count(*) FILTER (WHERE c.kind = 'embedding')                AS embedding_calls,
           count(*) FILTER (WHERE c.status <> 'ok')                    AS failed_calls,
           sum(c.prompt_tokens)                                        AS prompt_tokens,
           sum(c.completion_tokens)                                    AS completion_tokens,
           sum((c.prompt_tokens * p.prompt_usd_per_1m + c.completion_tokens * p.completion_usd_per_1m) / 1e6)
                                                                       AS est_cost_usd,
           sum((c.prompt_tokens * r.prompt_usd_per_1m + c.completion_tokens * r.completion_usd_per_1m) / 1e6)
                                                                       AS cost_at_reference_usd
    FROM ootd.llm_calls c
    LEFT JOIN ootd.llm_prices p ON p.model = c.model
    LEFT JOIN ref r ON true
    GROUP BY c.pool_date
), pools AS (
    SELECT pool_date, count(*) AS clusters, sum(members) AS users_served
    FROM ootd.pools
    GROUP BY pool_date
)
SELECT c.pool_date,
       coalesce(p.clusters, 0)                                     AS clusters,
       c.chat_calls,
       c.embedding_calls,
       c.failed_calls,
       c.prompt_tokens,
       c.completion_tokens,
       round(c.est_cost_usd::numeric, 6)                           AS est_cost_usd,
       round(c.cost_at_reference_usd::numeric, 6)                  AS cost_at_reference_usd,
       coalesce(p.users_served, 0)                                 AS users_served,
       coalesce(p.users_served, 0)                                 AS naive_calls,
       round((c.est_cost_usd / nullif(p.clusters, 0) * p.users_served)::numeric, 2)          AS naive_cost_usd,
       round((c.cost_at_reference_usd / nullif(p.clusters, 0) * p.users_served)::numeric, 2) AS naive_cost_at_reference_usd
FROM calls c
LEFT JOIN pools p ON p.pool_date = c.pool_date;
COMMENT ON VIEW ootd.llm_cost_daily IS
    'Per day: LLM calls, failures, tokens, estimated cost, users served, and the cost of one call per user.';


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

-- =============================================================================
-- 8. Triggers
-- (Transition tables allow one event per trigger, hence two.)
-- =============================================================================
CREATE TRIGGER users_validate_insert
    AFTER INSERT ON ootd.users
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._users_validate();

CREATE TRIGGER users_validate_update
    AFTER UPDATE ON ootd.users
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._users_validate();


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
CREATE TRIGGER likes_learn_insert
    AFTER INSERT ON ootd.likes
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._learn_from_likes();
CREATE TRIGGER likes_learn_delete
    AFTER DELETE ON ootd.likes
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ootd._learn_from_likes();

-- =============================================================================
-- 9. Privileges
-- EXECUTE on functions is revoked from PUBLIC (default privileges, section 3,
-- and explicitly for the functions above); each role gets exactly its grants.
-- =============================================================================
REVOKE ALL ON SCHEMA ootd FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ootd FROM PUBLIC;
GRANT USAGE ON SCHEMA ootd TO ootd_api, ootd_batch, ootd_analyst;

-- ootd_analyst: read everything (future tables through the default privilege).
GRANT SELECT ON ALL TABLES IN SCHEMA ootd TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.vocabulary() TO ootd_analyst, ootd_batch;

-- ootd_batch: read users and reference data, write pools, cache and ledger.
GRANT SELECT ON ootd.users, ootd.cities, ootd.timezones, ootd.archetypes, ootd.categories,
                ootd.colors, ootd.weather_conditions, ootd.scoring_weights TO ootd_batch;
GRANT SELECT, INSERT, UPDATE, DELETE ON ootd.pools, ootd.outfits, ootd.pool_cache TO ootd_batch;
GRANT SELECT, INSERT ON ootd.llm_calls TO ootd_batch;

GRANT SELECT ON ootd.weather_daily, ootd.llm_prices TO ootd_batch;
GRANT INSERT ON ootd.weather_daily TO ootd_batch;
GRANT SELECT ON ootd.weather_daily, ootd.llm_prices, ootd.llm_cost_daily TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.put_weather(date, text, jsonb), ootd.default_archetype(),
                          ootd.user_clusters(date), ootd.cluster_demand(date),
                          ootd.store_pool(date, text, text, text, integer, jsonb),
                          ootd.refresh_pool_cache(date, integer),
                          ootd.record_llm_calls(date, text, jsonb),
                          ootd.record_llm_request(date, text, text, text, text, integer),
                          ootd.check_pool_date(date) TO ootd_batch;
GRANT EXECUTE ON FUNCTION ootd.generate_pool(text) TO ootd_batch;
GRANT EXECUTE ON FUNCTION ootd.default_archetype(), ootd.user_clusters(date), ootd.cluster_demand(date)
    TO ootd_analyst;

GRANT EXECUTE ON FUNCTION ootd.feed(bigint, timestamptz, integer) TO ootd_api, ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.feed_explain(bigint, timestamptz, integer) TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.rehydrate_cache(date, integer) TO ootd_batch, ootd_api;
GRANT SELECT ON ootd.cluster_overview, ootd.cache_health TO ootd_analyst;
GRANT EXECUTE ON FUNCTION ootd.like(bigint, bigint), ootd.unlike(bigint, bigint),
                          ootd.serving_status(timestamptz) TO ootd_api;
GRANT EXECUTE ON FUNCTION ootd.serving_status(timestamptz) TO ootd_analyst;

-- ootd_api: no table privileges at all; only EXECUTE on the serving functions
-- (SECURITY DEFINER, owned by ootd_owner, search_path pinned).

RESET ROLE;
