"""Gossip, persistent-subscription listing, addresses, command-line options (§2.1, §3.10-§3.11)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from esdbclient import EventStoreDBClient, NewEvent
from esdbclient.exceptions import MaximumAppendSizeExceededError, NodeIsNotLeader, NotFound
from esdbclient.gossip import NODE_STATE_LEADER

from esdblite.process import ServerProcess
from tests.esdblite.support import (
    EXTERNAL_URI,
    INTERNALS_REASON,
    NO_STREAM,
    ids,
    new_events,
    unique,
)
from tests.support.esdb import Servers


def test_gossip_reports_exactly_one_leader(
    client: EventStoreDBClient, shared_server: ServerProcess | None
):
    [member] = client.read_gossip()
    assert member.state == NODE_STATE_LEADER
    if shared_server is not None:
        assert (member.address, member.port) == ("localhost", shared_server.bound_port)


def test_there_are_no_persistent_subscriptions(client: EventStoreDBClient):
    assert list(client.list_subscriptions()) == []
    assert list(client.list_subscriptions_to_stream(unique())) == []


@pytest.fixture(scope="module")
def configured_server() -> Iterator[ServerProcess]:
    """A server started with the advertise and max-append-size options."""
    if EXTERNAL_URI:
        pytest.skip(INTERNALS_REASON)
    server = ServerProcess(
        extra_args=[
            "--advertise-host",
            "node1.ledger.test",
            "--advertise-port",
            "4321",
            "--max-append-size",
            "1000",
        ]
    ).start()
    try:
        yield server
    finally:
        server.stop()


def test_gossip_advertises_the_configured_host_and_port(configured_server: ServerProcess):
    with EventStoreDBClient(configured_server.uri) as c:
        [member] = c.read_gossip()
    assert (member.state, member.address, member.port) == (
        NODE_STATE_LEADER,
        "node1.ledger.test",
        4321,
    )
    # Discovery reads gossip; with a single member the client keeps its connection.
    discover = f"esdb+discover://localhost:{configured_server.bound_port}?Tls=false"
    with EventStoreDBClient(discover) as c:
        s = unique()
        events = new_events(1)
        c.append_to_stream(s, current_version=NO_STREAM, events=events)
        assert ids(c.get_stream(s)) == ids(events)


def test_the_maximum_append_size_is_configurable(configured_server: ServerProcess):
    with EventStoreDBClient(configured_server.uri) as c:
        s = unique()
        small = NewEvent(type="T", data=b"x" * 500, content_type="application/octet-stream")
        c.append_to_stream(s, current_version=NO_STREAM, events=[small])
        large = NewEvent(type="T", data=b"x" * 2000, content_type="application/octet-stream")
        with pytest.raises(MaximumAppendSizeExceededError, match="Max size is 1000"):
            c.append_to_stream(s, current_version=0, events=[large])
        assert ids(c.get_stream(s)) == [small.id]


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_the_server_is_reachable_over_ipv4_and_ipv6_loopback(
    shared_server: ServerProcess | None, host: str
):
    if shared_server is None:
        pytest.skip(INTERNALS_REASON)
    if host == "[::1]" and not has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    with EventStoreDBClient(f"esdb://{host}:{shared_server.bound_port}?Tls=false") as c:
        s = unique()
        events = new_events(2)
        c.append_to_stream(s, current_version=NO_STREAM, events=events)
        assert ids(c.get_stream(s)) == ids(events)
        assert c.read_gossip()[0].state == NODE_STATE_LEADER


@pytest.mark.parametrize("count", [1, 2], ids=["Append", "BatchAppend"])
def test_a_resigned_node_answers_one_write_not_leader_naming_the_leader(
    servers: Servers, tmp_path: Path, count: int
):
    flag = tmp_path / "resign"
    server = servers.start(extra_args=["--resign-file", str(flag), "--advertise-port", "4321"])
    c = servers.client(server.direct_uri)
    s = unique()
    flag.touch()

    # A direct esdb:// client follows no leader: it sees EventStoreDB's NotLeader answer.
    with pytest.raises(NodeIsNotLeader) as raised:
        c.append_to_stream(s, current_version=NO_STREAM, events=new_events(count))
    assert raised.value.leader_grpc_target == "localhost:4321"
    assert not flag.exists()  # one resignation fails one call
    with pytest.raises(NotFound):
        c.get_stream(s)  # nothing was written
    events = new_events(count)
    c.append_to_stream(s, current_version=NO_STREAM, events=events)
    assert ids(c.get_stream(s)) == ids(events)


def test_reads_are_not_answered_not_leader(servers: Servers, tmp_path: Path):
    flag = tmp_path / "resign"
    server = servers.start(extra_args=["--resign-file", str(flag)])
    c = servers.client(server.direct_uri)
    s = unique()
    events = new_events(1)
    c.append_to_stream(s, current_version=NO_STREAM, events=events)
    flag.touch()
    # esdbclient's reads ask for the leader too, but only writes meet a resignation here.
    assert ids(c.get_stream(s)) == ids(events)
    assert flag.exists()


def test_a_resign_file_holding_a_count_refuses_that_many_writes(servers: Servers, tmp_path: Path):
    flag = tmp_path / "resign"
    server = servers.start(extra_args=["--resign-file", str(flag)])
    c = servers.client(server.direct_uri)
    s = unique()
    flag.write_text("3\n")
    for _ in range(3):
        with pytest.raises(NodeIsNotLeader):
            c.append_to_stream(s, current_version=NO_STREAM, events=new_events(1))
    assert not flag.exists()
    events = new_events(1)
    c.append_to_stream(s, current_version=NO_STREAM, events=events)
    assert ids(c.get_stream(s)) == ids(events)
