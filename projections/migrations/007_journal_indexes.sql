-- The journal, the ledger's export and lookups by transaction id read account_statements
-- across accounts: in $all order (newest first for the journal, oldest first for an export),
-- by time, by transaction id, and by a word of the description (trigrams serve ILIKE '%word%').
-- A rebuild's shadow table copies these with LIKE ... INCLUDING ALL.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX account_statements_by_global_position ON account_statements (position);
CREATE INDEX account_statements_by_occurred_at ON account_statements (occurred_at);
CREATE INDEX account_statements_by_transaction ON account_statements (transaction_id);
CREATE INDEX account_statements_by_description ON account_statements
    USING gin (description gin_trgm_ops);
