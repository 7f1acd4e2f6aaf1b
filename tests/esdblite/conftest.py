"""Fixtures for the esdblite suite: a shared server, per-test clients, private servers on data dirs.

Set LEDGER_TEST_ESDB_URI=esdb://host:2113?Tls=false to run the protocol tests unchanged against a
real EventStoreDB; the tests that need esdblite internals then skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from esdbclient import EventStoreDBClient

from esdblite.process import ServerProcess
from tests.esdblite.support import EXTERNAL_URI, INTERNALS_REASON, Servers


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess | None]:
    """The in-memory esdblite server most tests share (None when testing an external server)."""
    if EXTERNAL_URI:
        yield None
        return
    log = tmp_path_factory.mktemp("shared-esdblite") / "server.log"
    server = ServerProcess(log_file=log)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def esdb_uri(shared_server: ServerProcess | None) -> str:
    """URI of the server under test."""
    if shared_server is None:
        assert EXTERNAL_URI
        return EXTERNAL_URI
    return shared_server.uri


@pytest.fixture
def client(esdb_uri: str) -> Iterator[EventStoreDBClient]:
    """A client of the shared server, closed after the test."""
    c = EventStoreDBClient(esdb_uri)
    try:
        yield c
    finally:
        c.close()


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
def servers(esdblite_only: None, tmp_path: Path) -> Iterator[Servers]:
    """Private esdblite servers for tests of restarts, crashes, files, locks and ports."""
    s = Servers(tmp_path)
    try:
        yield s
    finally:
        s.close()
