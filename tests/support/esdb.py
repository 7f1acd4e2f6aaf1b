"""The event store under test: the session's shared esdblite (or LEDGER_TEST_ESDB_URI), and
private esdblite servers for tests that restart, crash or fill one.

Set LEDGER_TEST_ESDB_URI=esdb://host:2113?Tls=false to run the tests that share a store against
an external EventStoreDB; tests that need a store of their own always start a private esdblite.

The URIs of these esdblite servers are `esdb+discover://` ones, as a cluster's are: every client
reads gossip first and connects to the leader it names. LEDGER_TEST_ESDB_DISCOVER=0 hands out
the direct `esdb://` form instead; tests that name the direct form (`direct_uri`, the played
server, the IPv4/IPv6 loopback tests) keep that path covered either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from esdbclient import EventStoreDBClient, RecordedEvent
from esdbclient.exceptions import NotFound

from esdblite.process import ServerProcess
from ledger.streams import account_stream


def discovering() -> bool:
    """Whether the tests' esdblite URIs are discover URIs (the default)."""
    return os.environ.get("LEDGER_TEST_ESDB_DISCOVER", "1") != "0"


def discover_uri(uri: str) -> str:
    """The `esdb+discover://` form of a single-node `esdb://` URI."""
    scheme, _, rest = uri.partition("://")
    if scheme != "esdb":
        raise ValueError(f"not an esdb:// URI: {uri}")
    return f"esdb+discover://{rest}"


def direct_form(uri: str) -> str:
    """The direct `esdb://` form of a single node's URI (either form)."""
    scheme, _, rest = uri.partition("://")
    return f"esdb://{rest}" if scheme == "esdb+discover" else uri


def handed_out_uri(uri: str) -> str:
    """A single node's URI (either form) as the tests hand it out: discover, or direct (see
    `discovering`)."""
    direct = direct_form(uri)
    return discover_uri(direct) if discovering() else direct


class LiteServer(ServerProcess):
    """An esdblite process whose `uri` is its discover URI (see `discovering`)."""

    @property
    def uri(self) -> str:
        """The URI clients of the tests use: discover, or direct."""
        return handed_out_uri(self.direct_uri)

    @property
    def direct_uri(self) -> str:
        """The single-node `esdb://` URI, for tests of the direct path."""
        return super().uri


def external_esdb_uri() -> str | None:
    """The external event store named by LEDGER_TEST_ESDB_URI, if any.

    Read when asked, not at import: with LEDGER_TEST_CONTAINERS=1 the variable is only set by
    `pytest_configure`, after this module is imported.
    """
    return os.environ.get("LEDGER_TEST_ESDB_URI") or None


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess | None]:
    """The in-memory esdblite most tests share (None when testing an external server)."""
    if external_esdb_uri():
        yield None
        return
    with LiteServer(log_file=tmp_path_factory.mktemp("shared-esdblite") / "server.log") as server:
        yield server


@pytest.fixture(scope="session")
def esdb_uri(shared_server: ServerProcess | None) -> str:
    """URI of the event store tests share (with fresh stream names and account ids)."""
    if shared_server is None:
        uri = external_esdb_uri()
        assert uri
        return uri
    return shared_server.uri


class Servers:
    """Starts private esdblite servers and clients for one test and cleans them all up."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self._servers: list[LiteServer] = []
        self._clients: list[EventStoreDBClient] = []
        self._logs = 0

    def new(
        self,
        data_dir: Path | None = None,
        *,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        port: int = 0,
    ) -> LiteServer:
        """An unstarted server whose stderr goes to its own log file (see .log_file)."""
        self._logs += 1
        server = LiteServer(
            data_dir,
            port=port,
            env=env,
            extra_args=extra_args,
            log_file=self.tmp_path / f"server-{self._logs}.log",
        )
        self._servers.append(server)
        return server

    def start(self, data_dir: Path | None = None, **kwargs: Any) -> LiteServer:
        """A started server."""
        server = self.new(data_dir, **kwargs)
        server.start()
        return server

    def __call__(self, *, durable: bool = False) -> LiteServer:
        """A started server: in memory, or durable on a data directory of its own."""
        return self.start(self.tmp_path / f"esdb-{self._logs + 1}" if durable else None)

    def client(self, server: ServerProcess | str) -> EventStoreDBClient:
        """A client of a server (or URI), closed after the test."""
        c = EventStoreDBClient(server if isinstance(server, str) else server.uri)
        self._clients.append(c)
        return c

    def close(self) -> None:
        """Close every client, then stop every server still running."""
        for c in self._clients:
            c.close()
        for server in self._servers:
            server.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    """Private esdblite servers (and their clients) for one test, all stopped after it."""
    s = Servers(tmp_path)
    try:
        yield s
    finally:
        s.close()


def stream_events(client: EventStoreDBClient, account_id: str) -> tuple[RecordedEvent, ...]:
    """Every recorded event of an account's stream; empty when the stream does not exist."""
    try:
        return tuple(client.get_stream(account_stream(account_id)))
    except NotFound:
        return ()
