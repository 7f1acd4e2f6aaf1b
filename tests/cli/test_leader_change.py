"""A command whose append meets a node that is not the leader, through the CLI: a leader change
is ridden out; a node that stays no leader is exit 3 with the transaction id to resend, and the
resend posts once."""

from __future__ import annotations

from pathlib import Path

import pytest
from esdbclient.connection_spec import ConnectionSpec

from cli.context import Context, eventstore_uri
from cli.render import Output
from cli.settings import Settings
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


def opened(cli: Cli) -> str:
    account_id = new_account_id()
    cli.ok("open", account_id, "--owner", "Pia", "--currency", "EUR")
    return account_id


def event_types(servers: Servers, server: LiteServer, account_id: str) -> list[str]:
    return [e.type for e in stream_events(servers.client(server), account_id)]


def test_a_deposit_meeting_a_leader_election_is_posted_once(
    bare_cli: Cli, servers: Servers, resigning: tuple[LiteServer, Path]
) -> None:
    server, flag = resigning
    account_id = opened(bare_cli)

    flag.touch()
    bare_cli.ok("deposit", account_id, "5.00", "--tx", "tx-cli-election")

    assert not flag.exists()
    assert event_types(servers, server, account_id) == ["AccountOpened", "MoneyDeposited"]


def test_a_node_that_stays_no_leader_is_exit_3_and_the_resend_posts_once(
    bare_cli: Cli, servers: Servers, resigning: tuple[LiteServer, Path]
) -> None:
    server, flag = resigning
    account_id = opened(bare_cli)

    flag.write_text("1000\n")  # an election that outlasts every resend
    failed = bare_cli("deposit", account_id, "5.00", "--tx", "tx-cli-stuck")

    assert failed.exit_code == 3
    assert "not the leader" in failed.stderr
    assert "retry with --tx tx-cli-stuck" in failed.stderr
    flag.unlink()  # a leader again
    bare_cli.ok("deposit", account_id, "5.00", "--tx", "tx-cli-stuck")
    bare_cli.ok("deposit", account_id, "5.00", "--tx", "tx-cli-stuck")
    assert event_types(servers, server, account_id) == ["AccountOpened", "MoneyDeposited"]


@pytest.mark.parametrize(
    ("preference", "expected"), [(None, "leader"), ("follower", "follower"), ("random", "random")]
)
def test_the_read_side_reads_from_the_configured_node_preference(
    preference: str | None, expected: str
) -> None:
    settings = Settings(
        eventstore_uri="esdb://a:2113,b:2113?Tls=false",
        database_url="postgresql://u@localhost/db",
        node_preference=preference,
    )
    read_side = eventstore_uri(Context(settings=settings, output=Output(), debug=False))
    assert ConnectionSpec(read_side).options.NodePreference == expected
    assert ConnectionSpec(read_side).targets == ["a:2113", "b:2113"]
