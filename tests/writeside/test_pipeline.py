"""Pipelined appends: many threads on one BatchAppend call, answers in any order, a call that
breaks, a server that goes away, a deadline, a clean close."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlparse

import grpc
import pytest
from esdbclient.protos.Grpc import streams_pb2, streams_pb2_grpc

from ledger.accounts.commands import CommandMeta
from ledger.accounts.events import AccountOpened
from ledger.errors import ServiceUnavailableError
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from tests.support.clock import Clock
from tests.support.ids import new_account_id
from tests.writeside.played_server import PlayedServer, relay

META = CommandMeta(correlation_id="corr-p", causation_id="cause-p", actor="test:pipeline")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def opened(account_id: str) -> AccountOpened:
    return AccountOpened(
        account_id=account_id, owner="Pia", currency="EUR", overdraft_limit=0, occurred_at=NOW
    )


@pytest.fixture
def played() -> Iterator[PlayedServer]:
    server = PlayedServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=32) as executor:
        yield executor


def open_in_background(
    pool: ThreadPoolExecutor, store: AccountEventStore, account_id: str
) -> Future[int]:
    return pool.submit(
        store.append, account_id, expected_revision=-1, events=[opened(account_id)], meta=META
    )


def test_many_threads_share_one_call_and_each_gets_its_own_answer(
    played: PlayedServer,
    make_store: Callable[[str], AccountEventStore],
    pool: ThreadPoolExecutor,
) -> None:
    store = make_store(played.uri)
    accounts = [new_account_id() for _ in range(16)]
    appends = {a: open_in_background(pool, store, a) for a in accounts}
    positions = {}
    for n in range(len(accounts)):
        received = played.next()
        positions[received.stream.removeprefix("account-")] = 100 + n
        received.succeed(revision=0, position=100 + n)

    assert {a: f.result(timeout=10) for a, f in appends.items()} == positions
    assert played.calls == 1


def test_an_answer_out_of_order_reaches_its_own_caller(
    played: PlayedServer,
    make_store: Callable[[str], AccountEventStore],
    pool: ThreadPoolExecutor,
) -> None:
    store = make_store(played.uri)
    first, second = new_account_id(), new_account_id()
    first_append = open_in_background(pool, store, first)
    first_received = played.next()
    second_append = open_in_background(pool, store, second)
    second_received = played.next()

    second_received.succeed(revision=0, position=222)
    assert second_append.result(timeout=10) == 222
    assert not first_append.done()
    first_received.succeed(revision=0, position=111)
    assert first_append.result(timeout=10) == 111


def test_many_threads_append_to_esdblite_over_one_store(
    make_store: Callable[[str], AccountEventStore], pool: ThreadPoolExecutor, esdb_uri: str
) -> None:
    store = make_store(esdb_uri)
    accounts = [new_account_id() for _ in range(32)]
    appends = [open_in_background(pool, store, a) for a in accounts]
    positions = [f.result(timeout=30) for f in appends]

    for account_id, position in zip(accounts, positions, strict=True):
        [stored] = store.read(account_id)
        assert (stored.revision, stored.commit_position) == (0, position)
    assert len(set(positions)) == len(accounts)


def test_a_call_broken_after_the_commit_is_retried_on_a_new_call_and_written_once(
    played: PlayedServer,
    make_store: Callable[[str], AccountEventStore],
    pool: ThreadPoolExecutor,
    esdb_uri: str,
) -> None:
    store, real = make_store(played.uri), make_store(esdb_uri)
    channel = grpc.insecure_channel(urlparse(esdb_uri).netloc)
    stub = streams_pb2_grpc.StreamsStub(channel)
    account_id = new_account_id()
    try:
        append = open_in_background(pool, store, account_id)
        received = played.next()
        relay(received, stub)  # durable in the real store...
        received.answer(grpc.StatusCode.UNAVAILABLE)  # ...but the call breaks before the answer

        retried = played.next()
        assert played.calls == 2
        assert retried.request.proposed_messages == received.request.proposed_messages
        answer = relay(retried, stub)  # the same event ids: the store answers the first append
        retried.answer(answer)

        assert append.result(timeout=10) == answer.success.position.commit_position
    finally:
        channel.close()
    [stored] = real.read(account_id)
    assert stored.commit_position == answer.success.position.commit_position


def test_every_caller_is_told_the_store_is_unavailable_when_the_server_goes_away(
    played: PlayedServer,
    make_store: Callable[[str], AccountEventStore],
    pool: ThreadPoolExecutor,
) -> None:
    store = make_store(played.uri)
    appends = [open_in_background(pool, store, new_account_id()) for _ in range(3)]
    for _ in appends:
        played.next()  # sent, never answered

    played.stop()

    for append in appends:
        with pytest.raises(ServiceUnavailableError):
            append.result(timeout=30)


def test_an_append_unanswered_by_its_deadline_is_unavailable_and_the_call_goes_on(
    played: PlayedServer,
    make_store: Callable[[str], AccountEventStore],
    pool: ThreadPoolExecutor,
) -> None:
    store = make_store(played.uri + "&DefaultDeadline=1")
    late = open_in_background(pool, store, new_account_id())
    unanswered = played.next()
    with pytest.raises(ServiceUnavailableError, match="did not answer"):
        late.result(timeout=30)

    unanswered.succeed(revision=0, position=1)  # too late: nobody waits for it any more
    account_id = new_account_id()
    append = open_in_background(pool, store, account_id)
    played.next().succeed(revision=0, position=2)
    assert append.result(timeout=10) == 2
    assert played.calls == 1


def test_close_half_closes_the_call_and_joins_its_reader(esdb_uri: str) -> None:
    store = AccountEventStore.connect(esdb_uri)
    account_id = new_account_id()
    store.append(account_id, expected_revision=-1, events=[opened(account_id)], meta=META)
    readers = [t for t in threading.enumerate() if t.name == "ledger-batch-append"]
    assert readers

    store.close()

    assert not any(t.is_alive() for t in readers)


def test_threads_sharing_one_ledger_post_every_deposit_exactly_once(
    make_store: Callable[[str], AccountEventStore], pool: ThreadPoolExecutor, esdb_uri: str
) -> None:
    # A cache far smaller than the accounts in play: entries are evicted while other threads
    # read them. Two deposits an account keep the threads from a storm of version conflicts.
    ledger = Ledger(CommandHandler(make_store(esdb_uri), cache_size=2), clock=Clock(), actor="t:p")
    accounts = [new_account_id() for _ in range(32)]
    for account_id in accounts:
        ledger.open_account(account_id, "Pia", "EUR")
    deposits = [(accounts[n % 32], f"tx-{n}") for n in range(64)]

    outcomes = list(pool.map(lambda d: ledger.deposit(d[0], "1.00", d[1]), deposits))
    again = list(pool.map(lambda d: ledger.deposit(d[0], "1.00", d[1]), deposits))

    assert not any(o.replayed for o in outcomes)
    assert all(o.replayed for o in again)
    for account_id in accounts:
        state = ledger.handler.load(account_id)
        assert (state.revision, state.balance) == (2, 200)


def test_appends_go_on_after_the_client_reconnects_under_an_open_call(
    make_store: Callable[[str], AccountEventStore], esdb_uri: str
) -> None:
    store = make_store(esdb_uri)
    first, second = new_account_id(), new_account_id()
    store.append(first, expected_revision=-1, events=[opened(first)], meta=META)

    store.client.reconnect()  # as esdbclient does after a failed read: the old channel closes

    position = store.append(second, expected_revision=-1, events=[opened(second)], meta=META)
    assert [s.commit_position for s in store.read(second)] == [position]


def test_an_unreadable_answer_is_retried_and_the_caller_gets_the_real_one(
    played: PlayedServer,
    make_store: Callable[[str], AccountEventStore],
    pool: ThreadPoolExecutor,
) -> None:
    store = make_store(played.uri)
    append = open_in_background(pool, store, new_account_id())
    first = played.next()
    first.answer(streams_pb2.BatchAppendResp(correlation_id=first.request.correlation_id))

    played.next().succeed(revision=0, position=7)
    assert append.result(timeout=10) == 7
