"""Protocol robustness: malformed gRPC requests and raw bytes get answers; esdblite stays up intact.

Requests are built from the generated messages (esdbclient.protos.Grpc) with random fields,
wrong expected revisions, giant payloads, bad regexes and random stream names. An answer is a
response or a status code; a handler crash (INTERNAL, UNKNOWN) or no answer before the
deadline is a failure (a body that is not the request message at all may get any error).
After every example the server must still run and a known stream must read back exactly as it
was written. Clients that give up mid-append and a catastrophic filter regex must not stop
the server from serving everybody else.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.protos.Grpc import gossip_pb2, persistent_pb2, shared_pb2, streams_pb2
from google.protobuf import empty_pb2, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, Phase, given, note, settings
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


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A private esdblite (so no other test shares the abuse) with a canary stream."""
    log: Path = tmp_path_factory.mktemp("protocol-esdblite") / "server.log"
    server = ServerProcess(log_file=log).start()
    channel = grpc.insecure_channel(
        f"localhost:{server.bound_port}",
        options=[("grpc.max_receive_message_length", 64 * MIB)],
    )
    client = EventStoreDBClient(server.uri)
    canary = f"canary-{uuid.uuid4().hex}"
    client.append_to_stream(
        canary,
        current_version=StreamState.NO_STREAM,
        events=[NewEvent(type="Canary", data=f'{{"n": {n}}}'.encode()) for n in range(3)],
    )
    t = Target(server, channel, client, canary, [])
    t.canary_events = t.read(canary)
    try:
        yield t
        t.assert_intact()
    finally:
        client.close()
        channel.close()
        server.stop()


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
    assert answer.code in ALLOWED_CODES, f"{answer.code.name}: {answer.details}"


# ----- messages with random fields


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=24) | st.sampled_from(
    NAMES + BAD_REGEXES
)
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: _TEXT,
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=32) | _TEXT.map(lambda s: s.encode()),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT32: st.sampled_from([0, -1, 2**31 - 1, -(2**31)]) | st.integers(-9, 9),
    FieldDescriptor.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: st.sampled_from([0, 1, 2**32 - 1]) | st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: st.sampled_from([0, -1, 2**63 - 1, -(2**63)])
    | st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: st.sampled_from([0, 1, 2, 2**63, 2**64 - 1])
    | st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32, allow_nan=True, allow_infinity=True),
}


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> Message:
    """A message of this type with a random subset of its fields set to random values."""
    message = message_factory.GetMessageClass(descriptor)()
    if depth > 3:
        return message
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        target = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key = field.message_type.fields_by_name["key"]
            value = field.message_type.fields_by_name["value"]
            for k, v in draw(
                st.dictionaries(_SCALARS[key.type], _value(value, depth), max_size=3)
            ).items():
                if value.message_type is not None:
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif field.label == FieldDescriptor.LABEL_REPEATED:
            for v in draw(st.lists(_value(field, depth), max_size=3)):
                if field.message_type is not None:
                    target.add().CopyFrom(v)
                else:
                    target.append(v)
        elif field.message_type is not None:
            target.CopyFrom(draw(messages(field.message_type, depth + 1)))
        elif field.enum_type is not None:
            setattr(message, field.name, draw(st.integers(0, len(field.enum_type.values) + 2)))
        else:
            setattr(message, field.name, draw(_SCALARS[field.type]))
    return message


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return messages(field.message_type, depth + 1)
    if field.enum_type is not None:
        return st.integers(0, len(field.enum_type.values) + 2)
    return _SCALARS[field.type]


def _is_subscription(method: MethodDescriptor, requests: Sequence[Message | bytes]) -> bool:
    if method.name != "Read" or method.containing_service.name != "Streams":
        return method.server_streaming and method.client_streaming
    first = requests[0]
    return isinstance(first, bytes) or first.options.WhichOneof("count_option") == "subscription"


@FUZZ
@given(data=st.data())
def test_requests_with_random_fields_to_every_method_are_answered(
    target: Target, data: st.DataObject
) -> None:
    service, method = data.draw(st.sampled_from(SERVICES), label="method")
    note(f"method: {service.full_name}/{method.name}")
    count = data.draw(st.integers(1, 3)) if method.client_streaming else 1
    requests = [data.draw(messages(method.input_type), label="request") for _ in range(count)]
    enough = 1 if _is_subscription(method, requests) else MAX_RESPONSES
    answer = call(target.channel, service.full_name, method, requests, enough=enough)
    assert_answered(answer)
    assert target.server.proc is not None and target.server.proc.poll() is None


@FUZZ
@given(data=st.data())
def test_bodies_that_are_not_messages_are_answered(target: Target, data: st.DataObject) -> None:
    service, method = data.draw(st.sampled_from(SERVICES), label="method")
    note(f"method: {service.full_name}/{method.name}")
    body = data.draw(st.binary(min_size=1, max_size=256), label="body")
    try:
        message_factory.GetMessageClass(method.input_type).FromString(body)
        undecodable = False
    except DecodeError:
        undecodable = True
    answer = call(target.channel, service.full_name, method, [body], enough=1)
    assert_answered(answer, undecodable=undecodable)
    assert target.server.proc is not None and target.server.proc.poll() is None


# ----- targeted attacks: expected revisions, giant payloads, regexes, stream names


def _streams_method(name: str) -> MethodDescriptor:
    return streams_pb2.DESCRIPTOR.services_by_name["Streams"].methods_by_name[name]


STREAMS = "event_store.client.streams.Streams"


def _streams(target: Target, method: str, requests: Sequence[Message]) -> Answer:
    return call(target.channel, STREAMS, _streams_method(method), requests, enough=1)


def _stream_id(name: str) -> shared_pb2.StreamIdentifier:
    return shared_pb2.StreamIdentifier(stream_name=name.encode("utf-8", "surrogatepass"))


def _proposed(data: bytes = b"{}", **metadata: str) -> streams_pb2.AppendReq.ProposedMessage:
    return streams_pb2.AppendReq.ProposedMessage(
        id=shared_pb2.UUID(string=str(uuid.uuid4())),
        metadata={"type": "Attack", "content-type": "application/json", **metadata},
        data=data,
    )


def _append(stream: str, revision: Any, events: Sequence[Any]) -> list[streams_pb2.AppendReq]:
    options = streams_pb2.AppendReq.Options(stream_identifier=_stream_id(stream))
    if revision == "no_stream":
        options.no_stream.CopyFrom(shared_pb2.Empty())
    elif revision == "any":
        options.any.CopyFrom(shared_pb2.Empty())
    else:
        options.revision = revision
    return [streams_pb2.AppendReq(options=options)] + [
        streams_pb2.AppendReq(proposed_message=e) for e in events
    ]


@pytest.fixture(scope="module")
def victim(target: Target) -> str:
    """A stream at revision 2 that wrong expected revisions must not touch."""
    name = f"victim-{uuid.uuid4().hex}"
    target.client.append_to_stream(
        name,
        current_version=StreamState.NO_STREAM,
        events=[NewEvent(type="V", data=b"{}") for _ in range(3)],
    )
    return name


WRONG_REVISIONS = st.sampled_from(["no_stream", 0, 1, 3, 2**63, 2**64 - 1]) | st.integers(
    3, 2**64 - 1
)


@FUZZ
@given(revision=WRONG_REVISIONS, how=st.sampled_from(["Append", "Delete", "Tombstone"]))
def test_a_wrong_expected_revision_is_refused_and_writes_nothing(
    target: Target, victim: str, revision: Any, how: str
) -> None:
    before = target.read(victim)
    if how == "Append":
        answer = _streams(target, how, _append(victim, revision, [_proposed()]))
        assert answer.ok, answer.details
        assert streams_pb2.AppendResp.FromString(answer.responses[0]).WhichOneof("result") == (
            "wrong_expected_version"
        )
    else:
        request_type = streams_pb2.DeleteReq if how == "Delete" else streams_pb2.TombstoneReq
        options = request_type.Options(stream_identifier=_stream_id(victim))
        if revision == "no_stream":
            options.no_stream.CopyFrom(shared_pb2.Empty())
        else:
            options.revision = revision
        answer = _streams(target, how, [request_type(options=options)])
        assert answer.code == grpc.StatusCode.FAILED_PRECONDITION, (answer.code, answer.details)
    assert target.read(victim) == before


@FUZZ
@given(
    size=st.sampled_from([MIB + 1, 2 * MIB, 5 * MIB]),
    where=st.sampled_from(["data", "metadata", "type", "split"]),
)
def test_a_giant_append_is_refused_whole(target: Target, size: int, where: str) -> None:
    stream = f"giant-{uuid.uuid4().hex}"
    blob = "x" * size
    if where == "data":
        events = [_proposed(data=blob.encode())]
    elif where == "metadata":
        event = _proposed()
        event.custom_metadata = blob.encode()
        events = [event]
    elif where == "type":
        events = [_proposed(type=blob)]
    else:
        events = [_proposed(data=b"y" * (256 * 1024)) for _ in range(size // (256 * 1024) + 1)]
    answer = _streams(target, "Append", _append(stream, "any", events))
    assert not answer.ok, "a giant append was accepted"
    assert answer.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert _read_count(target, stream) == 0


def _read_count(target: Target, stream: str) -> int:
    try:
        return len(target.read(stream))
    except Exception as exc:  # esdbclient's NotFound: the stream was never written
        assert type(exc).__name__ == "NotFound", exc
        return 0


def _filtered_read(pattern: str, *, by_stream: bool, subscribe: bool) -> streams_pb2.ReadReq:
    options = streams_pb2.ReadReq.Options(
        read_direction=streams_pb2.ReadReq.Options.Forwards,
        resolve_links=False,
        uuid_option=streams_pb2.ReadReq.Options.UUIDOption(string=shared_pb2.Empty()),
    )
    options.all.start.CopyFrom(shared_pb2.Empty())
    expression = streams_pb2.ReadReq.Options.FilterOptions.Expression(regex=pattern)
    flt = streams_pb2.ReadReq.Options.FilterOptions(checkpointIntervalMultiplier=1, count=empty())
    if by_stream:
        flt.stream_identifier.CopyFrom(expression)
    else:
        flt.event_type.CopyFrom(expression)
    options.filter.CopyFrom(flt)
    if subscribe:
        options.subscription.CopyFrom(streams_pb2.ReadReq.Options.SubscriptionOptions())
    else:
        options.count = 100
    return streams_pb2.ReadReq(options=options)


def empty() -> shared_pb2.Empty:
    return shared_pb2.Empty()


@FUZZ
@given(
    pattern=st.sampled_from(BAD_REGEXES),
    by_stream=st.booleans(),
    subscribe=st.booleans(),
)
def test_a_bad_filter_regex_is_refused_as_invalid(
    target: Target, pattern: str, by_stream: bool, subscribe: bool
) -> None:
    request = _filtered_read(pattern, by_stream=by_stream, subscribe=subscribe)
    answer = _streams(target, "Read", [request])
    assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, (answer.code, answer.details)


@FUZZ
@given(pattern=_TEXT, by_stream=st.booleans(), subscribe=st.booleans())
def test_any_filter_text_is_answered(
    target: Target, pattern: str, by_stream: bool, subscribe: bool
) -> None:
    request = _filtered_read(pattern, by_stream=by_stream, subscribe=subscribe)
    assert_answered(_streams(target, "Read", [request]))


@FUZZ
@given(name=st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40))
def test_any_stream_name_is_written_read_and_refused_consistently(
    target: Target, name: str
) -> None:
    stream = f"{uuid.uuid4().hex[:8]}{name}"
    written = _streams(target, "Append", _append(stream, "no_stream", [_proposed()]))
    assert_answered(written)
    assert written.ok and streams_pb2.AppendResp.FromString(written.responses[0]).HasField(
        "success"
    )
    assert len(target.read(stream)) == 1
    delete = streams_pb2.DeleteReq(
        options=streams_pb2.DeleteReq.Options(stream_identifier=_stream_id(stream), revision=7)
    )
    refused = _streams(target, "Delete", [delete])
    assert refused.code == grpc.StatusCode.FAILED_PRECONDITION, (refused.code, refused.details)


@pytest.mark.parametrize("name", ["café", "tab\tname", "line\nbreak", "snake-🐍"])
def test_a_refused_delete_of_a_stream_with_any_name_is_answered(target: Target, name: str) -> None:
    stream = f"{name}-{uuid.uuid4().hex[:8]}"
    delete = streams_pb2.DeleteReq(
        options=streams_pb2.DeleteReq.Options(stream_identifier=_stream_id(stream), revision=7)
    )
    answer = _streams(target, "Delete", [delete])
    assert answer.code == grpc.StatusCode.FAILED_PRECONDITION, (answer.code, answer.details)


@pytest.mark.parametrize("name", ["café", "line\nbreak"])
def test_reading_a_tombstoned_stream_with_any_name_is_answered(target: Target, name: str) -> None:
    stream = f"{name}-{uuid.uuid4().hex[:8]}"
    target.client.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=[NewEvent(type="T", data=b"{}")]
    )
    target.client.tombstone_stream(stream, current_version=StreamState.ANY)
    options = streams_pb2.ReadReq.Options(
        read_direction=streams_pb2.ReadReq.Options.Forwards,
        count=10,
        no_filter=empty(),
        uuid_option=streams_pb2.ReadReq.Options.UUIDOption(string=empty()),
    )
    options.stream.stream_identifier.CopyFrom(_stream_id(stream))
    options.stream.start.CopyFrom(empty())
    answer = _streams(target, "Read", [streams_pb2.ReadReq(options=options)])
    assert answer.code == grpc.StatusCode.FAILED_PRECONDITION, (answer.code, answer.details)


def test_an_out_of_range_batch_deadline_is_refused_as_invalid(target: Target) -> None:
    request = streams_pb2.BatchAppendReq(
        correlation_id=shared_pb2.UUID(string=str(uuid.uuid4())),
        options=streams_pb2.BatchAppendReq.Options(
            stream_identifier=_stream_id(f"deadline-{uuid.uuid4().hex}"), any=empty_pb2.Empty()
        ),
        is_final=True,
    )
    request.options.deadline_21_10_0.seconds = 2**63 - 1
    answer = _streams(target, "BatchAppend", [request])
    if answer.ok:
        [raw] = answer.responses
        result = streams_pb2.BatchAppendResp.FromString(raw)
        assert result.WhichOneof("result") == "error"
    else:
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, (answer.code, answer.details)


def test_appends_whose_clients_gave_up_do_not_stop_later_appends(tmp_path: Path) -> None:
    # Clients that stop waiting (a deadline here; a dropped connection does the same) while
    # their append is queued or being committed: the server must go on committing writes.
    with ServerProcess(tmp_path / "esdb", log_file=tmp_path / "esdblite.log") as server:
        channel = grpc.insecure_channel(f"localhost:{server.bound_port}")
        append = channel.stream_unary(
            f"/{STREAMS}/Append",
            request_serializer=streams_pb2.AppendReq.SerializeToString,
            response_deserializer=streams_pb2.AppendResp.FromString,
        )

        def impatient(client: int, round_: int) -> None:
            for i in range(40):
                with contextlib.suppress(grpc.RpcError):
                    stream = f"impatient-{round_}-{client}-{i}"
                    append(iter(_append(stream, "any", [_proposed()])), timeout=(1 + i % 8) / 1000)

        try:
            for round_ in range(10):
                threads = [threading.Thread(target=impatient, args=(c, round_)) for c in range(8)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                try:
                    append(
                        iter(_append(f"patient-{round_}", "no_stream", [_proposed()])), timeout=5
                    )
                except grpc.RpcError as exc:
                    log = (tmp_path / "esdblite.log").read_text(errors="replace")
                    tail = "\n".join(log.splitlines()[-4:])
                    raise AssertionError(
                        f"after 8 clients x 40 appends with 1-8 ms deadlines (round {round_}), "
                        f"a new append failed with {exc.code().name}; the server log ends "
                        f"with:\n{tail}"
                    ) from None
        finally:
            channel.close()


def test_a_catastrophic_filter_regex_fails_its_own_read_and_nobody_elses(tmp_path: Path) -> None:
    # "(a|aa)+" backtracks exponentially on a long run of a's that does not end the match: without
    # a budget one such read would hold the server's event loop for hours.
    event = [NewEvent(type="A", data=b"{}")]
    with ServerProcess(log_file=tmp_path / "esdblite.log") as server:
        client = EventStoreDBClient(server.uri)
        other = EventStoreDBClient(server.uri)
        try:
            client.append_to_stream("a" * 60 + "!", current_version=StreamState.ANY, events=event)
            outcome: list[BaseException | None] = []

            def read_with_runaway_filter() -> None:
                try:
                    list(
                        client.read_all(
                            filter_include=["(a|aa)+"], filter_by_stream_name=True, timeout=60
                        )
                    )
                    outcome.append(None)
                except BaseException as exc:  # the outcome is what is tested
                    outcome.append(exc)

            reader = threading.Thread(target=read_with_runaway_filter, daemon=True)
            reader.start()
            other.append_to_stream("unrelated", current_version=StreamState.ANY, events=event)
            reader.join(60)
            assert not reader.is_alive(), "the read with a runaway regex never ended"
            assert outcome and outcome[0] is not None, "a runaway regex read returned normally"
            assert "Invalid filter" in str(outcome[0]), f"unclear error: {outcome[0]!r}"
            # The server is still serving everyone: a well-behaved filter read sees both streams.
            names = {
                e.stream_name
                for e in other.read_all(
                    filter_include=["a+!", "unrelated"], filter_by_stream_name=True, timeout=10
                )
            }
            assert names == {"a" * 60 + "!", "unrelated"}
        finally:
            other.close()
            client.close()


# ----- raw bytes on the port


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@FUZZ
@given(
    prefix=st.sampled_from([b"", HTTP2_PREFACE, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]),
    body=st.binary(max_size=4096),
)
def test_random_bytes_on_the_port_leave_the_server_serving(
    target: Target, prefix: bytes, body: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", target.server.bound_port or 0), timeout=2) as s:
        try:
            s.sendall(prefix + body)
            s.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline and s.recv(65536):
                pass
        except OSError:
            pass  # the server may close or reset the connection: that is an answer too
    assert target.server.proc is not None and target.server.proc.poll() is None
    assert target.read(target.canary) == target.canary_events


def test_the_server_is_intact_after_all_of_it(target: Target) -> None:
    target.assert_intact()
