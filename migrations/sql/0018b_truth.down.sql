-- =============================================================================
-- Revision 0018, part b (down): without the hidden truth of simulated users
-- (frozen; the downgrade guard asks first when ootd_truth.users holds rows).
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd_truth.utilities(date, bigint[]);
DROP FUNCTION ootd_truth.utility(bigint, bigint);
DROP FUNCTION ootd_truth.like_probability(double precision);
DROP FUNCTION ootd_truth.utility(ootd_truth.users, ootd.outfits, text);
DROP TABLE ootd_truth.users;
DROP SCHEMA ootd_truth;

RESET ROLE;
