-- =============================================================================
-- Revision 0018, part d (down): without the online evaluation (frozen).
-- Stored runs (ootd.evaluations rows of kind 'online') stay.
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd.store_online_evaluation(jsonb, jsonb);
DROP FUNCTION ootd_truth.online_day(text, date, bigint);
DROP FUNCTION ootd_truth.online_set_weights(jsonb);
DROP FUNCTION ootd_truth.open_time(bigint, bigint, date);
DROP FUNCTION ootd_truth.online_uniform(bigint, text);

RESET ROLE;
