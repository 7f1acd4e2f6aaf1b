-- Reversals linked both ways on statements: a reversal names the posting it reverses
-- (reverses), the reversed posting the transaction that reversed it (reversed_by).
ALTER TABLE account_statements
    ADD COLUMN reverses    text,
    ADD COLUMN reversed_by text;

-- Statement rows written before this migration lack the links, and only the events can say
-- them: the statements of every account with a reversal are projected again. Their rows and
-- bookkeeping go, and the checkpoint goes back to the start; the runner re-reads $all from
-- there, skips (by revision) the accounts it kept and writes those accounts' rows again.
CREATE TEMPORARY TABLE reversal_accounts ON COMMIT DROP AS
    SELECT DISTINCT account_id FROM account_statements WHERE kind = 'reversal';
DELETE FROM parked_events p USING reversal_accounts r
    WHERE p.projection = 'statements' AND p.account_id = r.account_id;
DELETE FROM projection_accounts p USING reversal_accounts r
    WHERE p.projection = 'statements' AND p.account_id = r.account_id;
DELETE FROM account_statements s USING reversal_accounts r WHERE s.account_id = r.account_id;
UPDATE projection_checkpoints SET position = 0, updated_at = now()
    WHERE projection = 'statements' AND EXISTS (SELECT 1 FROM reversal_accounts);

-- A rebuild's shadow table left for a retry has rows without the links: it is discarded
-- (as `ledger projections rebuild --discard` would), and the next rebuild starts afresh.
DROP TABLE IF EXISTS account_statements__next;
DELETE FROM projection_checkpoints WHERE projection = 'statements__next';
DELETE FROM projection_accounts WHERE projection = 'statements__next';
DELETE FROM parked_events WHERE projection = 'statements__next';
