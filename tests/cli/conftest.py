"""Fixtures for the CLI suite: one local stack for the session, the installed entry point,
CliRunner helpers, fresh read-side databases without a runner, and process clean-up.

Most CliRunner tests share one local stack (`ledger up` in a session LEDGER_HOME); tests that
need a read side nobody projects into point LEDGER_EVENTSTORE_URI at that stack's event store
and LEDGER_DATABASE_URL at a fresh database of its PostgreSQL (external mode, no runner).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from typer.testing import CliRunner, Result

from cli.main import app
from cli.stack import LocalStack
from tests.cli.containers import export_container_services

LEDGER = Path(sys.executable).parent / "ledger"
PROJECT = Path(__file__).resolve().parents[2]
TIMEOUT = 120.0  # seconds a subprocess of the entry point may take before the test fails
# What each service's command line contains, so that clean-up never kills a stranger.
MARKERS = {"eventstore": b"esdblite", "postgres": b"postgres", "runner": b"projections"}


def pytest_configure(config: pytest.Config) -> None:
    """With LEDGER_TEST_CONTAINERS=1, start EventStoreDB and PostgreSQL containers before the
    other suites read LEDGER_TEST_ESDB_URI / LEDGER_TEST_DATABASE_URL."""
    stop = export_container_services()
    if stop is not None:
        config.add_cleanup(stop)


def new_account_id(prefix: str = "cli") -> str:
    """An account id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the installed entry point ------------------------------------------------------------


def ledger_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `ledger` subprocess on a local stack in `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    # A generous --wait: a loaded machine must not turn a slow catch-up into exit 4.
    env.update(LEDGER_HOME=str(home), NO_COLOR="1", LEDGER_WAIT_TIMEOUT="60", **extra)
    return env


def run_ledger(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `ledger` entry point and capture its output."""
    return subprocess.run(
        [str(LEDGER), *args],
        env=env or ledger_env(home),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError), open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(") ", 1)[1][0] != "Z"
    return True


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def stack_pids(home: Path) -> dict[str, int]:
    """The pids the home's pid files name, for the services whose process still runs."""
    files = {
        "eventstore": home / "eventstore.pid",
        "runner": home / "runner.pid",
        "postgres": home / "postgres" / "data" / "postmaster.pid",
    }
    found = {}
    for name, path in files.items():
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if _pid_alive(pid) and MARKERS[name] in _cmdline(pid):
            found[name] = pid
    return found


def stop_home(home: Path) -> None:
    """`ledger down`, then kill by pid whatever is still running (no process left behind)."""
    if not home.exists():
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        run_ledger(home, "down")
    for name, pid in stack_pids(home).items():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if name == "postgres":
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown of the postmaster and children
            else:
                os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while stack_pids(home) and time.monotonic() < deadline:
        time.sleep(0.05)
    leftover = stack_pids(home)
    assert not leftover, f"processes left behind in {home}: {leftover}"


# --- the shared local stack ---------------------------------------------------------------

_SESSION_HOMES: list[Path] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, show how the session's stack is doing (states and last log lines)."""
    report = yield
    if report.failed and _SESSION_HOMES:
        stack = LocalStack(_SESSION_HOMES[0])
        lines = [f"{s.name}: {s.state} pid={s.pid} {s.detail}" for s in stack.status()]
        for name in ("eventstore", "postgres", "runner"):
            lines += [f"--- last lines of the {name} log", stack.log_tail(name, 8)]
        report.sections.append(("session stack", "\n".join(lines)))
    return report


@pytest.fixture(scope="session")
def stack_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local stack started once for the session with the entry point's `ledger up`."""
    home = tmp_path_factory.mktemp("cli-stack") / "home"
    try:
        done = run_ledger(home, "up")
        assert done.returncode == 0, f"ledger up failed: {done.stderr}"
        _SESSION_HOMES.append(home)
        yield home
    finally:
        stop_home(home)


@pytest.fixture(scope="session")
def stack(stack_home: Path) -> LocalStack:
    """The session stack's addresses and state."""
    return LocalStack(stack_home)


@dataclass
class Cli:
    """Invoke `cli.main.app` in-process with CliRunner (stdout and stderr kept apart)."""

    runner: CliRunner

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(app, list(args), input=input, catch_exceptions=False)

    def ok(self, *args: str) -> Result:
        """Invoke and require exit code 0."""
        result = self(*args)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        """Invoke with --json, require exit code 0 and return the parsed stdout."""
        return json.loads(self.ok(*args, "--json").stdout)


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LEDGER_EVENTSTORE_URI", "LEDGER_DATABASE_URL", "LEDGER_NOW"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LEDGER_WAIT_TIMEOUT", "20")
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def cli(stack_home: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI on the session's local stack."""
    _clean_env(monkeypatch)
    monkeypatch.setenv("LEDGER_HOME", str(stack_home))
    return Cli(CliRunner())


@pytest.fixture
def bare_cli(monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI on the test's own (empty) LEDGER_HOME: no stack is running there."""
    _clean_env(monkeypatch)
    return Cli(CliRunner())


@pytest.fixture
def account(cli: Cli) -> str:
    """A freshly opened EUR account on the session stack, with 100.00 deposited (revision 1)."""
    account_id = new_account_id()
    cli.ok("open", account_id, "--owner", "Test Owner", "--currency", "EUR")
    cli.ok("deposit", account_id, "100.00", "--tx", f"{account_id}-seed", "--wait")
    return account_id


# --- fresh read-side databases (external mode, no runner) ---------------------------------


@pytest.fixture
def fresh_db(stack: LocalStack) -> Iterator[str]:
    """A fresh, empty database on the session stack's PostgreSQL, dropped afterwards."""
    server = stack.database_url()
    name = f"cli_{uuid.uuid4().hex}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server, dbname=name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def external_cli(
    cli: Cli, stack: LocalStack, fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """The CLI in external mode: the stack's event store, a read side nobody projects into."""
    monkeypatch.setenv("LEDGER_EVENTSTORE_URI", stack.eventstore_uri())
    monkeypatch.setenv("LEDGER_DATABASE_URL", fresh_db)
    monkeypatch.setenv("LEDGER_WAIT_TIMEOUT", "0.3")
    return cli


@pytest.fixture
def read_db(fresh_db: str) -> Callable[[str, Sequence[Any]], None]:
    """Run SQL on the fresh database, migrated first (to arrange a read-side state)."""
    from projections.db import connect, migrate

    def execute(query: str, params: Sequence[Any] = ()) -> None:
        with connect(fresh_db) as conn:
            migrate(conn)
            conn.execute(query, params)

    return execute


# --- private stacks for the subprocess tests ----------------------------------------------


@pytest.fixture
def private_home(tmp_path: Path) -> Iterator[Path]:
    """A LEDGER_HOME of the test's own; whatever was started there is stopped afterwards."""
    home = tmp_path / "ledger-home"
    try:
        yield home
    finally:
        stop_home(home)
