-- =============================================================================
-- Revision 0009 down: back to 0008 (frozen).  ootd.recent_titles only reads.
-- =============================================================================
SET ROLE ootd_owner;

DROP FUNCTION ootd.recent_titles(date);

RESET ROLE;
