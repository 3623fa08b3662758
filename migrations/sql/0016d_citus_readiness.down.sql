-- 0016d down: readiness without the Citus node check.
DROP FUNCTION ootd.unreachable_nodes();
