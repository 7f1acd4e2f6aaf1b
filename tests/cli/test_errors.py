"""Exit codes 3, 6 and 70 through CliRunner: one sentence on stderr, the transaction id kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli.errors import retry_hint
from cli.settings import Settings
from ledger.accounts.window import WINDOW_SIZE
from ledger.errors import ConcurrencyConflictError, ServiceUnavailableError
from tests.support.cli import Cli
from tests.support.network import closed_port

GENERATED = re.compile(r"transaction id: (tx-[0-9a-f]{32})")


@pytest.fixture
def unreachable(bare_cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """External services configured on ports nothing listens on."""
    monkeypatch.setenv("LEDGER_EVENTSTORE_URI", f"esdb://localhost:{closed_port()}?Tls=false")
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"postgresql://u@127.0.0.1:{closed_port()}/ledger")
    return bare_cli


def test_an_unreachable_event_store_is_exit_3_with_the_transaction_id(unreachable: Cli) -> None:
    result = unreachable("deposit", "acc-1", "10.00")
    assert result.exit_code == 3
    assert result.stdout == ""
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "event store" in error
    assert "LEDGER_EVENTSTORE_URI" in error
    assert "docker compose up -d" in error
    generated = GENERATED.findall(result.stderr)
    assert len(generated) == 2 and generated[0] == generated[1]
    assert f"retry with --tx {generated[0]}" in result.stderr


def test_an_unreachable_database_is_exit_3_and_nothing_is_auto_started(unreachable: Cli) -> None:
    home = Settings().home
    result = unreachable("balance", "acc-1")
    assert result.exit_code == 3
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "cannot connect to PostgreSQL" in error
    assert "starting the local stack" not in result.stderr
    assert not (home / "stack.json").exists()
    assert not (home / "eventstore.pid").exists()


def test_only_one_external_uri_is_a_configuration_error(
    bare_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_EVENTSTORE_URI", "esdb://localhost:2113?Tls=false")
    result = bare_cli("balance", "acc-1")
    assert result.exit_code == 2
    assert "set both LEDGER_EVENTSTORE_URI and LEDGER_DATABASE_URL" in result.stderr


def test_a_bad_setting_is_exit_2(bare_cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_WAIT_TIMEOUT", "soon")
    result = bare_cli("balance", "acc-1")
    assert result.exit_code == 2
    assert "invalid configuration" in result.stderr


def test_exhausted_conflict_retries_are_exit_6_with_the_transaction_id(
    cli: Cli, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger.service import Ledger

    def conflict(*args: object, **kwargs: object) -> None:
        raise ConcurrencyConflictError("the account kept changing; 5 attempts failed")

    monkeypatch.setattr(Ledger, "deposit", conflict)
    result = cli("deposit", account, "1.00")
    assert result.exit_code == 6
    assert "error: the account kept changing; 5 attempts failed" in result.stderr
    [tx, again] = GENERATED.findall(result.stderr)
    assert tx == again
    assert f"retry with --tx {tx}; it will not be posted twice" in result.stderr


def test_the_retry_hint_says_how_long_a_retry_stays_safe(
    cli: Cli, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger.service import Ledger

    def unavailable(*args: object, **kwargs: object) -> None:
        raise ServiceUnavailableError("the event store did not answer")

    monkeypatch.setattr(Ledger, "withdraw", unavailable)
    result = cli("withdraw", account, "1.00", "--tx", "pay-7")

    assert result.exit_code == 3
    hint = (
        "transaction id: pay-7 (retry with --tx pay-7; it will not be posted twice until "
        "10,000 later postings on this account, after which the id is forgotten and a retry "
        "posts again)"
    )
    assert hint in result.stderr
    assert f"{WINDOW_SIZE:,} later postings" in retry_hint("pay-7")


def _break_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    import projections.queries

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom: secret detail")

    monkeypatch.setattr(projections.queries, "get_balance", broken)


def test_an_unexpected_error_is_exit_70_with_where_it_was_logged(
    cli: Cli, account: str, stack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_queries(monkeypatch)
    log = stack_home / "logs" / "cli.log"
    before = log.read_text() if log.exists() else ""
    result = cli("balance", account)
    assert result.exit_code == 70
    assert result.stdout == ""
    assert result.stderr.strip() == f"error: internal error (RuntimeError); details in {log}"
    assert "Traceback" not in result.stderr
    logged = log.read_text()[len(before) :]
    assert "Traceback" in logged
    assert "boom: secret detail" in logged


def test_debug_shows_the_traceback(cli: Cli, account: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _break_queries(monkeypatch)
    result = cli("--debug", "balance", account)
    assert result.exit_code == 70
    assert "Traceback" in result.stderr
    assert "boom: secret detail" in result.stderr


def test_an_unexpected_error_in_a_write_keeps_the_transaction_id(
    cli: Cli, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger.service import Ledger

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(Ledger, "withdraw", broken)
    result = cli("withdraw", account, "1.00")
    assert result.exit_code == 70
    assert "internal error (KeyError)" in result.stderr
    [tx, again] = GENERATED.findall(result.stderr)
    assert tx == again
