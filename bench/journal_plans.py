"""The journal's query plans on 1M postings: which index each filter uses (migration 007).

`python -m bench.journal_plans [DATABASE_URL] [--rows N]` loads N postings (1,000,000 by
default) over 1,000 accounts with COPY into a fresh embedded PostgreSQL (or the empty database
given), ANALYZEs, and prints the EXPLAIN of the journal, the export and the lookup by
transaction id, each with its time on this machine (noisy on a shared one: a direction, not a
figure)."""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from projections.db import connect, migrate
from projections.journal import JournalFilter, journal, journal_plan
from projections.pgserver import EmbeddedPostgres

ACCOUNTS = 1000
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
WORDS = ("salary", "rent", "groceries", "coffee", "refund", "invoice", "fees", "transport")
KINDS = ("deposit", "withdrawal", "deposit", "withdrawal", "reversal", "transfer_out")

FILTERS: dict[str, JournalFilter] = {
    "newest (no filter)": JournalFilter(),
    "--account": JournalFilter(account="acc-0042"),
    "--kind reversal": JournalFilter(kind="reversal"),
    "--from/--to one day": JournalFilter(start=dt.date(2025, 3, 1), end=dt.date(2025, 3, 1)),
    "--search invoice-7": JournalFilter(search="invoice-7777"),
    "--min 9990": JournalFilter(min_amount=Decimal("9990")),
    "--account --from --to": JournalFilter(
        account="acc-0042", start=dt.date(2025, 2, 1), end=dt.date(2025, 2, 28)
    ),
}


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="journal-plans-") as tmp:
        Path(tmp).chmod(0o711)  # ours: PostgreSQL's user (as root) may pass through to pg/
        postgres = EmbeddedPostgres(Path(tmp) / "pg" / "data", owner_dir=Path(tmp) / "pg")
        postgres.start()
        try:
            with connect(postgres.url()) as admin:
                admin.execute("CREATE DATABASE journal_bench")
            yield postgres.url("journal_bench")
        finally:
            postgres.stop()


def load(conn: psycopg.Connection[Any], rows: int) -> None:
    """`rows` postings over ACCOUNTS accounts, one a minute, in $all order, with COPY."""
    rng = random.Random(7)
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY account_balances (account_id, owner, currency, balance, overdraft_limit, status,"
            " last_revision, last_position, updated_at) FROM STDIN"
        ) as copy,
    ):
        for a in range(ACCOUNTS):
            copy.write_row((f"acc-{a:04d}", "Owner", "EUR", 0, 0, "open", 0, 0, START))
    balances = [0] * ACCOUNTS
    revisions = [0] * ACCOUNTS
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY account_statements (account_id, revision, position, event_id, transaction_id,"
            " kind, amount, balance_after, description, occurred_at) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(
            ["text", "int8", "int8", "uuid", "text", "text", "int8", "int8", "text", "timestamptz"]
        )
        for i in range(rows):
            a = rng.randrange(ACCOUNTS)
            kind = KINDS[i % len(KINDS)]
            amount = rng.randrange(1, 1_000_000) * (1 if kind in ("deposit", "reversal") else -1)
            balances[a] += amount
            revisions[a] += 1
            copy.write_row(
                (
                    f"acc-{a:04d}",
                    revisions[a],
                    (i + 1) * 100,
                    uuid.UUID(int=i),
                    f"tx-{i}",
                    kind,
                    amount,
                    balances[a],
                    f"{WORDS[i % len(WORDS)]}-{i % 10007}",
                    START + dt.timedelta(minutes=i),
                )
            )
    conn.execute("ANALYZE account_statements")
    conn.execute("ANALYZE account_balances")


def _timed(run: Any) -> float:
    began = time.perf_counter()
    run()
    return (time.perf_counter() - began) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url", nargs="?")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with _database(args.database_url) as url, connect(url) as conn:
        migrate(conn)
        began = time.perf_counter()
        with conn.transaction():
            load(conn, args.rows)
        print(f"loaded {args.rows:,} postings in {time.perf_counter() - began:.1f}s", flush=True)
        for name, f in FILTERS.items():
            ms = _timed(lambda f=f: journal(conn, f, limit=101))
            print(f"\n== journal {name} ({ms:.1f} ms)")
            print("\n".join(journal_plan(conn, f, limit=101)))
        print("\n== tx tx-777777 (accounts_of_transaction)")
        for (line,) in conn.execute(
            "EXPLAIN SELECT DISTINCT account_id FROM account_statements"
            " WHERE transaction_id = %s AND (%s::text IS NULL OR account_id = %s)",
            ("tx-777777", None, None),
        ):
            print(line)
        print("\n== export (streamed in $all order)")
        for (line,) in conn.execute(
            "EXPLAIN SELECT s.* FROM account_statements s"
            " JOIN account_balances b ON b.account_id = s.account_id ORDER BY s.position"
        ):
            print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
