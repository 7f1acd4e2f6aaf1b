"""`ledger demo` runs in a throw-away home of its own: the user's ledger is never touched."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from cli.stack import LocalStack
from projections.db import connect
from tests.support.cli import Cli
from tests.support.stack import stop_home

HOME_LINE = re.compile(r"^A tour of the ledger in a throw-away home of its own: (\S+)$", re.M)


def _table_oids(stack: LocalStack) -> list[int]:
    """The read models' tables as PostgreSQL knows them: a rebuild swaps in new ones."""
    with connect(stack.database_url()) as conn:
        rows = conn.execute(
            "SELECT 'account_balances'::regclass::oid, 'account_statements'::regclass::oid,"
            " 'daily_totals'::regclass::oid"
        ).fetchone()
    assert rows is not None
    return [int(oid) for oid in rows]


def _demo_home(stdout: str) -> Path:
    match = HOME_LINE.search(stdout)
    assert match, stdout
    return Path(match.group(1))


@pytest.fixture(autouse=True)
def _temporary_dirs_under_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's throw-away home goes under the test's own directory."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def test_demo_leaves_the_users_running_ledger_untouched(
    cli: Cli, stack: LocalStack, account: str
) -> None:
    accounts_before = cli.json("accounts")
    tables_before = _table_oids(stack)
    result = cli.ok("demo")
    for step in (
        "refused: insufficient funds",
        "replayed=True",
        "transfer lunch: completed",
        "every invariant holds.",
    ):
        assert step in result.stdout
    assert "  $ ledger deposit alice 100.00 --tx salary -d 'November salary'" in result.stdout
    assert "  $ ledger projections rebuild" in result.stdout
    # No account added to the user's ledger, no projection of theirs rebuilt.
    assert cli.json("accounts") == accounts_before
    assert _table_oids(stack) == tables_before
    # The demo's own home is stopped and removed.
    demo_home = _demo_home(result.stdout)
    assert demo_home.parent.parent == Path(tempfile.gettempdir())
    assert not demo_home.parent.exists()


def test_demo_creates_nothing_in_a_users_home_without_a_ledger(
    bare_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_home = tmp_path / "user-home"
    monkeypatch.setenv("LEDGER_HOME", str(user_home))
    result = bare_cli("demo", "--keep")
    assert result.exit_code == 0, result.stderr
    demo_home = _demo_home(result.stdout)
    try:
        assert not user_home.exists()
        # --keep leaves the demo's stack running and says how to use and remove it.
        assert all(s.state == "running" for s in LocalStack(demo_home).status())
        assert f"LEDGER_HOME={demo_home} ledger accounts" in result.stdout
        assert f"ledger down && rm -rf {demo_home.parent}" in result.stdout
    finally:
        stop_home(demo_home)
        shutil.rmtree(demo_home.parent, ignore_errors=True)
