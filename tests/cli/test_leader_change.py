"""A command whose append meets a node that is not the leader, through the CLI: a leader change
is ridden out; a node that stays no leader is exit 3 with the transaction id to resend, and the
resend posts once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Cli
from tests.support.esdb import LiteServer, Servers, stream_events
from tests.support.ids import new_account_id


@pytest.fixture
def resigning(
    bare_cli: Cli,
    servers: Servers,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[LiteServer, Path]:
    """A server answering writes NotLeader while its resign file exists; the CLI uses it."""
    flag = tmp_path / "resign"
    server = servers.start(extra_args=["--resign-file", str(flag)])
    monkeypatch.setenv("LEDGER_EVENTSTORE_URI", server.uri)
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    return server, flag


def test_a_deposit_meeting_a_leader_election_is_posted_once(
    bare_cli: Cli, servers: Servers, resigning: tuple[LiteServer, Path]
) -> None:
    server, flag = resigning
    account_id = new_account_id()
    bare_cli.ok("open", account_id, "--owner", "Pia", "--currency", "EUR")

    flag.touch()
    bare_cli.ok("deposit", account_id, "5.00", "--tx", "tx-cli-election")

    assert not flag.exists()
    types = [e.type for e in stream_events(servers.client(server), account_id)]
    assert types == ["AccountOpened", "MoneyDeposited"]


def test_a_node_that_stays_no_leader_is_exit_3_and_the_resend_posts_once(
    bare_cli: Cli, servers: Servers, resigning: tuple[LiteServer, Path]
) -> None:
    server, flag = resigning
    account_id = new_account_id()
    bare_cli.ok("open", account_id, "--owner", "Pia", "--currency", "EUR")

    flag.write_text("1000\n")  # an election that outlasts every resend
    failed = bare_cli("deposit", account_id, "5.00", "--tx", "tx-cli-stuck")

    assert failed.exit_code == 3
    assert "not the leader" in failed.stderr
    assert "retry with --tx tx-cli-stuck" in failed.stderr
    flag.unlink()  # a leader again
    bare_cli.ok("deposit", account_id, "5.00", "--tx", "tx-cli-stuck")
    bare_cli.ok("deposit", account_id, "5.00", "--tx", "tx-cli-stuck")
    types = [e.type for e in stream_events(servers.client(server), account_id)]
    assert types == ["AccountOpened", "MoneyDeposited"]
