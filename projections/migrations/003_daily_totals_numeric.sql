-- Daily totals add up the postings of every account of a currency in a day. A balance is
-- bounded (ledger.money.MAX_BALANCE, 10^15 minor units), and so is one posting, but not their
-- number: 9,224 postings of 10^15 in one day already overflow int8. numeric(38, 0) holds the
-- sum of as many postings as the bigint count can number (9.2 * 10^18 * 10^15 < 10^38).
ALTER TABLE daily_totals
    ALTER COLUMN deposited TYPE numeric(38, 0),
    ALTER COLUMN withdrawn TYPE numeric(38, 0),
    ALTER COLUMN reversed TYPE numeric(38, 0);

-- A rebuild's shadow table, if one was left for a retry, is swapped in later: widen it too.
ALTER TABLE IF EXISTS daily_totals__next
    ALTER COLUMN deposited TYPE numeric(38, 0),
    ALTER COLUMN withdrawn TYPE numeric(38, 0),
    ALTER COLUMN reversed TYPE numeric(38, 0);
