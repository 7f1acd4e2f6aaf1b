"""Deadlines and bad input: the right error, nothing written, the server stays up (§2.3, §2.5)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
from esdbclient import EventStoreDBClient, NewEvent
from esdbclient.exceptions import (
    DeadlineExceeded,
    EventStoreDBClientException,
    GrpcError,
    MaximumAppendSizeExceededError,
    NotFound,
)

from esdblite.process import ServerProcess
from tests.esdblite.support import (
    ANY,
    EXTERNAL_URI,
    MAX_APPEND_SIZE,
    MODES,
    NO_FILTER,
    NO_STREAM,
    append,
    host_and_port,
    ids,
    new_events,
    unique,
)

KIB = 1024


def assert_still_serving(client: EventStoreDBClient, canary: str, canary_ids: list[uuid.UUID]):
    """The server answers reads and writes, and data written before is intact."""
    assert ids(client.get_stream(canary)) == canary_ids
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(1))
    assert len(client.get_stream(s)) == 1


@pytest.fixture
def canary(client: EventStoreDBClient) -> tuple[str, list[uuid.UUID]]:
    s = unique("canary")
    events = new_events(3)
    client.append_to_stream(s, current_version=NO_STREAM, events=events)
    return s, ids(events)


@pytest.mark.parametrize("timeout", [0, 1e-6], ids=["zero", "one-microsecond"])
@pytest.mark.parametrize("mode", MODES)
def test_an_append_with_an_expired_deadline_does_not_succeed(
    client: EventStoreDBClient, mode: str, timeout: float
):
    # gRPC delivers timeout=0 as a deadline about a millisecond away, so a server that does not
    # treat it as expired before committing succeeds only now and then: try repeatedly.
    for _ in range(10):
        s = unique()
        with pytest.raises(DeadlineExceeded):
            append(client, mode, s, new_events(2), ANY, timeout=timeout)
        with pytest.raises(NotFound):
            client.get_stream(s)


@pytest.fixture(scope="module")
def large_all_uri(esdb_uri: str) -> Iterator[str]:
    """A server whose $all holds thousands of events (its own, so it slows no other test)."""
    if EXTERNAL_URI:
        uri, server = esdb_uri, None
    else:
        server = ServerProcess().start()
        uri = server.uri
    try:
        c = EventStoreDBClient(uri)
        try:
            s = unique("large")
            for n in range(10):
                batch = new_events(500, size=1000)
                c.append_to_stream(
                    s, current_version=NO_STREAM if n == 0 else n * 500 - 1, events=batch
                )
        finally:
            c.close()
        yield uri
    finally:
        if server is not None:
            server.stop()


def test_reading_a_large_all_with_a_1ms_deadline_is_cut_short(large_all_uri: str):
    c = EventStoreDBClient(large_all_uri)
    try:
        with pytest.raises(DeadlineExceeded):
            for _ in c.read_all(timeout=0.001, **NO_FILTER):
                pass
        # The server is still fine afterwards and the whole log is readable.
        assert sum(1 for _ in c.read_all(**NO_FILTER)) > 5000
    finally:
        c.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "shape",
    ["one large event", "several events summed", "data plus custom metadata", "five MiB"],
)
def test_an_append_over_the_maximum_size_is_rejected_and_writes_nothing(
    client: EventStoreDBClient, mode: str, shape: str
):
    s = unique()
    if shape == "one large event":
        events = [
            NewEvent(
                type="Big",
                data=os.urandom(MAX_APPEND_SIZE + KIB),
                content_type="application/octet-stream",
            )
        ]
    elif shape == "several events summed":
        events = [
            NewEvent(
                type="Big", data=os.urandom(400 * KIB), content_type="application/octet-stream"
            )
            for _ in range(3)
        ]
    elif shape == "data plus custom metadata":
        events = [
            NewEvent(
                type="Big",
                data=os.urandom(600 * KIB),
                metadata=os.urandom(600 * KIB),
                content_type="application/octet-stream",
            )
        ]
    else:
        # Above gRPC's default 4 MiB receive limit: the protocol error, not RESOURCE_EXHAUSTED.
        events = [
            NewEvent(
                type="Big", data=os.urandom(5 * 1024 * KIB), content_type="application/octet-stream"
            )
        ]

    if mode == "Append" and len(events) == 1:
        with pytest.raises(GrpcError) as excinfo:
            append(client, mode, s, events, NO_STREAM)
        assert f"Maximum Append Size of {MAX_APPEND_SIZE} Exceeded" in str(excinfo.value)
    elif mode == "Append":
        with pytest.raises(GrpcError, match="Maximum Append Size"):
            append(client, mode, s, events, NO_STREAM)
    else:
        with pytest.raises(MaximumAppendSizeExceededError, match=f"Max size is {MAX_APPEND_SIZE}"):
            append(client, mode, s, events, NO_STREAM)
    with pytest.raises(NotFound):
        client.get_stream(s)


@pytest.mark.parametrize("mode", MODES)
def test_an_append_just_under_the_maximum_size_succeeds(client: EventStoreDBClient, mode: str):
    s = unique()
    data = os.urandom(MAX_APPEND_SIZE - 4 * KIB)
    event = NewEvent(type="Big", data=data, content_type="application/octet-stream")
    append(client, mode, s, [event], NO_STREAM)
    [recorded] = client.get_stream(s)
    assert recorded.data == data


def test_an_invalid_filter_regex_is_rejected_and_the_server_stays_up(
    client: EventStoreDBClient, canary: tuple[str, list[uuid.UUID]]
):
    with pytest.raises(GrpcError):
        list(client.read_all(filter_include=["("]))
    with pytest.raises(GrpcError):
        list(client.read_all(filter_include=["("], filter_by_stream_name=True, backwards=True))
    with pytest.raises(GrpcError):
        subscription = client.subscribe_to_all(filter_include=["("])
        try:
            next(iter(subscription))
        finally:
            subscription.stop()
    assert_still_serving(client, *canary)


@pytest.mark.parametrize("mode", MODES)
def test_an_empty_stream_name_is_rejected_and_the_server_stays_up(
    client: EventStoreDBClient, mode: str, canary: tuple[str, list[uuid.UUID]]
):
    start = client.get_commit_position(**NO_FILTER)
    events = new_events(1)
    with pytest.raises(EventStoreDBClientException):
        append(client, mode, "", events, ANY)
    written = [
        r for r in client.read_all(commit_position=start, **NO_FILTER) if r.id == events[0].id
    ]
    assert written == []
    assert_still_serving(client, *canary)


def test_garbage_bytes_on_the_port_do_not_disturb_the_server(
    client: EventStoreDBClient, esdb_uri: str, canary: tuple[str, list[uuid.UUID]]
):
    host, port = host_and_port(esdb_uri)
    payloads = [
        os.urandom(64 * KIB),
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(4 * KIB),
        b"\x00" * 9,
    ]
    for payload in payloads:
        with socket.create_connection((host, port), timeout=5) as sock:
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                sock.recv(4096)
            except OSError:
                pass  # the server may hang up on garbage; that is its right
    assert_still_serving(client, *canary)
