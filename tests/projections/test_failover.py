"""Highly available runners: a standby takes over from a killed active one, nothing applied twice
or skipped, and an active runner that lost its lock writes nothing more."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from ledger.service import Ledger
from projections.applier import PROJECTIONS, Applier
from projections.checkpoints import ensure_checkpoints, read_checkpoints
from projections.consistency import wait_for_position
from projections.db import migrate
from projections.heartbeat import Heartbeat
from projections.lease import HUNG_SILENCE_S, Lease, LeaseLostError, lease_url
from projections.names import PROJECTION_NAMES
from projections.pgserver import EmbeddedPostgres, free_port
from projections.status import read_status
from tests.projections.test_exactly_once import assert_exactly_once
from tests.support.ids import new_account_id
from tests.support.postgres import fresh_database
from tests.support.runners import RunnerThread, runner_process
from tests.support.waiting import DEADLINE, wait_until

KILLS = 10


class Writer:
    """Deposits round-robin on a thread until stopped, so that kills land mid-stream."""

    def __init__(self, ledger: Ledger, ids: list[str]) -> None:
        self.ledger, self.ids = ledger, ids
        self.written = 0
        self.last_position = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="test-writer")

    def _run(self) -> None:
        while not self.stop.is_set():
            acc = self.ids[self.written % len(self.ids)]
            outcome = self.ledger.deposit(acc, "1.00", f"tx-{self.written}")
            self.written += 1
            self.last_position = outcome.commit_position or self.last_position
            self.stop.wait(0.005)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive()


@pytest.fixture
def runners() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Runner processes of a test, all killed and reaped after it."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


def active_pid(db: psycopg.Connection[Any]) -> int | None:
    """The pid registered as active for every projection, if they agree."""
    pids = {
        r[0]
        for r in db.execute(
            "SELECT pid FROM projection_runners WHERE projection = ANY(%s) AND stopped_at IS NULL",
            (list(PROJECTION_NAMES),),
        )
    }
    return pids.pop() if len(pids) == 1 else None


def kill_the_active_runner(
    db: psycopg.Connection[Any], runners: list[subprocess.Popen[bytes]], writer: Writer
) -> tuple[float, float]:
    """kill -9 the active runner mid-stream; the seconds until a standby is active, and until
    it has applied a deposit written after the kill."""
    alive = {p.pid for p in runners if p.poll() is None}
    victim = wait_until(lambda: (pid := active_pid(db)) in alive and pid, what="an active runner")
    seen = writer.written
    wait_until(lambda: writer.written > seen + 5, what="writes before the kill")
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    next(p for p in runners if p.pid == victim).wait()
    alive.discard(victim)
    written = writer.written
    wait_until(lambda: active_pid(db) in alive, what="a standby to take over")
    active = time.monotonic() - killed_at
    wait_until(lambda: writer.written > written, what="a deposit after the kill")
    after = writer.last_position
    assert wait_for_position(db, after, timeout=DEADLINE)
    return active, time.monotonic() - killed_at


@pytest.fixture(scope="module")
def tcp_postgres() -> Iterator[EmbeddedPostgres]:
    """An embedded PostgreSQL that also listens on 127.0.0.1 (the runners' lock connections
    then carry TCP keepalives, as against a PostgreSQL on another machine)."""
    home = Path(tempfile.mkdtemp(prefix="ledger-test-pgtcp-"))
    home.chmod(0o711)  # PostgreSQL's user (as root) passes through to pg/
    server = EmbeddedPostgres(home / "pg" / "data", owner_dir=home / "pg", tcp_port=free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def tcp_database_url(tcp_postgres: EmbeddedPostgres) -> Iterator[str]:
    """A fresh database on the TCP server, as a URL over 127.0.0.1."""
    with fresh_database(tcp_postgres.url()) as url:
        yield make_conninfo(tcp_postgres.tcp_url(), dbname=conninfo_to_dict(url)["dbname"])


@pytest.mark.parametrize("count", [2, 3])
def test_a_standby_takes_over_after_each_kill_of_the_active_runner_and_nothing_is_doubled(
    count: int,
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection[Any],
    runners: list[subprocess.Popen[bytes]],
    record_property: Callable[[str, object], None],
) -> None:
    takeovers = kills_with_a_standby_taking_over(
        count, KILLS, servers, make_ledger, make_store, database_url, db, runners
    )
    record_property("takeover_s", [round(t, 3) for t, _ in takeovers])
    record_property("projecting_again_s", [round(t, 3) for _, t in takeovers])
    print(
        f"\n{count} runners, {KILLS} kills, seconds after kill -9 until a standby is active"
        f" (until it applied a deposit written after the kill): "
        f"{', '.join(f'{a:.2f} ({p:.2f})' for a, p in takeovers)}"
    )


def test_over_tcp_a_standby_takes_over_after_each_kill_of_the_active_runner(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    tcp_database_url: str,
    runners: list[subprocess.Popen[bytes]],
) -> None:
    params = conninfo_to_dict(tcp_database_url)
    assert (params["host"], "password" in params) == ("127.0.0.1", False)
    assert Path(str(params["passfile"])).stat().st_mode & 0o777 == 0o600
    with psycopg.connect(tcp_database_url, autocommit=True) as db:
        assert db.execute("SELECT inet_client_addr()::text").fetchone() == ("127.0.0.1/32",)
        migrate(db)
        kills_with_a_standby_taking_over(
            2, 3, servers, make_ledger, make_store, tcp_database_url, db, runners
        )


def test_a_hung_active_runner_is_replaced_and_after_it_resumes_it_writes_nothing(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    tcp_database_url: str,
    runners: list[subprocess.Popen[bytes]],
) -> None:
    # Over TCP: a stopped process's kernel still answers keepalives, so only the standby's
    # check of the holder's heartbeat can end its lock session.
    server = servers()
    ledger = make_ledger(server.uri)
    ids = [new_account_id() for _ in range(4)]
    for acc in ids:
        ledger.open_account(acc, "Owner", "EUR", "100.00")
    with psycopg.connect(tcp_database_url, autocommit=True) as db:
        migrate(db)
        for _ in range(2):
            runners.append(runner_process(tcp_database_url, server.uri, heartbeat_every=0.3))
        writer = Writer(make_ledger(server.uri), ids)
        writer.thread.start()
        alive = {p.pid for p in runners}
        hung = wait_until(lambda: (pid := active_pid(db)) in alive and pid, what="a leader")
        seen = writer.written
        wait_until(lambda: writer.written > seen + 5, what="writes before the stop")

        os.kill(hung, signal.SIGSTOP)
        try:
            wait_until(lambda: active_pid(db) == (alive - {hung}).pop(), what="a takeover")
            written = writer.written
            wait_until(lambda: writer.written > written, what="a deposit after the takeover")
            assert wait_for_position(db, writer.last_position, timeout=DEADLINE)
        finally:
            os.kill(hung, signal.SIGCONT)

        # Resumed, it finds its lock session ended (fenced: its batch is not written) and
        # stands by; the runner that took over stays active.
        wait_until(
            lambda: (
                db.execute("SELECT role FROM runner_instances WHERE pid = %s", (hung,)).fetchone()
                == ("standby",)
            ),
            what="the resumed runner to stand by",
        )
        writer.finish()
        assert wait_for_position(db, writer.last_position, timeout=DEADLINE)
        assert active_pid(db) == (alive - {hung}).pop()
        assert_exactly_once(db, make_store(server.uri), ids, writer.written)


def test_a_standby_ends_a_silent_holder_only_once_its_heartbeat_is_stale(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    holder = Lease(database_url, ["balances"])
    standby = Lease(database_url, ["balances"])
    # 1 s beats: stale after 3 s, far more than a loaded machine takes between a beat and the
    # standby's look (0.1 s beats went stale in that gap under load).
    heartbeat = Heartbeat(["balances"], 1.0)
    try:
        assert holder.try_acquire() and holder.session is not None
        heartbeat.register(db)

        def silent_but_beating() -> bool:
            heartbeat.beat(db)  # the holder's work goes on: its heartbeat stays fresh
            row = db.execute(
                "SELECT now() - state_change > make_interval(secs => %s)"
                " FROM pg_stat_activity WHERE pid = %s",
                (HUNG_SILENCE_S + 0.5, holder.session[0] if holder.session else 0),
            ).fetchone()
            return bool(row and row[0])

        wait_until(silent_but_beating, what="the lock session to be silent long enough")
        assert standby.end_hung_holder() == []
        assert holder.alive()  # (and so no longer silent)

        wait_until(silent_but_beating, what="the lock session to be silent again")
        # Now the heartbeat stops too (a hung process): the standby ends the lock session.
        ended = wait_until(standby.end_hung_holder, what="the hung holder's session to end")
        assert ended == [holder.session[0]]
        assert not holder.alive()
        assert wait_until(standby.try_acquire, what="the standby to take the lock")
    finally:
        holder.close()
        standby.close()


def test_the_holders_work_session_ends_if_cut_off_or_left_idle_in_a_batch(
    tcp_database_url: str,
) -> None:
    lease = Lease(tcp_database_url, ["balances"])
    work = psycopg.connect(tcp_database_url, autocommit=True)
    try:
        assert lease.take(threading.Event(), None, work) and lease.session is not None
        settings = work.execute(
            "SELECT current_setting('idle_in_transaction_session_timeout'),"
            " current_setting('tcp_user_timeout'), current_setting('application_name')"
        ).fetchone()
        assert settings == ("5s", "3000", f"ledger runner of lock session {lease.session[0]}")
    finally:
        lease.close()
        work.close()


def kills_with_a_standby_taking_over(
    count: int,
    kills: int,
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    database_url: str,
    db: psycopg.Connection[Any],
    runners: list[subprocess.Popen[bytes]],
) -> list[tuple[float, float]]:
    """`count` runners with deposits flowing; kill -9 the active one `kills` times (a new
    standby replaces it each time); every posting applied once at the end."""
    server = servers()
    ledger = make_ledger(server.uri)
    ids = [new_account_id() for _ in range(4)]
    for acc in ids:
        ledger.open_account(acc, "Owner", "EUR", "100.00")

    def start() -> None:
        runners.append(runner_process(database_url, server.uri, heartbeat_every=0.3))

    for _ in range(count):
        start()
    writer = Writer(make_ledger(server.uri), ids)
    writer.thread.start()
    takeovers: list[tuple[float, float]] = []
    for _ in range(kills):
        takeovers.append(kill_the_active_runner(db, runners, writer))
        start()  # keep `count` runners: the killed one comes back as a standby

    writer.finish()
    assert wait_for_position(db, writer.last_position, timeout=DEADLINE)
    assert_exactly_once(db, make_store(server.uri), ids, writer.written)
    assert len(takeovers) == kills
    return takeovers


def test_an_active_runner_whose_lock_session_ended_writes_nothing_more(
    database_url: str,
    make_conn: Callable[[], psycopg.Connection[Any]],
    db: psycopg.Connection[Any],
) -> None:
    lease = Lease(database_url, list(PROJECTION_NAMES))
    try:
        assert lease.try_acquire()
        conn = make_conn()
        ensure_checkpoints(conn, list(PROJECTION_NAMES))
        applier = Applier(conn, list(PROJECTIONS.values()), fence=lease.fence)
        applier.apply_batch([], 100)
        assert set(read_checkpoints(db, list(PROJECTION_NAMES)).values()) == {100}

        # The holder's session ends (a network cut the server noticed): a standby may now lead.
        assert lease.session is not None
        db.execute("SELECT pg_terminate_backend(%s)", (lease.session[0],))
        standby = Lease(database_url, list(PROJECTION_NAMES))
        try:
            assert wait_until(standby.try_acquire, what="the standby to take the lock")
            with pytest.raises(LeaseLostError, match="lost the lock"):
                applier.apply_batch([], 200)
        finally:
            standby.close()
        assert set(read_checkpoints(db, list(PROJECTION_NAMES)).values()) == {100}
        assert not lease.alive()
    finally:
        lease.close()


def test_a_lease_is_all_or_nothing(database_url: str) -> None:
    holder = Lease(database_url, ["balances"])
    wide = Lease(database_url, list(PROJECTION_NAMES))
    try:
        assert holder.try_acquire()
        assert not wide.try_acquire(wait=0.05)
        assert wide.conn is not None
        held = wide.conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND pid = pg_backend_pid()"
        ).fetchone()
        assert held == (0,)  # it let go of the ones it had taken
        holder.release()
        assert wide.try_acquire(wait=DEADLINE)
    finally:
        holder.close()
        wide.close()


def test_status_shows_the_active_runner_and_the_one_standing_by(
    servers: Callable[..., ServerProcess],
    start_runner: Callable[..., RunnerThread],
    db: psycopg.Connection[Any],
) -> None:
    server = servers()
    first = start_runner(server.uri, heartbeat_every=0.2)
    wait_until(lambda: first.runner.active, what="the first runner to lead")
    start_runner(server.uri, heartbeat_every=0.2)

    statuses = wait_until(
        lambda: [s for s in read_status(db) if s.standbys], what="a standby in status"
    )
    here = f"{socket.gethostname()}/{os.getpid()}"
    assert {(s.projection, s.runner, s.runner_host, s.runner_pid) for s in statuses} == {
        (name, "running", socket.gethostname(), os.getpid()) for name in PROJECTION_NAMES
    }
    assert {tuple(s.standbys) for s in statuses} == {(here,)}


def test_runners_of_different_projections_are_active_at_once_each_with_its_checkpoint(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    start_runner: Callable[..., RunnerThread],
    db: psycopg.Connection[Any],
) -> None:
    server = servers()
    ledger, acc = make_ledger(server.uri), new_account_id()
    ledger.open_account(acc, "Owner", "EUR")
    balances = start_runner(server.uri, projections=["balances"])
    statements = start_runner(server.uri, projections=["statements"])
    position = ledger.deposit(acc, "2.00", "tx-1").commit_position or 0

    wait_until(
        lambda: min(read_checkpoints(db, ["balances", "statements"]).values()) >= position,
        what="both projections to pass the deposit",
    )
    assert balances.runner.active and statements.runner.active
    assert read_checkpoints(db, ["daily_totals", "transfers"]) == {
        "daily_totals": 0,
        "transfers": 0,
    }
    runners = db.execute(
        "SELECT projection, runner_id FROM projection_runners ORDER BY projection"
    ).fetchall()
    assert [p for p, _ in runners] == ["balances", "statements"]
    assert len({r for _, r in runners}) == 2


def test_a_runner_whose_lock_session_ends_stands_by_and_the_other_takes_over(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    start_runner: Callable[..., RunnerThread],
    db: psycopg.Connection[Any],
) -> None:
    server = servers()
    ledger, acc = make_ledger(server.uri), new_account_id()
    ledger.open_account(acc, "Owner", "EUR", "100.00")
    first = start_runner(server.uri, heartbeat_every=0.2)
    wait_until(lambda: first.runner.active, what="the first runner to lead")
    session = first.runner.lease.session
    assert session is not None
    second = start_runner(server.uri, heartbeat_every=0.2)
    wait_until(lambda: any(s.standbys for s in read_status(db)), what="the second to stand by")

    db.execute("SELECT pg_terminate_backend(%s)", (session[0],))  # as a network cut would
    wait_until(lambda: second.runner.active, what="the second runner to take over")
    wait_until(lambda: not first.runner.active, what="the first runner to stand by")
    position = ledger.deposit(acc, "3.00", "tx-after").commit_position or 0

    assert wait_for_position(db, position, timeout=DEADLINE)
    assert_exactly_once(db, make_store(server.uri), [acc], 1)
    assert first.thread.is_alive() and first.error is None


def test_the_lock_connection_keeps_tcp_alive_and_a_unix_socket_is_left_alone() -> None:
    tcp = conninfo_to_dict(lease_url("postgresql://u@db.example:5432/ledger"))
    assert (tcp["keepalives_idle"], tcp["keepalives_count"], tcp["tcp_user_timeout"]) == (
        "1",
        "3",
        "3000",
    )
    unix = "postgresql://u@/ledger?host=/run/postgresql"
    assert lease_url(unix) == unix
