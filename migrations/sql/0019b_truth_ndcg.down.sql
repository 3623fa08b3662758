-- =============================================================================
-- Revision 0019, part b (down): without NDCG against the hidden truth (frozen).
-- Stored runs keep the truth_* keys their metrics gained.
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd_truth.evaluate_truth(bigint);
DROP FUNCTION ootd_truth._truth_metrics(date, bigint[], time[], integer[]);
DROP FUNCTION ootd_truth._feed_truth(date, bigint[], time[], integer[]);

RESET ROLE;
