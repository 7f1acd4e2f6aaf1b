"""Blue/green rebuild: fill shadow tables from the start of $all, verify at a position, swap."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from esdbclient import EventStoreDBClient
from psycopg import sql

from ledger.accounts.books import Books
from ledger.errors import CheckFailedError
from projections.applier import PROJECTIONS, pause_key
from projections.checkpoints import advance_checkpoint, read_checkpoints
from projections.db import connect, migrate
from projections.fanout import ApplierPool
from projections.feed import FEED_FILTER, SHADOW
from projections.runner import Progress, Runner
from projections.verify import Violation, WriteModelFold, verify


class RebuildVerificationError(CheckFailedError):
    """The shadow tables do not match the write model; they are kept for inspection."""

    def __init__(self, violations: list[Violation]) -> None:
        shown = "; ".join(str(v) for v in violations[:3])
        super().__init__(
            f"the rebuilt read models failed verification ({len(violations)} violations: "
            f"{shown}); the live tables are untouched and the shadow tables are kept for "
            "inspection"
        )
        self.violations = violations


log = logging.getLogger("projections.rebuild")

FANOUT_BATCH_MS = 1000.0  # the most a per-projection build waits to fill a batch
PAUSE_TIMEOUT = 30.0  # seconds a rebuild may hold the live projections paused


class RebuildPauseTimeoutError(CheckFailedError):
    """The shadow did not catch up while live was paused; live resumed, the shadow is kept."""

    def __init__(self, timeout: float, target: int, reached: int) -> None:
        super().__init__(
            f"the rebuild gave up: the shadow tables did not reach the live projections' position"
            f" {target} within the {timeout:g}s pause (they are at {reached}; is the event store"
            " reachable?). The live projections have resumed and the shadow tables are kept:"
            " run the rebuild again to resume it"
        )
        self.timeout, self.target, self.reached = timeout, target, reached


@dataclass
class RebuildReport:
    """What a rebuild did."""

    projections: list[str]
    events: int = 0
    seconds: float = 0.0
    swapped_at: int = 0
    resumed: bool = False
    differences: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        """Throughput of the build phase."""
        return self.events / self.seconds if self.seconds else 0.0


def _tables(names: Sequence[str]) -> list[str]:
    return [t for n in names for t in PROJECTIONS[n].tables]


def shadow_exists(conn: psycopg.Connection[Any], names: Sequence[str]) -> bool:
    """Whether an interrupted rebuild left shadow tables behind."""
    row = conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
        " AND tablename = ANY(%s)",
        ([t + SHADOW for t in _tables(names)],),
    ).fetchone()
    return bool(row and row[0])


def discard(conn: psycopg.Connection[Any], names: Sequence[str]) -> None:
    """Drop a rebuild's shadow tables and bookkeeping."""
    slots = [n + SHADOW for n in names]
    with conn.transaction():
        for table in _tables(names):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table + SHADOW)))
        for bookkeeping in ("projection_checkpoints", "projection_accounts", "parked_events"):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE projection = ANY(%s)").format(
                    sql.Identifier(bookkeeping)
                ),
                (slots,),
            )


def _create_shadow(conn: psycopg.Connection[Any], names: Sequence[str]) -> None:
    with conn.transaction():
        for table in _tables(names):
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING ALL)").format(
                    sql.Identifier(table + SHADOW), sql.Identifier(table)
                )
            )


def _differences(conn: psycopg.Connection[Any], table: str) -> int:
    """Rows that differ between the live table and its shadow (either side)."""
    live, shadow = sql.Identifier(table), sql.Identifier(table + SHADOW)
    row = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM ((TABLE {live} EXCEPT TABLE {shadow})"
            " UNION ALL (TABLE {shadow} EXCEPT TABLE {live})) d"
        ).format(live=live, shadow=shadow)
    ).fetchone()
    return int(row[0]) if row else 0


def rebuild(
    database_url: str,
    eventstore_uri: str,
    fold: WriteModelFold,
    *,
    projections: Sequence[str] | None = None,
    discard_previous: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    batch_size: int = 1000,
    pause_timeout: float = PAUSE_TIMEOUT,
    on_pause: Callable[[int, int], None] | None = None,
    per_projection: bool = False,
) -> RebuildReport:
    """Rebuild projections without downtime; raise RebuildVerificationError on a mismatch.

    Live projections are paused for at most `pause_timeout` seconds of catching up (then
    RebuildPauseTimeoutError); `on_pause(live_at, shadow_at)` is called once they are paused.
    With `per_projection`, the build writes each projection's shadow in a process of its own
    (projections.fanout), this process reading $all once for them all; verification, the
    pause and the swap stay here. A failed applier process raises ApplierProcessError.
    """
    names = list(projections or PROJECTIONS)
    conn = connect(database_url)
    prefold: Prefold | None = None
    try:
        migrate(conn)
        report = RebuildReport(names)
        if discard_previous:
            discard(conn, names)
        report.resumed = shadow_exists(conn, names)
        _create_shadow(conn, names)
        started = time.monotonic()
        # The verify's fold reads the whole log again: start it now, beside the build.
        fold = prefold = Prefold(fold, eventstore_uri)
        # 1 build: the live tables keep serving and following new events meanwhile.
        report.events = _build(
            database_url, eventstore_uri, names, batch_size, on_progress, per_projection
        )
        report.seconds = time.monotonic() - started
        # 2 verify the shadow against the write model at its own position S, while live runs.
        built_at = min(read_checkpoints(conn, [n + SHADOW for n in names]).values())
        violations = verify(conn, fold, suffix=SHADOW, projections=names)
        if violations:
            raise RebuildVerificationError(violations)
        # 3 pause live at P, bring the shadow to P, re-verify what moved, swap: one transaction.
        with conn.transaction():
            for name in names:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (pause_key(name),))
            positions = read_checkpoints(conn, names + [n + SHADOW for n in names])
            live_at = min(positions[n] for n in names)
            shadow_at = min(positions[n + SHADOW] for n in names)
            if on_pause:
                on_pause(live_at, shadow_at)
            if shadow_at < live_at:
                report.events += _catch_up(
                    conn, database_url, eventstore_uri, names, live_at, pause_timeout
                )
                shadow_at = live_at
            swap_at = max(live_at, shadow_at)
            # Only what moved since S needs checking again (the fold reads only the events since).
            violations = verify(conn, fold, suffix=SHADOW, projections=names, since=built_at)
            if violations:
                raise RebuildVerificationError(violations)
            for name in names:
                for table in PROJECTIONS[name].tables:
                    report.differences[table] = _differences(conn, table)
            _swap(conn, names, swap_at)
            report.swapped_at = swap_at
        return report
    finally:
        if prefold is not None:
            prefold.settle()
        conn.close()


class Prefold:
    """A fold that starts folding up to the head of $all at once, on a thread of its own;
    called (from one thread), it waits for that, then folds on from there as usual."""

    def __init__(self, fold: WriteModelFold, eventstore_uri: str) -> None:
        self.fold = fold
        self.thread = threading.Thread(
            target=self._ahead, args=(eventstore_uri,), name="rebuild-prefold", daemon=True
        )
        self.thread.start()

    def _ahead(self, eventstore_uri: str) -> None:
        try:
            self.fold(_head(eventstore_uri))
        except Exception as exc:  # the verify's own call folds on from where this stopped
            log.warning("folding the write model ahead of the verify failed: %s", exc)

    def settle(self) -> None:
        """Wait for the thread: the fold is not for two threads (a caller may reuse it)."""
        self.thread.join()

    def __call__(self, upto: int) -> Books:
        """The books at `upto` (see WriteModelFold)."""
        self.settle()
        return self.fold(upto)


def _head(eventstore_uri: str) -> int:
    """The position of the last account or transfer event (0: none)."""
    client = EventStoreDBClient(eventstore_uri)
    try:
        last = client.read_all(
            backwards=True, filter_include=FEED_FILTER, filter_by_stream_name=True, limit=1
        )
        try:
            return max((e.commit_position or 0 for e in last), default=0)
        finally:
            last.stop()
    finally:
        client.close()


def _build(
    database_url: str,
    eventstore_uri: str,
    names: Sequence[str],
    batch_size: int,
    on_progress: Callable[[Progress], None] | None,
    per_projection: bool,
) -> int:
    """Fill the shadow tables up to the head of $all; the events read."""
    pool = ApplierPool(database_url, names, batch_size) if per_projection else None
    fanned: dict[str, Any] = {}
    if pool is not None:
        fanned = {
            # Applying is the children's: without a wait here, batches would close at the
            # runner's 50 ms timer, smaller, each one more transaction in every child.
            "batch_ms": FANOUT_BATCH_MS,
            "make_applier": pool.applier,
            # The children write under this runner's lease: they finish before it is released.
            "settle": pool.drain,
        }
    try:
        shadow = Runner(
            database_url,
            eventstore_uri,
            projections=names,
            suffix=SHADOW,
            batch_size=batch_size,
            on_progress=on_progress,
            **fanned,
        )
        return shadow.run(until_caught_up=True).events
    finally:
        if pool is not None:
            pool.close()


def _catch_up(
    conn: psycopg.Connection[Any],
    database_url: str,
    eventstore_uri: str,
    names: Sequence[str],
    target: int,
    timeout: float,
) -> int:
    """Bring the shadow to `target` while live is paused, giving up after `timeout` seconds.

    Giving up raises inside the caller's transaction: its rollback releases the pause locks, so
    live resumes; what the shadow applied meanwhile is committed and a retry resumes from it.
    """
    give_up = threading.Event()
    timer = threading.Timer(timeout, give_up.set)
    timer.daemon = True
    runner = Runner(database_url, eventstore_uri, projections=names, suffix=SHADOW, stop=give_up)
    timer.start()
    try:
        progress = runner.run(stop_at=target)
    finally:
        timer.cancel()
        timer.join()
    if progress.position < target:
        reached = min(read_checkpoints(conn, [n + SHADOW for n in names]).values())
        raise RebuildPauseTimeoutError(timeout, target, reached)
    return progress.events


def _swap(conn: psycopg.Connection[Any], names: Sequence[str], position: int) -> None:
    for name in names:
        for table in PROJECTIONS[name].tables:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
            conn.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    sql.Identifier(table + SHADOW), sql.Identifier(table)
                )
            )
        for bookkeeping in ("projection_accounts", "parked_events"):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE projection = %s").format(sql.Identifier(bookkeeping)),
                (name,),
            )
            conn.execute(
                sql.SQL("UPDATE {} SET projection = %s WHERE projection = %s").format(
                    sql.Identifier(bookkeeping)
                ),
                (name, name + SHADOW),
            )
        advance_checkpoint(conn, name, position)
        conn.execute("DELETE FROM projection_checkpoints WHERE projection = %s", (name + SHADOW,))
