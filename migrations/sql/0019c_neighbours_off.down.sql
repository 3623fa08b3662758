-- =============================================================================
-- Revision 0019, part c (down): the neighbour draw's default is on again, as
-- before (frozen), and so is the draw of a database whose weights were
-- never tuned (every other weight at its default), as the up part found it.
-- =============================================================================
SET ROLE ootd_owner;

DO $ddl$
BEGIN
    EXECUTE $sql$ALTER TABLE ootd.scoring_weights ALTER COLUMN neighbour_pools SET DEFAULT true$sql$;
    EXECUTE $sql$COMMENT ON COLUMN ootd.scoring_weights.neighbour_pools IS 'Also draw the priority daypart''s candidates from the other pools of the served pool''s date and weather.'$sql$;
    UPDATE ootd.scoring_weights
    SET neighbour_pools = true
    WHERE NOT neighbour_pools
      AND (preferred_color, liked_category, category_affinity, cosine, daypart_priority, liked_decay, jitter, archetype)
          = (1.25, 1.2, 0.05, 0.50, 1.00, 0.50, 1e-9, 1.00);
END
$ddl$;

RESET ROLE;
