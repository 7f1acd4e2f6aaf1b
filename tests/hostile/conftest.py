"""Fixtures of the hostile-input tests: the session's own servers, a runner, the CLI and the
API on them, state snapshots, and a private esdblite per protocol module to attack.

The session runs an in-memory esdblite of its own (hostile input must not reach the suites'
shared server), a database on the session's PostgreSQL and a projection runner (`ledger
projections run` in a subprocess). `unchanged()` reads the event store and every read-model
table, so a test can show that refused input changed nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from typer.testing import CliRunner, Result

from cli.main import app
from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from tests.hostile.protocol import MIB, Target
from tests.hostile.support import (
    EUR_ACCOUNT,
    JPY_ACCOUNT,
    READ_MODEL_TABLES,
    SEEDED,
    services_env,
    snapshot,
    wait_until_projected,
)
from tests.support.postgres import fresh_database


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="session")
def esdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The hostile session's own in-memory esdblite."""
    with ServerProcess(
        log_file=tmp_path_factory.mktemp("hostile-esdblite") / "server.log"
    ) as server:
        yield server


@pytest.fixture(scope="session")
def hostile_database_url(pg_server_url: str) -> Iterator[str]:
    """The read-side database of the hostile session, which its runner projects into."""
    with fresh_database(pg_server_url, "hostile") as url:
        yield url


@pytest.fixture(scope="session")
def runner(
    esdb: ServerProcess, hostile_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """`ledger projections run` against the session's servers, for the whole session."""
    home = tmp_path_factory.mktemp("hostile-runner")
    env = {
        **os.environ,
        **services_env(esdb, hostile_database_url),
        "LEDGER_HOME": str(home / "ledger"),
    }
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
def seeded(esdb: ServerProcess, hostile_database_url: str, runner: subprocess.Popen[bytes]) -> None:
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
    wait_until_projected(esdb, hostile_database_url)


@pytest.fixture
def env(esdb: ServerProcess, hostile_database_url: str, seeded: None) -> dict[str, str]:
    """The CLI environment for the session's (seeded) servers."""
    return services_env(esdb, hostile_database_url)


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


@pytest.fixture
def unchanged(
    esdb: ServerProcess, hostile_database_url: str, seeded: None
) -> Callable[..., Callable[[], None]]:
    """`check = unchanged(...)` before the input; `check()` after it asserts that nothing moved."""

    def take(*accounts: str) -> Callable[[], None]:
        names = (*SEEDED, *accounts)
        before = snapshot(esdb, hostile_database_url, names)

        def check() -> None:
            after = snapshot(esdb, hostile_database_url, names)
            assert after.head == before.head, "the event store has new events"
            assert after.streams == before.streams, "an account stream changed"
            for table in READ_MODEL_TABLES:
                assert after.tables[table] == before.tables[table], f"{table} changed"

        return check

    return take


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A private esdblite (so no other test shares the abuse) with a canary stream."""
    log: Path = tmp_path_factory.mktemp("protocol-esdblite") / "server.log"
    server = ServerProcess(log_file=log).start()
    channel = grpc.insecure_channel(
        f"localhost:{server.bound_port}",
        options=[("grpc.max_receive_message_length", 64 * MIB)],
    )
    client = EventStoreDBClient(server.uri)
    canary = f"canary-{uuid.uuid4().hex}"
    client.append_to_stream(
        canary,
        current_version=StreamState.NO_STREAM,
        events=[NewEvent(type="Canary", data=f'{{"n": {n}}}'.encode()) for n in range(3)],
    )
    t = Target(server, channel, client, canary, [])
    t.canary_events = t.read(canary)
    try:
        yield t
        t.assert_intact()
    finally:
        client.close()
        channel.close()
        server.stop()
