"""The read side's capacity, one projection at a time: applier events/s of each projection and
PostgreSQL's own rows/s, with no event store in the way (the events are made in memory)."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import Run
from bench.projections_bench import ACCOUNTS, META, REBUILD_BATCH, account_chunks
from bench.workload import NOW, new_account_id
from ledger.accounts.events import encode_metadata, serialise_event
from projections.applier import PROJECTIONS, Applier
from projections.db import connect, migrate
from projections.feed import ProjectedEvent
from projections.pgserver import EmbeddedPostgres


def projected_events(total: int) -> Iterator[ProjectedEvent]:
    """`total` events over ACCOUNTS accounts, round-robin, as a subscription delivers them."""
    accounts = [new_account_id() for _ in range(ACCOUNTS)]
    streams = [(acc, account_chunks(acc, total // ACCOUNTS)) for acc in accounts]
    revisions = dict.fromkeys(accounts, -1)
    position = 0
    while streams:
        still = []
        for account_id, chunks in streams:
            chunk = next(chunks, None)
            if chunk is None:
                continue
            still.append((account_id, chunks))
            for event in chunk:
                revisions[account_id] += 1
                position += 1
                event_type, data = serialise_event(event)
                yield ProjectedEvent(
                    account_id,
                    revisions[account_id],
                    position,
                    uuid.uuid4(),
                    event_type,
                    data,
                    encode_metadata(event, META),
                    NOW,
                )
        streams = still


def applier_events_per_s(
    conn: psycopg.Connection[Any], name: str, events: list[ProjectedEvent]
) -> float:
    """One projection's applier over the events, in the rebuild's batches."""
    applier = Applier(conn, [PROJECTIONS[name]])
    start = time.perf_counter()
    for first in range(0, len(events), REBUILD_BATCH):
        batch = events[first : first + REBUILD_BATCH]
        applier.apply_batch(batch, batch[-1].position)
    return len(events) / (time.perf_counter() - start)


def postgres_rows_per_s(conn: psycopg.Connection[Any], rows: int) -> float:
    """Plain INSERTs of a statement-sized row, REBUILD_BATCH to a transaction (PostgreSQL alone)."""
    conn.execute(
        "CREATE TABLE bench_rows (account_id text, revision bigint, amount bigint, "
        "balance bigint, description text, occurred_at timestamptz, "
        "PRIMARY KEY (account_id, revision))"
    )
    start = time.perf_counter()
    for first in range(0, rows, REBUILD_BATCH):
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO bench_rows VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (f"acc-{n % ACCOUNTS}", n, 100, n * 100, "bench deposit", NOW)
                    for n in range(first, min(first + REBUILD_BATCH, rows))
                ],
            )
    return rows / (time.perf_counter() - start)


def run(results: Run, full: bool) -> None:
    """Record applier_events_per_s_<projection> and postgres_rows_per_s."""
    total = 200_000 if full else 20_000
    events = list(projected_events(total))
    note = f"{len(events):,} events over {ACCOUNTS} accounts, {REBUILD_BATCH} per transaction"
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        Path(tmp).chmod(0o711)  # ours: PostgreSQL's user (as root) may pass through to pg/
        postgres = EmbeddedPostgres(Path(tmp) / "pg" / "data", owner_dir=Path(tmp) / "pg")
        try:
            postgres.start()
            with connect(postgres.url()) as admin:
                admin.execute("CREATE DATABASE ledger_capacity")
            with connect(postgres.url("ledger_capacity")) as conn:
                migrate(conn)
                for name in PROJECTIONS:
                    rate = applier_events_per_s(conn, name, events)
                    results.record(f"applier_events_per_s_{name}", rate, note)
                results.record(
                    "postgres_rows_per_s",
                    postgres_rows_per_s(conn, total),
                    note.replace("events", "rows", 1),
                )
        finally:
            postgres.stop()
