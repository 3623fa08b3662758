-- Revision 0005, downgrade: remove ootd.generate_pool (either kind), and the
-- plpython3u extension when no function in this database uses it any more
-- (as 0001 does for vector).
DROP FUNCTION ootd.generate_pool(text);

DO $ext$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'plpython3u') THEN
        DROP EXTENSION plpython3u;
    END IF;
EXCEPTION
    WHEN dependent_objects_still_exist THEN
        RAISE NOTICE 'extension plpython3u kept: other functions in this database use it';
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'extension plpython3u kept: only a superuser may drop it';
END
$ext$;
