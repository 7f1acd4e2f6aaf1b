"""Projection status: checkpoint, head, lag, caught-up from PostgreSQL; a runner's liveness from
its heartbeat; the lag of a dead runner counted in the event store."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from datetime import datetime

import psycopg

from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from ledger.service import Ledger
from projections.names import PROJECTION_NAMES
from projections.runner import Lag, Progress, Runner
from projections.status import ProjectionStatus, count_in_event_store, read_status
from tests.support.ids import new_account_id
from tests.support.runners import RunnerThread, runner_process
from tests.support.waiting import wait_until


def test_status_before_any_runner_is_empty_but_answers(db: psycopg.Connection) -> None:
    status = read_status(db)

    assert [s.projection for s in status] == sorted(PROJECTION_NAMES)
    assert all((s.checkpoint, s.lag_events, s.caught_up) == (0, 0, False) for s in status)
    assert all((s.runner, s.heartbeat_at, s.alive) == ("stopped", None, False) for s in status)
    assert all(s.problems(max_lag_events=0) == ["runner stopped"] for s in status)


def test_status_reports_catch_up_then_lag_and_answers_with_the_store_down(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    start_runner: Callable[..., RunnerThread],
    database_url: str,
    db: psycopg.Connection,
) -> None:
    server = servers()
    ledger, acc = make_ledger(server.uri), new_account_id()
    ledger.open_account(acc, "Owner", "EUR")
    for i in range(9):
        ledger.deposit(acc, "1.00", f"tx-{i}")
    head = make_store(server.uri).commit_position()

    live = start_runner(server.uri)
    caught_up = status_when(db, lambda s: s.caught_up and s.head_position == head)
    for s in caught_up:
        assert (s.checkpoint, s.head_position, s.lag_events, s.lag_capped) == (head, head, 0, False)
        assert s.parked == 0 and s.runner_pid == os.getpid() and s.runner == "running"
        assert s.healthy(max_lag_events=0)

    live.stop()  # an orderly exit: the runner says it stopped

    for s in read_status(db):
        assert (s.runner, s.caught_up, s.checkpoint, s.lag_events) == ("stopped", False, head, 0)
        assert s.problems(max_lag_events=0) == ["runner stopped"]

    for i in range(30):
        ledger.deposit(acc, "1.00", f"tx-later-{i}")
    new_head = make_store(server.uri).commit_position()
    assert {s.checkpoint for s in read_status(db)} == {head}  # nothing runs: nothing moves

    stop = threading.Event()

    def after_first_batch(progress: Progress) -> None:
        stop.set()

    restarted = Runner(
        database_url, server.uri, batch_size=5, on_progress=after_first_batch, stop=stop
    )
    restarted.run()
    applied = restarted.progress.events
    assert applied <= 5

    behind = read_status(db)
    for s in behind:
        assert (s.head_position, s.lag_events) == (new_head, 30 - applied)
        assert s.checkpoint < new_head and not s.caught_up and s.lag_seconds >= 0
        assert not s.healthy(max_lag_events=0)

    server.stop()
    assert [without_age(s) for s in read_status(db)] == [without_age(s) for s in behind]


def status_when(
    db: psycopg.Connection, condition: Callable[[ProjectionStatus], bool]
) -> list[ProjectionStatus]:
    """Every projection's status, once the condition holds for each (polled, with a deadline)."""

    def met() -> list[ProjectionStatus]:
        found = read_status(db)
        return found if all(condition(s) for s in found) else []

    return wait_until(met, what="a projection status")


def without_age(status: ProjectionStatus) -> ProjectionStatus:
    """A status without its heartbeat's age (which grows with the database's clock)."""
    return dataclasses.replace(status, heartbeat_age_s=None)


def test_a_heartbeat_older_than_three_intervals_reads_as_stale(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    start_runner: Callable[..., RunnerThread],
    db: psycopg.Connection,
) -> None:
    server = servers()
    make_ledger(server.uri).open_account(new_account_id(), "Owner", "EUR")
    # The runner beats every 100 s, so the test alone moves the heartbeat.
    start_runner(server.uri, heartbeat_every=100.0)
    status_when(db, lambda s: s.caught_up)

    set_heartbeat_age(db, seconds=299)
    assert {(s.runner, s.caught_up) for s in read_status(db)} == {("running", True)}

    set_heartbeat_age(db, seconds=301)
    stale = read_status(db)
    assert {(s.runner, s.alive, s.caught_up) for s in stale} == {("stale", False, False)}
    assert all(s.problems(max_lag_events=100) == ["runner stale"] for s in stale)
    assert all(s.heartbeat_age_s is not None and s.heartbeat_age_s >= 301 for s in stale)


def set_heartbeat_age(db: psycopg.Connection, *, seconds: float) -> None:
    """Move every runner's last heartbeat `seconds` into the past."""
    db.execute(
        "UPDATE projection_runners SET heartbeat_at = now() - make_interval(secs => %s)",
        (seconds,),
    )


def test_an_idle_runner_keeps_beating(
    servers: Callable[..., ServerProcess],
    start_runner: Callable[..., RunnerThread],
    db: psycopg.Connection,
) -> None:
    server = servers()
    start_runner(server.uri, heartbeat_every=0.05)
    first = wait_until(lambda: heartbeats(db), what="a first heartbeat")

    def beaten_again() -> dict[str, datetime]:
        now = heartbeats(db)
        return now if all(now[p] > first[p] for p in first) else {}

    later = wait_until(beaten_again, what="a later heartbeat with nothing to project")
    assert set(later) == set(PROJECTION_NAMES)


def heartbeats(db: psycopg.Connection) -> dict[str, datetime]:
    """Each projection's last heartbeat."""
    return dict(db.execute("SELECT projection, heartbeat_at FROM projection_runners").fetchall())


def test_a_killed_runner_goes_stale_and_its_lag_is_counted_in_the_event_store(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    database_url: str,
    db: psycopg.Connection,
) -> None:
    server = servers()
    ledger, acc = make_ledger(server.uri), new_account_id()
    ledger.open_account(acc, "Owner", "EUR")
    runner = runner_process(database_url, server.uri, heartbeat_every=0.3)
    try:
        status_when(db, lambda s: s.caught_up)
        pid = {s.runner_pid for s in read_status(db)}
        assert pid == {runner.pid}
    finally:
        runner.kill()  # kill -9: no orderly exit, its rows stay as they were
        runner.wait()
    for i in range(4):
        ledger.deposit(acc, "1.00", f"tx-{i}")

    stale = status_when(db, lambda s: s.runner == "stale")
    # Its last record still says it had nothing left to do: only a count can tell.
    assert {(s.lag_events, s.lag_current, s.caught_up) for s in stale} == {(0, False, False)}

    def count(checkpoint: int, since: datetime | None) -> Lag | None:
        return count_in_event_store(server.uri, checkpoint, since)

    counted = read_status(db, count=count)
    assert {(s.lag_events, s.lag_current, s.caught_up, s.runner) for s in counted} == {
        (4, True, False, "stale")
    }
    assert all(s.problems(max_lag_events=10) == ["runner stale"] for s in counted)

    server.stop()
    uncounted = read_status(db, count=count)
    assert {(s.lag_events, s.lag_current) for s in uncounted} == {(0, False)}


def a_status(**changes: object) -> ProjectionStatus:
    """A live, caught-up projection's status, with some fields changed."""
    status = ProjectionStatus(
        projection="balances",
        checkpoint=10,
        head_position=10,
        lag_events=0,
        lag_capped=False,
        lag_seconds=0.0,
        caught_up=True,
        parked=0,
        runner_pid=1,
        updated_at=None,
        runner="running",
        runner_host="h",
        heartbeat_at=None,
        heartbeat_age_s=0.5,
        checkpoint_at=None,
        lag_current=True,
    )
    return dataclasses.replace(status, **changes)  # type: ignore[arg-type]


def test_health_names_every_problem_and_a_live_caught_up_runner_has_none() -> None:
    assert a_status().problems(max_lag_events=0) == []
    assert not a_status().behind
    assert a_status(lag_events=101).problems(max_lag_events=100) == ["lag 101 events"]
    assert a_status(lag_events=100).problems(max_lag_events=100) == []
    assert a_status(lag_events=5).behind
    assert a_status(lag_events=7, lag_capped=True).problems(max_lag_events=100) == ["lag 7+ events"]
    dead = a_status(runner="stale", lag_events=3, parked=2)
    assert dead.behind and not dead.alive
    assert dead.problems(max_lag_events=0) == ["runner stale", "lag 3 events", "2 parked"]
    assert a_status(runner="stopped").problems(max_lag_events=0) == ["runner stopped"]
