-- =============================================================================
-- Revision 0011 down: back to 0010 (frozen).  Drops ootd.evaluations: the
-- downgrade guard refuses while it holds runs, unless allow-data-loss.
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd.evaluate(date, integer, time[], integer, boolean);
DROP FUNCTION ootd.evaluation_feeds(date, bigint[], time[], integer);
DROP FUNCTION ootd._evaluation_metrics(ootd.evaluation_feed[], bigint);
DROP FUNCTION ootd._evaluate_feed(bigint, timestamptz, integer);
DROP FUNCTION ootd._evaluation_sample(integer);
DROP FUNCTION ootd._dcg(double precision[]);
DROP FUNCTION ootd._headline_occasion(text);
DROP FUNCTION ootd._vetoed(jsonb, text[], text, text);
DROP FUNCTION ootd._outfit_score(ootd.scoring_weights, bigint, jsonb, jsonb, public.vector, timestamp, boolean,
                                 bigint, text, text, text, public.vector);
DROP TYPE ootd.evaluation_feed;
DROP TABLE ootd.evaluations;

RESET ROLE;
