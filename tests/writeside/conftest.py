"""Fixtures for the write-side suite: one event store server, stores, ledgers and fresh accounts.

Set LEDGER_TEST_ESDB_URI=esdb://host:2113?Tls=false to run against an external EventStoreDB;
only the test that kills its own server still starts a private esdblite.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from esdbclient import EventStoreDBClient, RecordedEvent
from esdbclient.exceptions import NotFound

from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from ledger.streams import account_stream

EXTERNAL_URI = os.environ.get("LEDGER_TEST_ESDB_URI") or None
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand: each call returns the current time."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="session")
def esdb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of the event store the suite shares (an in-memory esdblite unless told otherwise)."""
    if EXTERNAL_URI:
        yield EXTERNAL_URI
        return
    log = tmp_path_factory.mktemp("writeside-esdblite") / "server.log"
    server = ServerProcess(log_file=log).start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def make_store(esdb_uri: str) -> Iterator[Callable[[], AccountEventStore]]:
    """A factory of stores, each with its own connection (another 'process'), closed after."""
    made: list[AccountEventStore] = []

    def make() -> AccountEventStore:
        store = AccountEventStore.connect(esdb_uri)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            store.close()


@pytest.fixture
def store(make_store: Callable[[], AccountEventStore]) -> AccountEventStore:
    """A store of the shared server."""
    return make_store()


@pytest.fixture
def raw(esdb_uri: str) -> Iterator[EventStoreDBClient]:
    """A plain esdbclient client of the shared server, for writing around the ledger."""
    client = EventStoreDBClient(esdb_uri)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def clock() -> Clock:
    """A hand-moved UTC clock."""
    return Clock()


@pytest.fixture
def make_ledger(make_store: Callable[[], AccountEventStore], clock: Clock) -> Callable[..., Ledger]:
    """A factory of Ledgers, each on its own connection; keyword options go to CommandHandler."""

    def make(*, clock: Callable[[], datetime] = clock, **options: Any) -> Ledger:
        handler = CommandHandler(make_store(), **options)
        return Ledger(handler, clock=clock, actor="test:writeside")

    return make


@pytest.fixture
def ledger(make_ledger: Callable[..., Ledger]) -> Ledger:
    """A Ledger with the default handler options (cache and snapshots on)."""
    return make_ledger()


@pytest.fixture
def account_id() -> str:
    """An account id no other test uses."""
    return new_account_id()


def new_account_id() -> str:
    """A fresh, valid account id."""
    return f"acc-{uuid.uuid4().hex}"


def stream_events(client: EventStoreDBClient, account_id: str) -> tuple[RecordedEvent, ...]:
    """Every recorded event of an account's stream; empty when the stream does not exist."""
    try:
        return tuple(client.get_stream(account_stream(account_id)))
    except NotFound:
        return ()
