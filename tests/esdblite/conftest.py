"""Fixtures of the esdblite suite: per-test clients of the shared server, and private servers
only where esdblite itself (not an external EventStoreDB) is under test.

Set LEDGER_TEST_ESDB_URI=esdb://host:2113?Tls=false to run the protocol tests unchanged against a
real EventStoreDB; the tests that need esdblite internals then skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from esdbclient import EventStoreDBClient

from esdblite.store import Store
from tests.esdblite.support import EXTERNAL_URI, INTERNALS_REASON
from tests.support.esdb import Servers


@pytest.fixture
def client(esdb_uri: str) -> Iterator[EventStoreDBClient]:
    """A client of the shared server, closed after the test."""
    with EventStoreDBClient(esdb_uri) as c:
        yield c


@pytest.fixture
def make_client(esdb_uri: str) -> Iterator[Callable[[], EventStoreDBClient]]:
    """A factory of extra clients of the shared server (for writer threads), all closed after."""
    made: list[EventStoreDBClient] = []

    def make() -> EventStoreDBClient:
        c = EventStoreDBClient(esdb_uri)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.close()


@pytest.fixture
def esdblite_only() -> None:
    """Skip when the suite runs against an external EventStoreDB."""
    if EXTERNAL_URI:
        pytest.skip(INTERNALS_REASON)


@pytest.fixture
def servers(esdblite_only: None, servers: Servers) -> Servers:
    """The shared private-server fixture, skipped when testing an external EventStoreDB."""
    return servers


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An in-process store on a fresh data directory (no fsync), closed after the test."""
    (tmp_path / "data").mkdir()
    s = Store(tmp_path / "data", fsync=False)
    try:
        yield s
    finally:
        s.close()
