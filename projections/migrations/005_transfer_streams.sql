-- The transfers read model follows the transfer streams too: every transfer has a row from its
-- request on (requested and rejected ones included), with the stream's own state and the
-- reason of a refusal; `state` is what the stream and the legs together show (requested,
-- debited, completed, failed or rejected).
ALTER TABLE transfers
    ADD COLUMN stream_state text,
    ADD COLUMN reason       text,
    ADD COLUMN requested_at timestamptz;
ALTER TABLE IF EXISTS transfers__next
    ADD COLUMN IF NOT EXISTS stream_state text,
    ADD COLUMN IF NOT EXISTS reason       text,
    ADD COLUMN IF NOT EXISTS requested_at timestamptz;

-- Rows built from legs alone never saw the transfer streams' events: the projection starts over
-- (the runner replays $all from the start for it alone; the other projections keep their place).
DELETE FROM transfers;
DELETE FROM projection_accounts WHERE projection = 'transfers';
DELETE FROM parked_events WHERE projection = 'transfers';
DELETE FROM projection_checkpoints WHERE projection = 'transfers';
