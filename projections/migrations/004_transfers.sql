-- Transfers: statements name a transfer leg's transfer and counterparty; daily totals count
-- money leaving for transit and arriving from it apart from deposits and withdrawals (so that
-- external money in - out is their own columns); the transfers read model, one row a transfer
-- that moved money, built from the account postings of its legs.
ALTER TABLE account_statements
    ADD COLUMN transfer_id  text,
    ADD COLUMN counterparty text;
ALTER TABLE IF EXISTS account_statements__next
    ADD COLUMN IF NOT EXISTS transfer_id  text,
    ADD COLUMN IF NOT EXISTS counterparty text;

ALTER TABLE daily_totals
    ADD COLUMN transferred_out numeric(38, 0) NOT NULL DEFAULT 0,
    ADD COLUMN transferred_in  numeric(38, 0) NOT NULL DEFAULT 0;
ALTER TABLE IF EXISTS daily_totals__next
    ADD COLUMN IF NOT EXISTS transferred_out numeric(38, 0) NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS transferred_in  numeric(38, 0) NOT NULL DEFAULT 0;

CREATE TABLE transfers (
    transfer_id  text PRIMARY KEY,
    from_account text NOT NULL,
    to_account   text NOT NULL,
    amount       bigint NOT NULL,
    currency     text NOT NULL,
    state        text NOT NULL,  -- debited (in transit), completed or failed (refunded)
    description  text NOT NULL,
    debited_at   timestamptz,
    credited_at  timestamptz,
    refunded_at  timestamptz,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX transfers_by_from ON transfers (from_account);
CREATE INDEX transfers_by_to ON transfers (to_account);
CREATE INDEX transfers_by_state ON transfers (state);
