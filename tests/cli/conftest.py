"""Fixtures of the CLI suite: one local stack for the session, the CLI on it or on an empty
home, external mode on a fresh database, and private homes for the subprocess tests.

Most CliRunner tests share one local stack (`ledger up` in a session LEDGER_HOME); tests that
need a read side nobody projects into point LEDGER_EVENTSTORE_URI at that stack's event store
and LEDGER_DATABASE_URL at a fresh database of the session's PostgreSQL (external mode, no
runner).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.stack import LocalStack
from tests.support.cli import Cli
from tests.support.esdb import handed_out_uri
from tests.support.ids import new_account_id
from tests.support.stack import run_ledger, stop_home

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


@pytest.fixture
def external_cli(
    cli: Cli, stack: LocalStack, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """The CLI in external mode: the stack's event store, a read side nobody projects into."""
    monkeypatch.setenv("LEDGER_EVENTSTORE_URI", handed_out_uri(stack.eventstore_uri()))
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_WAIT_TIMEOUT", "0.3")
    return cli


@pytest.fixture
def read_db(database_url: str) -> Callable[[str, Sequence[Any]], None]:
    """Run SQL on the fresh database, migrated first (to arrange a read-side state)."""
    from projections.db import connect, migrate

    def execute(query: str, params: Sequence[Any] = ()) -> None:
        with connect(database_url) as conn:
            migrate(conn)
            conn.execute(query, params)

    return execute


@pytest.fixture
def private_home(tmp_path: Path) -> Iterator[Path]:
    """A LEDGER_HOME of the test's own; whatever was started there is stopped afterwards."""
    home = tmp_path / "ledger-home"
    try:
        yield home
    finally:
        stop_home(home)
