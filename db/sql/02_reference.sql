-- =============================================================================
-- ootd: reference data
-- The controlled vocabulary (archetypes, categories, colors, weather), the
-- time zones and cities users live in, and the functions that read them.
-- =============================================================================

-- ------------------------------------------------------------------- tables --
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

-- ---------------------------------------------------------------- functions --
-- ootd.vocabulary(): the controlled vocabulary as one JSON object.
-- Validation below and the LLM's JSON-schema enums are built from it, so a new
-- color is one INSERT away from being usable everywhere.
CREATE FUNCTION ootd.vocabulary()
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- ootd.default_archetype(): the archetype of users whose style_dna has none.
-- "Casual" is the broadest, most neutral vocabulary in the taxonomy.
CREATE FUNCTION ootd.default_archetype()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 'Casual'::text $$;
COMMENT ON FUNCTION ootd.default_archetype() IS
    'Archetype assumed for users without style_dna.archetype (Casual).';

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
-- PL/pgSQL: Citus refuses a SQL function's parameterized query over its tables.
CREATE FUNCTION ootd._closest_cities(p_name text)
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN (
        SELECT regexp_replace(string_agg(m.name, ', ' ORDER BY m.similarity DESC, m.name), ', ([^,]*)$', ' or \1')
        FROM (SELECT c.name, ootd._name_similarity(c.name, p_name) AS similarity
              FROM ootd.cities c
              ORDER BY 2 DESC, 1
              LIMIT 3) m
        WHERE m.similarity >= 0.5);
END
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
