-- =============================================================================
-- Revision 0019, part c (up): the neighbour draw is off by default (frozen).
-- The online evaluation (2,000 simulated users x 30 days, judged by their
-- hidden truth) found no gain from it: 0.1131 likes per impression with it,
-- 0.1137 without (docs/evaluation.md).  A new install starts without it, and
-- so does a database whose weights were never tuned (every weight at its
-- 0018 default); one whose weights were tuned keeps its setting (it may have
-- been chosen), and a NOTICE says how to turn it off.  One statement per
-- EXECUTE: on Citus a reference table's DDL text goes to the workers, which
-- refuse several commands in one.
-- =============================================================================
SET ROLE ootd_owner;

DO $ddl$
BEGIN
    EXECUTE $sql$ALTER TABLE ootd.scoring_weights ALTER COLUMN neighbour_pools SET DEFAULT false$sql$;
    EXECUTE $sql$COMMENT ON COLUMN ootd.scoring_weights.neighbour_pools IS 'Also draw the priority daypart''s candidates from the other pools of the served pool''s date and weather (off by default: simulated users did not reward it, docs/evaluation.md).'$sql$;
    UPDATE ootd.scoring_weights
    SET neighbour_pools = false
    WHERE neighbour_pools
      AND (preferred_color, liked_category, category_affinity, cosine, daypart_priority, liked_decay, jitter, archetype)
          = (1.25, 1.2, 0.05, 0.50, 1.00, 0.50, 1e-9, 1.00);
    IF EXISTS (SELECT 1 FROM ootd.scoring_weights WHERE neighbour_pools) THEN
        RAISE NOTICE 'scoring_weights.neighbour_pools stays on in this database (its weights were tuned); simulated users did not reward it (docs/evaluation.md): UPDATE ootd.scoring_weights SET neighbour_pools = false turns it off';
    END IF;
END
$ddl$;

RESET ROLE;
