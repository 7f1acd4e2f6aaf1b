"""Blue/green rebuilds: while writes and queries go on, resumed, discarded, refused on mismatch."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from cli.errors import ExitCode, exit_code_for
from esdblite.process import ServerProcess
from ledger.accounts.books import Books
from ledger.errors import CheckFailedError
from ledger.eventstore import AccountEventStore
from ledger.handler import Outcome
from ledger.service import Ledger
from ledger.writemodel import write_model_fold
from projections.consistency import wait_for_position
from projections.feed import SHADOW
from projections.names import PROJECTION_NAMES
from projections.queries import get_balance
from projections.rebuild import (
    RebuildPauseTimeoutError,
    RebuildVerificationError,
    discard,
    rebuild,
    shadow_exists,
)
from projections.runner import Progress
from projections.verify import verify
from tests.support.ids import new_account_id
from tests.support.runners import RunnerThread, catch_up
from tests.support.waiting import DEADLINE, eventually, retry_while_unavailable

NAMES = list(PROJECTION_NAMES)
TABLES = {"account_balances", "account_statements", "daily_totals", "transfers"}


class Interrupted(Exception):
    """Raised from a progress callback to stop a rebuild half-way."""


def seed(ledger: Ledger, accounts: int, deposits: int) -> tuple[list[str], int]:
    """Open accounts with some deposits each; (ids, account events written)."""
    ids = [new_account_id() for _ in range(accounts)]
    for acc in ids:
        ledger.open_account(acc, "Owner", "EUR")
        for i in range(deposits):
            ledger.deposit(acc, f"{1 + i % 5}.00", f"tx-{i}")
    return ids, accounts * (1 + deposits)


def table_rows(conn: psycopg.Connection[Any], table: str) -> list[tuple[Any, ...]]:
    return conn.execute(f"TABLE {table} ORDER BY 1, 2").fetchall()


def live_checkpoints(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT projection, position FROM projection_checkpoints WHERE projection = ANY(%s)"
        " ORDER BY 1",
        (NAMES,),
    ).fetchall()


def bookkeeping_of_shadow(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM projection_checkpoints WHERE projection = ANY(%(s)s))"
        " + (SELECT count(*) FROM projection_accounts WHERE projection = ANY(%(s)s))",
        {"s": [n + SHADOW for n in NAMES]},
    ).fetchone()
    return int(row[0]) if row else 0


class Writer(threading.Thread):
    """Keeps depositing at a small steady rate until stopped."""

    def __init__(self, ledger: Ledger, ids: list[str]) -> None:
        super().__init__(daemon=True, name="test-writer")
        self.ledger, self.ids = ledger, ids
        self.stopping = threading.Event()
        self.written = 0
        self.last: Outcome | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.wait(0.005):
                acc = self.ids[self.written % len(self.ids)]
                self.last = self.ledger.deposit(acc, "1.00", f"tx-w-{self.written}")
                self.written += 1
        except BaseException as exc:
            self.error = exc


class Reader(threading.Thread):
    """Keeps querying balances on its own connection, keeping any error."""

    def __init__(self, conn: psycopg.Connection[Any], ids: list[str]) -> None:
        super().__init__(daemon=True, name="test-reader")
        self.conn, self.ids = conn, ids
        self.stopping = threading.Event()
        self.answers = 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                for acc in self.ids:
                    assert get_balance(self.conn, acc) is not None, f"{acc} vanished"
                    self.answers += 1
            except BaseException as exc:
                self.errors.append(exc)


def test_a_rebuild_while_writes_and_queries_continue(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    make_conn: Callable[[], psycopg.Connection],
    start_runner: Callable[..., RunnerThread],
    database_url: str,
    db: psycopg.Connection,
) -> None:
    server = servers()
    ids, _ = seed(make_ledger(server.uri), accounts=4, deposits=30)
    quiet, _ = seed(make_ledger(server.uri), accounts=1, deposits=3)
    start_runner(server.uri)
    assert wait_for_position(db, make_store(server.uri).commit_position(), timeout=DEADLINE)
    # Drift only the rebuild can repair: no new event touches this row.
    db.execute(
        "UPDATE account_statements SET description = 'tampered'"
        " WHERE account_id = %s AND revision = 1",
        (quiet[0],),
    )
    writer, reader = Writer(make_ledger(server.uri), ids), Reader(make_conn(), ids + quiet)
    writer.start()
    reader.start()
    fold = write_model_fold(make_store(server.uri))
    during: dict[str, int] = {}

    def overlap(progress: Progress) -> None:
        # Make sure writes and queries really happen while the shadow is being built.
        if not during:
            during.update(written=writer.written, answers=reader.answers)
            eventually(lambda: writer.written >= during["written"] + 5, "writes during the build")
            eventually(lambda: reader.answers >= during["answers"] + 5, "queries during it")

    try:
        report = rebuild(database_url, server.uri, fold, batch_size=50, on_progress=overlap)
    finally:
        writer.stopping.set()
        reader.stopping.set()
        writer.join(DEADLINE)
        reader.join(DEADLINE)

    assert writer.error is None and reader.errors == []
    assert during and reader.answers > during["answers"]
    assert set(report.differences) == TABLES
    assert report.differences["account_statements"] >= 2  # the tampered line, both sides
    assert not report.resumed and report.swapped_at > 0 and report.events > 0
    assert not shadow_exists(db, NAMES) and bookkeeping_of_shadow(db) == 0
    assert writer.last is not None
    assert wait_for_position(db, writer.last.commit_position, timeout=DEADLINE)
    assert verify(db, fold) == []
    repaired = db.execute(
        "SELECT description FROM account_statements WHERE account_id = %s AND revision = 1",
        (quiet[0],),
    ).fetchone()
    assert repaired == ("",)


def test_a_rebuild_brings_the_shadow_to_where_the_live_runner_paused(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    start_runner: Callable[..., RunnerThread],
    database_url: str,
    db: psycopg.Connection,
) -> None:
    server = servers()
    ledger = make_ledger(server.uri)
    ids, events = seed(ledger, accounts=2, deposits=10)
    start_runner(server.uri)
    late: list[Outcome] = []

    def write_after_the_build(progress: Progress) -> None:
        # The last callback of the build: live gets ahead of the shadow before the pause.
        if progress.caught_up and not late:
            late.extend(ledger.deposit(ids[0], "7.00", f"tx-late-{i}") for i in range(3))
            assert wait_for_position(db, late[-1].commit_position, timeout=DEADLINE)

    fold = write_model_fold(make_store(server.uri))
    report = rebuild(database_url, server.uri, fold, on_progress=write_after_the_build)

    assert late and report.swapped_at == late[-1].commit_position
    assert report.events == events + 3
    assert verify(db, fold) == []
    row = get_balance(db, ids[0])
    assert row is not None and row.last_revision == late[-1].revision


def test_an_interrupted_rebuild_is_resumed_or_discarded(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection,
) -> None:
    server = servers()
    _, events = seed(make_ledger(server.uri), accounts=3, deposits=20)
    fold = write_model_fold(make_store(server.uri))
    built: list[int] = []

    def interrupt(progress: Progress) -> None:
        if progress.events >= 10:
            built.append(progress.events)
            raise Interrupted

    with pytest.raises(Interrupted):
        rebuild(database_url, server.uri, fold, batch_size=10, on_progress=interrupt)
    assert shadow_exists(db, NAMES) and not table_rows(db, "account_balances")

    resumed = rebuild(database_url, server.uri, fold, batch_size=10)

    assert resumed.resumed and resumed.events == events - built[-1]
    assert verify(db, fold) == [] and not shadow_exists(db, NAMES)
    statements = table_rows(db, "account_statements")
    assert len(statements) == events - 3
    with pytest.raises(Interrupted):
        rebuild(database_url, server.uri, fold, batch_size=10, on_progress=interrupt)

    fresh = rebuild(database_url, server.uri, fold, discard_previous=True)

    assert not fresh.resumed and fresh.events == events
    assert fresh.differences == dict.fromkeys(TABLES, 0)
    assert table_rows(db, "account_statements") == statements
    with pytest.raises(Interrupted):
        rebuild(database_url, server.uri, fold, batch_size=10, on_progress=interrupt)
    discard(db, NAMES)
    assert not shadow_exists(db, NAMES) and bookkeeping_of_shadow(db) == 0
    assert verify(db, fold) == []


def test_a_rebuild_that_fails_verification_keeps_live_and_shadow_tables(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection,
) -> None:
    server = servers()
    ids, _ = seed(make_ledger(server.uri), accounts=2, deposits=5)
    catch_up(database_url, server.uri)
    fold = write_model_fold(make_store(server.uri))
    before = {t: table_rows(db, t) for t in TABLES}
    checkpoints = live_checkpoints(db)
    honest = write_model_fold(make_store(server.uri))

    def lying_fold(upto: int) -> Books:
        # A copy: the rebuild may call a fold more than once (it folds ahead of the verify).
        books = honest(upto)
        lies = {a: s._replace(balance=s.balance + 1) for a, s in books.accounts.items()}
        return dataclasses.replace(books, accounts=lies)

    with pytest.raises(RebuildVerificationError) as refused:
        rebuild(database_url, server.uri, lying_fold)

    assert {(v.table, v.check, v.account_id) for v in refused.value.violations} == {
        ("account_balances__next", "wrong value", acc) for acc in ids
    }
    assert "off by -0.01 EUR" in str(refused.value)
    assert {t: table_rows(db, t) for t in TABLES} == before
    assert live_checkpoints(db) == checkpoints
    assert shadow_exists(db, NAMES)
    assert rebuild(database_url, server.uri, fold).resumed
    assert verify(db, fold) == []


def test_a_rebuild_refuses_a_corrupted_shadow_daily_total(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection,
) -> None:
    server = servers()
    seed(make_ledger(server.uri), accounts=3, deposits=20)
    catch_up(database_url, server.uri)
    fold = write_model_fold(make_store(server.uri))
    before = {t: table_rows(db, t) for t in TABLES}

    def interrupt(progress: Progress) -> None:
        if progress.events >= 10:
            raise Interrupted

    with pytest.raises(Interrupted):
        rebuild(database_url, server.uri, fold, batch_size=10, on_progress=interrupt)
    db.execute("UPDATE daily_totals__next SET deposited = deposited + 100")

    with pytest.raises(RebuildVerificationError) as refused:
        rebuild(database_url, server.uri, fold, batch_size=10)

    [violation, money] = refused.value.violations
    assert (violation.table, violation.check) == ("daily_totals__next", "wrong value")
    assert (money.table, money.check) == ("money", "wrong value")  # 1.00 EUR from nowhere
    assert "off by 1.00 EUR" in violation.detail
    assert {t: table_rows(db, t) for t in TABLES} == before
    assert shadow_exists(db, NAMES)
    assert rebuild(database_url, server.uri, fold, discard_previous=True).differences == (
        dict.fromkeys(TABLES, 0)
    )


def test_a_rebuild_whose_store_goes_away_during_the_pause_gives_up_and_resumes_live(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    start_runner: Callable[..., RunnerThread],
    database_url: str,
    db: psycopg.Connection,
) -> None:
    server = servers(durable=True)
    ledger = make_ledger(server.uri)
    ids, _ = seed(ledger, accounts=2, deposits=5)
    start_runner(server.uri)
    late: list[Outcome] = []
    paused: list[tuple[int, int]] = []

    def write_after_the_build(progress: Progress) -> None:
        # Live gets ahead of the shadow, so the pause has something to catch up.
        if progress.caught_up and not late:
            late.extend(ledger.deposit(ids[0], "2.00", f"tx-late-{i}") for i in range(3))
            assert wait_for_position(db, late[-1].commit_position, timeout=DEADLINE)

    def stop_the_store(live_at: int, shadow_at: int) -> None:
        paused.append((live_at, shadow_at))
        server.stop()

    fold = write_model_fold(make_store(server.uri))
    failures: list[BaseException] = []

    def attempt() -> None:
        try:
            rebuild(
                database_url,
                server.uri,
                fold,
                on_progress=write_after_the_build,
                on_pause=stop_the_store,
                pause_timeout=1.0,
            )
        except BaseException as exc:
            failures.append(exc)

    attempt_thread = threading.Thread(target=attempt, daemon=True, name="test-rebuild")
    attempt_thread.start()
    attempt_thread.join(DEADLINE)

    assert not attempt_thread.is_alive(), "the rebuild kept live paused instead of giving up"
    [(live_at, shadow_at)] = paused
    assert shadow_at < live_at == late[-1].commit_position
    [error] = failures
    assert isinstance(error, RebuildPauseTimeoutError) and isinstance(error, CheckFailedError)
    assert exit_code_for(error) == ExitCode.CHECK_FAILED == 5
    assert error.target == live_at and error.reached == shadow_at
    assert "did not reach the live projections' position" in str(error)
    assert "resumed" in str(error) and "kept" in str(error)
    assert shadow_exists(db, NAMES)
    server.start()
    after = retry_while_unavailable(lambda: ledger.deposit(ids[1], "3.00", "tx-after"))
    assert wait_for_position(db, after.commit_position, timeout=DEADLINE)
    retried = rebuild(database_url, server.uri, fold)

    assert retried.resumed and retried.swapped_at >= after.commit_position
    assert not shadow_exists(db, NAMES) and bookkeeping_of_shadow(db) == 0
    assert verify(db, fold) == []
