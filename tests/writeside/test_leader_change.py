"""A leader change under a command: a NotLeader answer or a lost server mid-pipeline is ridden out
by sending the same events again (same ids), or reported as safe to retry; never doubled."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from esdbclient import EventStoreDBClient
from esdbclient.connection_spec import ConnectionSpec
from esdbclient.exceptions import FollowerNotFound

from ledger.errors import ServiceUnavailableError
from ledger.eventstore import AccountEventStore, with_node_preference
from ledger.handler import CommandHandler
from ledger.service import Ledger
from tests.support.clock import Clock
from tests.support.esdb import LiteServer, Servers, discover_uri, stream_events
from tests.support.ids import new_account_id
from tests.support.waiting import eventually

DEADLINE = 60.0


@pytest.fixture
def make_ledger_of(tmp_path: Path) -> Iterator[Callable[..., Ledger]]:
    """Ledgers on a given URI, pipelined or not, each on its own connection, closed after."""
    stores: list[AccountEventStore] = []

    def make(uri: str, *, pipelined: bool = True) -> Ledger:
        store = AccountEventStore.connect(uri, pipelined=pipelined)
        stores.append(store)
        return Ledger(CommandHandler(store), clock=Clock(), actor="test:leader")

    try:
        yield make
    finally:
        for store in stores:
            store.close()


def resigning(servers: Servers, tmp_path: Path, **kwargs: object) -> tuple[LiteServer, Path]:
    """A started esdblite that answers the next write NotLeader whenever the file exists."""
    flag = tmp_path / "resign"
    server = servers.start(extra_args=["--resign-file", str(flag)], **kwargs)  # type: ignore[arg-type]
    return server, flag


def deposits_of(client: EventStoreDBClient, account_id: str) -> list[str]:
    """The transaction ids of an account's deposits, in stream order."""
    return [
        json.loads(e.data)["transaction_id"]
        for e in stream_events(client, account_id)
        if e.type == "MoneyDeposited"
    ]


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-call-each"])
def test_a_deposit_whose_append_meets_not_leader_follows_the_leader_and_posts_once(
    servers: Servers, tmp_path: Path, make_ledger_of: Callable[..., Ledger], pipelined: bool
) -> None:
    # Given an account on a cluster reached through discovery
    server, flag = resigning(servers, tmp_path)
    ledger = make_ledger_of(server.uri, pipelined=pipelined)
    assert server.uri.startswith("esdb+discover://")
    account_id = new_account_id()
    ledger.open_account(account_id, "Pia", "EUR")

    # When the leader resigns just as the deposit is appended
    flag.touch()
    outcome = ledger.deposit(account_id, "12.50", "tx-election")

    # Then the NotLeader answer was met, followed, and the deposit is posted exactly once
    assert not flag.exists()
    assert (outcome.revision, outcome.replayed) == (1, False)
    assert deposits_of(servers.client(server), account_id) == ["tx-election"]


def test_on_a_direct_uri_not_leader_is_reported_retry_safe_and_the_retry_posts_once(
    servers: Servers, tmp_path: Path, make_ledger_of: Callable[..., Ledger]
) -> None:
    # Given a ledger on one node's direct esdb:// URI (esdbclient follows no leader there)
    server, flag = resigning(servers, tmp_path)
    ledger = make_ledger_of(server.direct_uri, pipelined=False)
    account_id = new_account_id()
    ledger.open_account(account_id, "Pia", "EUR")

    # When its append meets NotLeader, the command fails as unavailable (exit 3: retry-safe)
    flag.touch()
    with pytest.raises(ServiceUnavailableError, match="not the leader"):
        ledger.deposit(account_id, "12.50", "tx-direct")
    assert not flag.exists()
    assert deposits_of(servers.client(server), account_id) == []

    # Then a retry with the same transaction id posts it, once
    assert ledger.deposit(account_id, "12.50", "tx-direct").revision == 1
    assert ledger.deposit(account_id, "12.50", "tx-direct").replayed
    assert deposits_of(servers.client(server), account_id) == ["tx-direct"]


class Clients:
    """Threads that each post deposits in turn, resending one that failed with its same id (as
    the CLI's exit code 3 tells a client to) until it is posted."""

    def __init__(self, ledger: Ledger, accounts: list[str], per_account: int) -> None:
        self.ledger = ledger
        self.per_account = per_account
        self.posted: dict[str, list[str]] = {a: [] for a in accounts}
        self.failures = 0
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(a,)) for a in accounts]

    def _run(self, account_id: str) -> None:
        try:
            for n in range(self.per_account):
                tx = f"{account_id}-{n}"
                while True:
                    try:
                        self.ledger.deposit(account_id, "1.00", tx)
                        break
                    except ServiceUnavailableError:
                        with self.lock:
                            self.failures += 1
                with self.lock:
                    self.posted[account_id].append(tx)
        except BaseException as exc:
            self.errors.append(exc)

    def progress(self) -> int:
        with self.lock:
            return sum(len(txs) for txs in self.posted.values())

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(DEADLINE)
            assert not t.is_alive(), "a client thread did not finish"
        assert not self.errors, self.errors


def post_through(
    servers: Servers, server: LiteServer, ledger: Ledger, disruption: Callable[[], None]
) -> None:
    """Eight clients post 30 deposits each while `disruption` strikes after the first 40; then
    every deposit a client was told is posted is in the store, in its order, each once."""
    accounts = [new_account_id() for _ in range(8)]
    for account_id in accounts:
        ledger.open_account(account_id, "Pia", "EUR")
    clients = Clients(ledger, accounts, per_account=30)

    clients.start()
    eventually(lambda: clients.progress() >= 40, "deposits before the disruption")
    disruption()
    clients.join()

    client = servers.client(server)
    for account_id in accounts:
        assert deposits_of(client, account_id) == clients.posted[account_id]
        assert len(clients.posted[account_id]) == 30


def test_concurrent_commands_ride_out_a_resignation_mid_pipeline(
    servers: Servers, tmp_path: Path, make_ledger_of: Callable[..., Ledger]
) -> None:
    server, flag = resigning(servers, tmp_path)

    def resign() -> None:
        flag.touch()
        eventually(lambda: not flag.exists(), "the resignation to meet an append")

    post_through(servers, server, make_ledger_of(server.uri), resign)


def test_a_server_killed_and_restarted_mid_pipeline_loses_nothing_and_doubles_nothing(
    servers: Servers, make_ledger_of: Callable[..., Ledger]
) -> None:
    server = servers(durable=True)

    def crash() -> None:
        server.kill()
        server.start()

    post_through(servers, server, make_ledger_of(server.uri), crash)


def test_commands_go_to_the_leader_whatever_node_preference_the_uri_names(
    servers: Servers, make_ledger_of: Callable[..., Ledger]
) -> None:
    server = servers()
    uri = discover_uri(server.direct_uri) + "&NodePreference=follower"
    # A single node has no follower: esdbclient alone finds none to connect to.
    with pytest.raises(FollowerNotFound):
        EventStoreDBClient(uri)

    ledger = make_ledger_of(uri)
    account_id = new_account_id()
    ledger.open_account(account_id, "Pia", "EUR")
    assert ledger.deposit(account_id, "1.00", "tx-leader").revision == 1


def test_the_node_preference_of_a_uri_is_replaced_and_the_rest_kept() -> None:
    uri = "esdb://admin:s%3Dcret@a:2113,b:2113?Tls=true&nodepreference=Leader&MaxDiscoverAttempts=3"
    replaced = with_node_preference(uri, "follower")
    assert (
        replaced
        == "esdb://admin:s%3Dcret@a:2113,b:2113?Tls=true&MaxDiscoverAttempts=3&NodePreference=follower"
    )
    assert ConnectionSpec(replaced).options.NodePreference == "follower"
