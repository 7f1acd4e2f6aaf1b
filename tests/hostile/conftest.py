"""Fixtures for hostile-input tests: session servers, a runner, the CLI, and state snapshots.

The session runs an in-memory esdblite, an embedded PostgreSQL with one database, and a
projection runner (`ledger projections run` in a subprocess). `snapshot()` reads the event store
and every read-model table, so a test can show that refused input changed nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from esdbclient import EventStoreDBClient
from esdbclient.exceptions import NotFound
from psycopg import sql
from typer.testing import CliRunner, Result

from cli.main import app
from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from ledger.streams import account_stream
from projections.pgserver import EmbeddedPostgres

EUR_ACCOUNT = "hostile-eur"
JPY_ACCOUNT = "hostile-jpy"
SEEDED = (EUR_ACCOUNT, JPY_ACCOUNT)
READ_MODEL_TABLES = (
    "account_balances",
    "account_statements",
    "daily_totals",
    "projection_checkpoints",
    "projection_accounts",
    "parked_events",
)
PROJECTIONS = ("balances", "statements", "daily_totals")
DEADLINE = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="session")
def esdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The session's in-memory esdblite."""
    log = tmp_path_factory.mktemp("hostile-esdblite") / "server.log"
    server = ServerProcess(log_file=log).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(embedded_pg: EmbeddedPostgres) -> str:
    """The read-side database of the session."""
    with psycopg.connect(embedded_pg.url(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE hostile")
    return embedded_pg.url("hostile")


def services_env(esdb: ServerProcess, database_url: str) -> dict[str, str]:
    """LEDGER_* variables that point the CLI at the session's servers, and a wide terminal."""
    return {
        "LEDGER_EVENTSTORE_URI": esdb.uri,
        "LEDGER_DATABASE_URL": database_url,
        "COLUMNS": "400",
        "NO_COLOR": "1",
    }


@pytest.fixture(scope="session")
def runner(
    esdb: ServerProcess, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """`ledger projections run` against the session's servers, for the whole session."""
    home = tmp_path_factory.mktemp("hostile-runner")
    env = {**os.environ, **services_env(esdb, database_url), "LEDGER_HOME": str(home / "ledger")}
    with open(home / "runner.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "projections", "run"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def seeded(esdb: ServerProcess, database_url: str, runner: subprocess.Popen[bytes]) -> None:
    """Two accounts with postings, projected, that hostile input must leave alone."""
    store = AccountEventStore.connect(esdb.uri)
    try:
        ledger = Ledger(CommandHandler(store), clock=_now, actor="test:hostile")
        ledger.open_account(EUR_ACCOUNT, "Eve", "EUR", "10.00")
        ledger.deposit(EUR_ACCOUNT, "50.00", "seed-1", "salary")
        ledger.withdraw(EUR_ACCOUNT, "5.25", "seed-2")
        ledger.open_account(JPY_ACCOUNT, "Jun", "JPY")
        ledger.deposit(JPY_ACCOUNT, "1000", "seed-3")
    finally:
        store.close()
    wait_until_projected(esdb, database_url)


@pytest.fixture
def env(esdb: ServerProcess, database_url: str, seeded: None) -> dict[str, str]:
    """The CLI environment for the session's (seeded) servers."""
    return services_env(esdb, database_url)


@pytest.fixture
def cli(env: dict[str, str]) -> Callable[..., Result]:
    """Run `ledger ARGS...` in-process; stdout and stderr are captured separately."""

    def invoke(*args: str, **extra_env: str) -> Result:
        return CliRunner().invoke(app, list(args), env={**env, **extra_env})

    return invoke


@pytest.fixture
def ledger(esdb: ServerProcess, seeded: None) -> Iterator[Ledger]:
    """The Python API on the session's event store."""
    store = AccountEventStore.connect(esdb.uri)
    try:
        yield Ledger(CommandHandler(store), clock=_now, actor="test:hostile")
    finally:
        store.close()


def head_position(uri: str) -> int:
    """The commit position of the newest event in the store."""
    client = EventStoreDBClient(uri)
    try:
        return int(client.get_commit_position())
    finally:
        client.close()


def wait_until_projected(esdb: ServerProcess, database_url: str) -> None:
    """Wait until every projection's checkpoint has reached the newest account event."""
    client = EventStoreDBClient(esdb.uri)
    try:
        events = client.read_all(
            backwards=True, filter_include=["account-.*"], filter_by_stream_name=True, limit=1
        )
        newest = [e.commit_position or 0 for e in events]
    finally:
        client.close()
    target = newest[0] if newest else 0
    deadline = time.monotonic() + DEADLINE
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            try:
                row = conn.execute(
                    "SELECT count(*) FROM projection_checkpoints"
                    " WHERE projection = ANY(%s) AND position >= %s",
                    (list(PROJECTIONS), target),
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                row = None
            if row is not None and row[0] == len(PROJECTIONS):
                return
            time.sleep(0.05)
    raise AssertionError(f"the projections did not reach position {target} in {DEADLINE:g}s")


@dataclass(frozen=True)
class Snapshot:
    """The event store's head, the seeded streams and every read-model row."""

    head: int
    streams: dict[str, tuple[Any, ...]]
    tables: dict[str, list[tuple[Any, ...]]]


def _stream(client: EventStoreDBClient, account_id: str) -> tuple[Any, ...]:
    try:
        recorded = client.get_stream(account_stream(account_id))
    except NotFound:
        return ()
    return tuple((r.id, r.stream_position, r.commit_position, bytes(r.data)) for r in recorded)


def snapshot(esdb: ServerProcess, database_url: str, accounts: Sequence[str] = SEEDED) -> Snapshot:
    """Read everything that refused input must leave unchanged (after the runner settled)."""
    wait_until_projected(esdb, database_url)
    client = EventStoreDBClient(esdb.uri)
    try:
        streams = {a: _stream(client, a) for a in accounts}
        head = int(client.get_commit_position())
    finally:
        client.close()
    tables = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in READ_MODEL_TABLES:
            query = sql.SQL("SELECT * FROM {} ORDER BY 1, 2").format(sql.Identifier(table))
            tables[table] = conn.execute(query).fetchall()
    return Snapshot(head, streams, tables)


@pytest.fixture
def unchanged(
    esdb: ServerProcess, database_url: str, seeded: None
) -> Callable[..., Callable[[], None]]:
    """`check = unchanged(...)` before the input; `check()` after it asserts that nothing moved."""

    def take(*accounts: str) -> Callable[[], None]:
        names = (*SEEDED, *accounts)
        before = snapshot(esdb, database_url, names)

        def check() -> None:
            after = snapshot(esdb, database_url, names)
            assert after.head == before.head, "the event store has new events"
            assert after.streams == before.streams, "an account stream changed"
            for table in READ_MODEL_TABLES:
                assert after.tables[table] == before.tables[table], f"{table} changed"

        return check

    return take


def assert_refused_as_invalid(result: Result, *, mentions: str) -> None:
    """Exit 2, nothing on stdout, and one clear `error:` sentence on stderr naming the input."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    others = [line for line in lines if not line.startswith(("error: ", "transaction id: "))]
    assert len(errors) == 1 and not others, result.stderr
    assert mentions in errors[0].lower(), (mentions, errors[0])


def assert_usage_error(result: Result, *, says: str) -> None:
    """Exit 2 from the argument parser: its usage message on stderr, nothing on stdout."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert says in " ".join(result.stderr.split()), result.stderr
