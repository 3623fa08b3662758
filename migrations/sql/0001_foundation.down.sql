-- Revision 0001, downgrade: remove everything 0001 created.
-- Roles are cluster-wide: each is dropped unless another database still uses
-- it (then it is kept, with a NOTICE).  The vector extension is dropped only
-- if nothing else in this database depends on it.
DROP SCHEMA IF EXISTS ootd CASCADE;

DO $drop$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['ootd_api', 'ootd_batch', 'ootd_analyst', 'ootd_owner'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('DROP OWNED BY %I', r);  -- grants and default privileges here
            BEGIN
                EXECUTE format('DROP ROLE %I', r);
            EXCEPTION WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'role % kept: another database still uses it', r;
            END;
        END IF;
    END LOOP;
END
$drop$;

DO $ext$
BEGIN
    DROP EXTENSION IF EXISTS vector;
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'extension vector kept: other objects in this database use it';
END
$ext$;
