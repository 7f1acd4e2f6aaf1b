"""Raw gRPC calls to a private esdblite for the protocol tests, and what counts as an answer.

An answer is a response or a status code; a handler crash (INTERNAL, UNKNOWN) or no answer
before the deadline is a failure (a body that is not the request message at all may get any
error).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.protos.Grpc import gossip_pb2, persistent_pb2, shared_pb2, streams_pb2
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from esdblite.process import ServerProcess

MIB = 1024 * 1024
TIMEOUT = 3.0  # seconds an answer may take; a subscription must at least confirm by then
MAX_RESPONSES = 20
ALLOWED_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNIMPLEMENTED,  # persistent subscriptions beyond List are not served
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}
# $all read from a position that starts no record: UNKNOWN, as EventStoreDB answers it (spec
# §8.3), with its exact words; a handler that crashed answers UNKNOWN with other ones.
INVALID_POSITION = {
    (grpc.StatusCode.UNKNOWN, f"Unexpected {result}: InvalidPosition")
    for result in ("ReadAllResult", "FilteredReadAllResult")
}
BAD_REGEXES = ["(", "[", "*", "a{2,1}", "(?<", "(?P<x>", "\\", "[z-a]", "(?<name", "+"]
NAMES = ["", "$all", "$$", "$et-x", "$ce-account", "a" * 2000, "é", "tab\tname", "\x00", "🐍"]
SERVICES = [
    (module.DESCRIPTOR.services_by_name[name], method)
    for module, name in (
        (streams_pb2, "Streams"),
        (persistent_pb2, "PersistentSubscriptions"),
        (gossip_pb2, "Gossip"),
    )
    for method in module.DESCRIPTOR.services_by_name[name].methods
]
# Shrinking re-sends a failing request many times, each waiting up to TIMEOUT: so no shrinking.
FUZZ = settings(
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=24) | st.sampled_from(
    NAMES + BAD_REGEXES
)


@dataclass
class Answer:
    """What the server said: responses (raw bytes) and a status code, or nothing in time."""

    responses: list[bytes]
    code: grpc.StatusCode
    details: str

    @property
    def ok(self) -> bool:
        return self.code == grpc.StatusCode.OK


@dataclass
class Target:
    """The server under attack, a channel to it and a canary stream to compare."""

    server: ServerProcess
    channel: grpc.Channel
    client: EventStoreDBClient
    canary: str
    canary_events: list[tuple[Any, ...]]

    def read(self, stream: str) -> list[tuple[Any, ...]]:
        return [
            (e.id, e.type, bytes(e.data), bytes(e.metadata), e.stream_position, e.commit_position)
            for e in self.client.get_stream(stream, timeout=10)
        ]

    def assert_intact(self) -> None:
        """The server runs, the canary reads back unchanged, and a new append works."""
        assert self.server.proc is not None and self.server.proc.poll() is None, "server died"
        assert self.read(self.canary) == self.canary_events, "the canary stream changed"
        probe = f"probe-{uuid.uuid4().hex}"
        self.client.append_to_stream(
            probe, current_version=StreamState.NO_STREAM, events=[NewEvent(type="P", data=b"{}")]
        )
        assert len(self.read(probe)) == 1


def call(
    channel: grpc.Channel,
    service: str,
    method: MethodDescriptor,
    requests: Sequence[Message | bytes],
    *,
    enough: int = MAX_RESPONSES,
) -> Answer:
    """Send requests (messages, or raw bytes as the body) to a method; collect the answer.

    A server-streaming call is cancelled after `enough` responses (a subscription: one, its
    confirmation), which counts as answered.
    """

    def serialise(m: Message | bytes) -> bytes:
        return m if isinstance(m, bytes) else m.SerializeToString()

    path = f"/{service}/{method.name}"
    responses: list[bytes] = []
    kinds = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }
    stub = kinds[(method.client_streaming, method.server_streaming)](
        path, request_serializer=serialise, response_deserializer=bytes
    )
    argument: Any = iter(requests) if method.client_streaming else requests[0]
    try:
        if method.server_streaming:
            stream = stub(argument, timeout=TIMEOUT)
            for response in stream:
                responses.append(response)
                if len(responses) >= enough:
                    stream.cancel()
                    break
        else:
            responses.append(stub(argument, timeout=TIMEOUT))
    except grpc.RpcError as error:
        code, details = error.code(), error.details() or ""
        if code == grpc.StatusCode.CANCELLED and len(responses) >= enough:
            code = grpc.StatusCode.OK
        return Answer(responses, code, details)
    return Answer(responses, grpc.StatusCode.OK, "")


def assert_answered(answer: Answer, *, undecodable: bool = False) -> None:
    """A response or a deliberate error status: no handler crash, no silence.

    A body that does not parse as the request message at all may get any error status.
    """
    assert answer.code != grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer within {TIMEOUT:g}s"
    if answer.ok or undecodable:
        return
    if (answer.code, answer.details) in INVALID_POSITION:
        return
    assert answer.code in ALLOWED_CODES, f"{answer.code.name}: {answer.details}"


STREAMS = "event_store.client.streams.Streams"


def streams_method(name: str) -> MethodDescriptor:
    """A method of the Streams service."""
    return streams_pb2.DESCRIPTOR.services_by_name["Streams"].methods_by_name[name]


def call_streams(target: Target, method: str, requests: Sequence[Message]) -> Answer:
    """Call a Streams method and take its first response (a subscription's confirmation)."""
    return call(target.channel, STREAMS, streams_method(method), requests, enough=1)


def stream_id(name: str) -> shared_pb2.StreamIdentifier:
    """A stream identifier, whatever the name holds (lone surrogates included)."""
    return shared_pb2.StreamIdentifier(stream_name=name.encode("utf-8", "surrogatepass"))


def proposed(data: bytes = b"{}", **metadata: str) -> streams_pb2.AppendReq.ProposedMessage:
    """An event to append, with a fresh id and any metadata overridden."""
    return streams_pb2.AppendReq.ProposedMessage(
        id=shared_pb2.UUID(string=str(uuid.uuid4())),
        metadata={"type": "Attack", "content-type": "application/json", **metadata},
        data=data,
    )


def append_requests(
    stream: str, revision: Any, events: Sequence[Any]
) -> list[streams_pb2.AppendReq]:
    """The requests of one Append: options (an expected revision or state), then the events."""
    options = streams_pb2.AppendReq.Options(stream_identifier=stream_id(stream))
    if revision == "no_stream":
        options.no_stream.CopyFrom(shared_pb2.Empty())
    elif revision == "any":
        options.any.CopyFrom(shared_pb2.Empty())
    else:
        options.revision = revision
    return [streams_pb2.AppendReq(options=options)] + [
        streams_pb2.AppendReq(proposed_message=e) for e in events
    ]
