"""Rebuilds with one applier process per projection: the same tables as one process, a failed
or killed applier fails the rebuild with live untouched, an interrupted one resumes, and no
applier process outlives its coordinator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from cli.errors import ExitCode, exit_code_for
from esdblite.process import ServerProcess
from ledger.errors import BusinessRuleError
from ledger.eventstore import AccountEventStore
from ledger.service import Ledger
from ledger.writemodel import write_model_fold
from projections.applier import runner_key
from projections.checkpoints import read_checkpoints
from projections.fanout import ApplierProcessError
from projections.feed import SHADOW
from projections.names import PROJECTION_NAMES
from projections.rebuild import rebuild, shadow_exists
from projections.runner import Progress
from projections.verify import WriteModelFold, verify
from tests.projections.test_rebuild import (
    NAMES,
    TABLES,
    Interrupted,
    live_checkpoints,
    seed,
    table_rows,
)
from tests.support.ids import new_account_id
from tests.support.runners import catch_up
from tests.support.waiting import eventually, wait_until

ROOT = Path(__file__).resolve().parents[2]
SLOTS = [name + SHADOW for name in PROJECTION_NAMES]


def appliers(pid: int | None = None) -> dict[str, psutil.Process]:
    """The applier processes (by projection) below a process (this one by default)."""
    found = {}
    for child in psutil.Process(pid).children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if "projections.fanout" in cmdline and child.status() != psutil.STATUS_ZOMBIE:
            found[cmdline[cmdline.index("projections.fanout") + 1]] = child
    return found


def seed_every_kind(ledger: Ledger) -> None:
    """Every kind of account event, a completed transfer and a refused one (both streams)."""
    ids, _ = seed(ledger, accounts=3, deposits=20)
    ledger.withdraw(ids[0], "2.00", "tx-w")
    ledger.reverse(ids[0], "tx-w", "tx-r")
    ledger.set_overdraft_limit(ids[1], "10.00")
    ledger.transfer(ids[0], ids[1], "4.00", "tr-per-projection")
    with pytest.raises(BusinessRuleError):
        ledger.transfer(ids[2], ids[1], "1000.00", "tr-refused")
    closing = new_account_id()
    ledger.open_account(closing, "Owner", "EUR")
    ledger.deposit(closing, "1.00", "tx-in")
    ledger.withdraw(closing, "1.00", "tx-out")
    ledger.close_account(closing)


def test_a_per_projection_rebuild_gives_the_tables_of_a_one_process_rebuild(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection[Any],
) -> None:
    server = servers()
    seed_every_kind(make_ledger(server.uri))
    fold = write_model_fold(make_store(server.uri))
    one = rebuild(database_url, server.uri, fold, batch_size=10)
    tables = {t: table_rows(db, t) for t in TABLES}

    fanned = rebuild(database_url, server.uri, fold, batch_size=10, per_projection=True)

    assert fanned.events == one.events and fanned.swapped_at == one.swapped_at
    assert fanned.differences == dict.fromkeys(TABLES, 0)
    assert {t: table_rows(db, t) for t in TABLES} == tables
    # the transfers projection had both kinds to build: a completed transfer and a refused one
    assert {row[0] for row in table_rows(db, "transfers")} == {"tr-per-projection", "tr-refused"}
    assert verify(db, fold) == [] and not shadow_exists(db, NAMES)
    assert appliers() == {}


def live(db: psycopg.Connection[Any]) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The live tables' rows and checkpoints."""
    return {t: table_rows(db, t) for t in TABLES}, live_checkpoints(db)


def failed_build(
    database_url: str, uri: str, fold: WriteModelFold, sabotage: Callable[[], object]
) -> ApplierProcessError:
    """A per-projection rebuild that calls `sabotage()` once, 10 events in; the error it raises."""
    done: list[bool] = []

    def once(progress: Progress) -> None:
        if progress.events >= 10 and not done:
            sabotage()
            done.append(True)

    with pytest.raises(ApplierProcessError) as failed:
        rebuild(database_url, uri, fold, batch_size=10, on_progress=once, per_projection=True)
    return failed.value


def test_an_applier_that_fails_fails_the_rebuild_and_leaves_live_untouched(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection[Any],
) -> None:
    server = servers()
    seed(make_ledger(server.uri), accounts=3, deposits=20)
    catch_up(database_url, server.uri)
    fold = write_model_fold(make_store(server.uri))
    before = live(db)

    error = failed_build(
        database_url,
        server.uri,
        fold,
        # A shadow table daily_totals' applier cannot write: its next batch fails.
        lambda: db.execute("ALTER TABLE daily_totals__next RENAME COLUMN deposited TO broken"),
    )

    assert "applier process of daily_totals (pid " in str(error)
    assert 'UndefinedColumn: column "deposited"' in str(error)
    assert "live tables are untouched" in str(error) and "run the rebuild again" in str(error)
    assert exit_code_for(error) == ExitCode.CHECK_FAILED == 5
    assert live(db) == before
    assert shadow_exists(db, NAMES) and appliers() == {}
    db.execute("ALTER TABLE daily_totals__next RENAME COLUMN broken TO deposited")

    resumed = rebuild(database_url, server.uri, fold, per_projection=True)

    assert resumed.resumed and verify(db, fold) == []
    assert resumed.differences == dict.fromkeys(TABLES, 0)


def test_a_killed_applier_fails_the_rebuild_and_a_rerun_resumes_it(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection[Any],
) -> None:
    server = servers()
    _, events = seed(make_ledger(server.uri), accounts=3, deposits=20)
    catch_up(database_url, server.uri)
    fold = write_model_fold(make_store(server.uri))
    before = live(db)
    killed: list[int] = []

    def kill_the_statements_applier() -> None:
        child = appliers()["statements"]
        child.send_signal(signal.SIGKILL)
        killed.append(child.pid)

    error = failed_build(database_url, server.uri, fold, kill_the_statements_applier)

    assert f"applier process of statements (pid {killed[0]}): it exited with code -9" in str(error)
    assert live(db) == before
    assert shadow_exists(db, NAMES) and appliers() == {}

    resumed = rebuild(database_url, server.uri, fold, per_projection=True)

    assert resumed.resumed and resumed.events <= events
    assert resumed.differences == dict.fromkeys(TABLES, 0)
    assert verify(db, fold) == [] and not shadow_exists(db, NAMES)


def test_the_appliers_write_nothing_once_the_rebuilds_lease_is_gone(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection[Any],
) -> None:
    server = servers()
    seed(make_ledger(server.uri), accounts=3, deposits=20)
    fold = write_model_fold(make_store(server.uri))
    at_the_loss: list[dict[str, int]] = []

    def end_the_lease_session() -> None:
        # As if the rebuild's lock connection died: another rebuild could now take the slots.
        key = {"key": runner_key("balances" + SHADOW)}
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND ((classid::bigint << 32) | objid::bigint) = %(key)s",
            key,
        )
        eventually(lambda: not lock_held(db, key), "the lock to go with its session")
        at_the_loss.append(read_checkpoints(db, SLOTS))

    error = failed_build(database_url, server.uri, fold, end_the_lease_session)

    assert "LeaseLostError: lost the lock of balances__next" in str(error)
    assert "nothing of this batch was written" in str(error)
    assert read_checkpoints(db, SLOTS) == at_the_loss[0]
    assert appliers() == {}


def lock_held(db: psycopg.Connection[Any], key: dict[str, int]) -> bool:
    return bool(
        db.execute(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
            " AND ((classid::bigint << 32) | objid::bigint) = %(key)s",
            key,
        ).fetchone()
    )


def test_an_interrupted_per_projection_rebuild_resumes_where_its_appliers_stopped(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection[Any],
) -> None:
    server = servers()
    _, events = seed(make_ledger(server.uri), accounts=3, deposits=20)
    fold = write_model_fold(make_store(server.uri))
    built: list[int] = []

    def interrupt(progress: Progress) -> None:
        if progress.events >= 20:
            built.append(progress.events)
            raise Interrupted

    with pytest.raises(Interrupted):
        rebuild(
            database_url,
            server.uri,
            fold,
            batch_size=10,
            on_progress=interrupt,
            per_projection=True,
        )
    assert shadow_exists(db, NAMES) and not table_rows(db, "account_balances")
    assert appliers() == {}

    resumed = rebuild(database_url, server.uri, fold, batch_size=10, per_projection=True)

    # What was handed to the appliers before the interrupt was committed by each of them.
    assert resumed.resumed and resumed.events == events - built[-1]
    assert verify(db, fold) == [] and not shadow_exists(db, NAMES)
    assert len(table_rows(db, "account_statements")) == events - 3


COORDINATOR = """
import sys, threading
from ledger.errors import BusinessRuleError
from ledger.eventstore import AccountEventStore
from ledger.writemodel import write_model_fold
from projections.rebuild import rebuild

def hold(progress):
    print("building", flush=True)
    threading.Event().wait()  # until killed

database_url, uri = sys.argv[1:]
fold = write_model_fold(AccountEventStore.connect(uri))
rebuild(database_url, uri, fold, batch_size=10, on_progress=hold, per_projection=True)
"""


def test_the_appliers_exit_when_their_coordinator_is_killed(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    database_url: str,
    db: psycopg.Connection[Any],
) -> None:
    server = servers()
    seed(make_ledger(server.uri), accounts=2, deposits=20)
    coordinator = subprocess.Popen(
        [sys.executable, "-c", COORDINATOR, database_url, server.uri],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    children: dict[str, psutil.Process] = {}
    try:
        assert coordinator.stdout is not None
        assert coordinator.stdout.readline() == "building\n"

        def all_started() -> dict[str, psutil.Process] | None:
            found = appliers(coordinator.pid)
            return found if len(found) == len(NAMES) else None

        children = wait_until(all_started, what="an applier process per projection")
        assert sorted(children) == sorted(PROJECTION_NAMES)

        coordinator.kill()
        coordinator.wait()

        eventually(
            lambda: all(map(gone, children.values())),
            "every applier process to exit after its coordinator",
        )
    finally:
        coordinator.kill()
        coordinator.wait()
        for child in children.values():
            if not gone(child):
                child.kill()
    assert shadow_exists(db, NAMES)


def gone(process: psutil.Process) -> bool:
    """Whether a process has exited (a zombie has: only its exit status is left)."""
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
