"""Fixtures for the read-side suite: PostgreSQL, esdblite, fresh databases, feeds and runners.

Set LEDGER_TEST_DATABASE_URL to a PostgreSQL server URL (a role that may create databases) to
use it instead of the embedded server, and LEDGER_TEST_ESDB_URI to use an external event store
for the tests that share one; tests that need a whole store to themselves, or restart it,
always start a private esdblite.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from esdblite.process import ServerProcess
from ledger.accounts.commands import (
    AccountCommand,
    ChangeOverdraftLimit,
    CloseAccount,
    Command,
    CommandMeta,
    Deposit,
    OpenAccount,
    Reverse,
    Withdraw,
    make_command,
)
from ledger.accounts.decider import State, decide, evolve, initial_state
from ledger.accounts.events import AccountEvent, Posting, encode_metadata, serialise_event
from ledger.errors import ServiceUnavailableError
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from projections.applier import PROJECTIONS, Applier, BatchResult
from projections.db import connect, migrate
from projections.feed import ProjectedEvent
from projections.runner import Runner

EXTERNAL_DATABASE_URL = os.environ.get("LEDGER_TEST_DATABASE_URL") or None
EXTERNAL_ESDB_URI = os.environ.get("LEDGER_TEST_ESDB_URI") or None
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
META = CommandMeta(correlation_id="corr-1", causation_id="cause-1", actor="test:projections")
DEADLINE = 30.0  # seconds any awaited condition gets before the test fails
T = TypeVar("T")


def new_account_id() -> str:
    """An account id no other test uses."""
    return f"acc-{uuid.uuid4().hex}"


def eventually(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Poll a condition until it holds; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause.wait(0.02)


def retry_while_unavailable(call: Callable[[], T], timeout: float = DEADLINE) -> T:
    """Call until the event store answers: after a restart, gRPC may still be backing off.

    Only for idempotent calls (commands carry their transaction id, so a retry posts once).
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        try:
            return call()
        except ServiceUnavailableError:
            if time.monotonic() > deadline:
                raise
            pause.wait(0.05)


def waiting_for_advisory_lock(conn: psycopg.Connection[Any]) -> bool:
    """Whether a session of this database waits for an advisory lock (a runner, a replay)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    return bool(row and row[0])


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server for the session: embedded, unless LEDGER_TEST_DATABASE_URL is set."""
    if EXTERNAL_DATABASE_URL:
        yield EXTERNAL_DATABASE_URL
        return
    from projections.pgserver import EmbeddedPostgres

    home = tmp_path_factory.mktemp("pg")
    server = EmbeddedPostgres(home / "data", owner_dir=home)
    server.start()
    try:
        yield server.url()
    finally:
        server.stop()


@pytest.fixture
def database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped (connections and all) afterwards."""
    name = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(pg_server_url, dbname=name)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def make_conn(database_url: str) -> Iterator[Callable[[], psycopg.Connection[Any]]]:
    """A factory of autocommit connections to the test database (migrated), closed after."""
    made: list[psycopg.Connection[Any]] = []

    def make() -> psycopg.Connection[Any]:
        conn = connect(database_url)
        made.append(conn)
        return conn

    try:
        migrate(make())
        yield make
    finally:
        for conn in made:
            conn.close()


@pytest.fixture
def db(make_conn: Callable[[], psycopg.Connection[Any]]) -> psycopg.Connection[Any]:
    """An autocommit connection to the migrated test database."""
    return make_conn()


# --- esdblite, ledgers and the write-model fold ---------------------------------------------


@pytest.fixture(scope="session")
def esdb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The event store tests share (with fresh account ids): in-memory esdblite by default."""
    if EXTERNAL_ESDB_URI:
        yield EXTERNAL_ESDB_URI
        return
    log = tmp_path_factory.mktemp("projections-esdblite") / "server.log"
    server = ServerProcess(log_file=log).start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start private esdblite servers (in memory, or durable in tmp_path); stopped after."""
    made: list[ServerProcess] = []

    def start(*, durable: bool = False) -> ServerProcess:
        n = len(made)
        server = ServerProcess(
            tmp_path / f"esdb-{n}" if durable else None, log_file=tmp_path / f"esdb-{n}.log"
        )
        made.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in made:
            server.stop()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    """A hand-moved UTC clock starting at T0."""
    return Clock()


@pytest.fixture
def make_store() -> Iterator[Callable[[str], AccountEventStore]]:
    """A factory of account event stores (one connection each), closed after the test."""
    made: list[AccountEventStore] = []

    def make(uri: str) -> AccountEventStore:
        store = AccountEventStore.connect(uri)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            store.close()


@pytest.fixture
def make_ledger(
    make_store: Callable[[str], AccountEventStore], clock: Clock
) -> Callable[..., Ledger]:
    """A factory of Ledgers on an event store URI; keyword options go to CommandHandler."""

    def make(uri: str, **options: Any) -> Ledger:
        return Ledger(CommandHandler(make_store(uri), **options), clock=clock, actor="test:read")

    return make


# --- runners on threads ---------------------------------------------------------------------


class RunnerThread:
    """A Runner on a thread: stop() sets its stop event and joins it; errors are kept."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="test-runner")

    def _run(self) -> None:
        try:
            self.runner.run()
        except BaseException as exc:
            self.error = exc

    def start(self) -> RunnerThread:
        self.thread.start()
        return self

    def stop(self, timeout: float = DEADLINE) -> None:
        """Stop the runner and wait for its thread; fail if it does not stop or had failed."""
        self.runner.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the runner did not stop"
        if self.error is not None:
            raise AssertionError(f"the runner failed: {self.error!r}") from self.error


@pytest.fixture
def start_runner(
    database_url: str, servers: Callable[..., ServerProcess]
) -> Iterator[Callable[..., RunnerThread]]:
    """Start live Runners on threads (all stopped and joined after the test)."""
    started: list[RunnerThread] = []

    def start(eventstore_uri: str, **options: Any) -> RunnerThread:
        options.setdefault("batch_ms", 20.0)
        thread = RunnerThread(Runner(database_url, eventstore_uri, **options))
        started.append(thread)
        return thread.start()

    try:
        yield start
    finally:
        errors = []
        for thread in reversed(started):
            try:
                thread.stop()
            except AssertionError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def catch_up(database_url: str, eventstore_uri: str, **options: Any) -> Runner:
    """Run a Runner in this thread until it has caught up with the store."""
    runner = Runner(database_url, eventstore_uri, batch_ms=20.0, **options)
    runner.run(until_caught_up=True)
    return runner


# --- feeds built with the pure decider, for specs that drive the Applier directly ----------


class Feed:
    """The $all feed of some accounts, each command decided by the pure decider."""

    def __init__(self, start_position: int = 1000) -> None:
        self._positions = itertools.count(start_position, 100)
        self.states: dict[str, State] = {}
        self.events: list[ProjectedEvent] = []
        self.decoded: dict[int, AccountEvent] = {}

    def _do(
        self, command_type: type[Command], account_id: str, now: datetime, **fields: Any
    ) -> list[ProjectedEvent]:
        """Decide a command on the account's state and record the events it causes."""
        command = make_command(
            command_type, {"account_id": account_id, "now": now, "meta": META, **fields}
        )
        assert isinstance(command, AccountCommand)
        produced = decide(command, self.states.get(account_id, initial_state))
        return self.append(account_id, *produced, recorded_at=now)

    def append(
        self,
        account_id: str,
        *events: AccountEvent,
        recorded_at: datetime = T0,
        metadata: bytes | None = None,
        encode: Callable[[AccountEvent], bytes] | None = None,
    ) -> list[ProjectedEvent]:
        """Record events of an account (folded into its state) as the subscription gives them.

        `metadata` and `encode` store events the way another writer (or version) would have.
        """
        out = []
        state = self.states.get(account_id, initial_state)
        for event in events:
            state = evolve(state, event)
            event_type, data = serialise_event(event)
            if encode is not None:
                data = encode(event)
            stored = ProjectedEvent(
                account_id,
                state.revision,
                next(self._positions),
                uuid.uuid4(),
                event_type,
                data,
                metadata if metadata is not None else encode_metadata(event, META),
                recorded_at,
            )
            self.decoded[stored.position] = event
            out.append(stored)
        self.states[account_id] = state
        self.events.extend(out)
        return out

    def open(
        self, account_id: str, currency: str = "EUR", limit: str = "0", now: datetime = T0
    ) -> list[ProjectedEvent]:
        """OpenAccount for Alice Example."""
        return self._do(
            OpenAccount,
            account_id,
            now,
            owner="Alice Example",
            currency=currency,
            overdraft_limit=limit,
        )

    def deposit(
        self, account_id: str, amount: str, tx: str, now: datetime = T0, description: str = ""
    ) -> list[ProjectedEvent]:
        """Deposit an amount ("12.34")."""
        return self._do(
            Deposit, account_id, now, amount=amount, transaction_id=tx, description=description
        )

    def withdraw(
        self, account_id: str, amount: str, tx: str, now: datetime = T0
    ) -> list[ProjectedEvent]:
        """Withdraw an amount."""
        return self._do(Withdraw, account_id, now, amount=amount, transaction_id=tx)

    def reverse(
        self, account_id: str, reverses: str, tx: str, now: datetime = T0
    ) -> list[ProjectedEvent]:
        """Reverse an earlier posting of the account."""
        return self._do(Reverse, account_id, now, reverses=reverses, transaction_id=tx)

    def change_limit(self, account_id: str, limit: str, now: datetime = T0) -> list[ProjectedEvent]:
        """Change the overdraft limit."""
        return self._do(ChangeOverdraftLimit, account_id, now, limit=limit)

    def close(self, account_id: str, now: datetime = T0) -> list[ProjectedEvent]:
        """Close the account."""
        return self._do(CloseAccount, account_id, now)

    def fold(self, account_id: str, upto: int | None) -> tuple[int, list[int]] | None:
        """A fake write-model fold over this feed (the shape verify() takes)."""
        mine = [
            e
            for e in self.events
            if e.account_id == account_id and (upto is None or e.position <= upto)
        ]
        if not mine:
            return None
        state = initial_state
        postings = []
        for stored in mine:
            event = self.decoded[stored.position]
            state = evolve(state, event)
            if isinstance(event, Posting):
                postings.append(stored.revision)
        return state.balance, postings


def project(
    conn: psycopg.Connection[Any], events: Sequence[ProjectedEvent], upto: int | None = None
) -> BatchResult:
    """Apply one batch to every live projection, moving the checkpoints to `upto`."""
    if upto is None:
        upto = events[-1].position if events else 0
    return Applier(conn, list(PROJECTIONS.values())).apply_batch(events, upto)


def project_each_twice(conn: psycopg.Connection[Any], events: Sequence[ProjectedEvent]) -> None:
    """Apply every event at least twice: overlapping batches, then the whole feed again."""
    size = 4
    for start in range(0, len(events), size // 2):
        project(conn, events[start : start + size])
    project(conn, events)


def metadata(schema_version: int) -> bytes:
    """Stored event metadata claiming a schema version."""
    return json.dumps({"actor": "test", "schema_version": schema_version}).encode()
