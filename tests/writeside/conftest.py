"""Fixtures of the write-side suite: a store, a plain client and a Ledger on the shared store.

Set LEDGER_TEST_ESDB_URI=esdb://host:2113?Tls=false to run against an external EventStoreDB;
only the test that kills its own server still starts a private esdblite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from esdbclient import EventStoreDBClient

from ledger.eventstore import AccountEventStore
from ledger.service import Ledger


@pytest.fixture
def store(make_store: Callable[[], AccountEventStore]) -> AccountEventStore:
    """A store of the shared server."""
    return make_store()


@pytest.fixture
def raw(esdb_uri: str) -> Iterator[EventStoreDBClient]:
    """A plain esdbclient client of the shared server, for writing around the ledger."""
    with EventStoreDBClient(esdb_uri) as client:
        yield client


@pytest.fixture
def ledger(make_ledger: Callable[..., Ledger]) -> Ledger:
    """A Ledger with the default handler options (cache and snapshots on)."""
    return make_ledger()
