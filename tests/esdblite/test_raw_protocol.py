"""Wire-level details through the raw generated stubs: metadata, ids, BatchAppend framing (§3)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from esdbclient import EventStoreDBClient
from esdbclient.exceptions import NotFound
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc
from google.protobuf import duration_pb2, empty_pb2

from tests.esdblite.support import NO_STREAM, grpc_target, ids, new_events, unique

JSON = {"type": "Raw", "content-type": "application/json"}
NO_DEADLINE = duration_pb2.Duration(seconds=315576000000)


@pytest.fixture
def stub(esdb_uri: str) -> Iterator[streams_pb2_grpc.StreamsStub]:
    channel = grpc.insecure_channel(
        grpc_target(esdb_uri), options=[("grpc.max_receive_message_length", 17 * 1024 * 1024)]
    )
    try:
        yield streams_pb2_grpc.StreamsStub(channel)
    finally:
        channel.close()


def stream_id(name: str) -> shared_pb2.StreamIdentifier:
    return shared_pb2.StreamIdentifier(stream_name=name.encode())


def proposed(metadata: dict[str, str], event_id: uuid.UUID | None = None, data: bytes = b"{}"):
    return streams_pb2.AppendReq.ProposedMessage(
        id=shared_pb2.UUID(string=str(event_id or uuid.uuid4())), metadata=metadata, data=data
    )


def append_requests(
    stream: str, messages: list[streams_pb2.AppendReq.ProposedMessage], revision: int | None = None
) -> Iterator[streams_pb2.AppendReq]:
    options = streams_pb2.AppendReq.Options(stream_identifier=stream_id(stream))
    if revision is None:
        options.any.CopyFrom(shared_pb2.Empty())
    else:
        options.revision = revision
    yield streams_pb2.AppendReq(options=options)
    for message in messages:
        yield streams_pb2.AppendReq(proposed_message=message)


def batch_request(
    stream: str | None,
    count: int,
    *,
    correlation_id: str,
    is_final: bool = True,
    deadline: duration_pb2.Duration = NO_DEADLINE,
    metadata: dict[str, str] = JSON,
) -> streams_pb2.BatchAppendReq:
    messages = [
        streams_pb2.BatchAppendReq.ProposedMessage(
            id=shared_pb2.UUID(string=str(uuid.uuid4())), metadata=metadata, data=b"{}"
        )
        for _ in range(count)
    ]
    request = streams_pb2.BatchAppendReq(
        correlation_id=shared_pb2.UUID(string=correlation_id),
        proposed_messages=messages,
        is_final=is_final,
    )
    if stream is not None:
        request.options.CopyFrom(
            streams_pb2.BatchAppendReq.Options(
                stream_identifier=stream_id(stream), any=empty_pb2.Empty(), deadline=deadline
            )
        )
    return request


@pytest.mark.parametrize("missing", ["type", "content-type"])
def test_append_without_required_metadata_is_invalid_argument(
    stub: streams_pb2_grpc.StreamsStub, client: EventStoreDBClient, missing: str
):
    s = unique()
    metadata = {k: v for k, v in JSON.items() if k != missing}
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Append(append_requests(s, [proposed(JSON), proposed(metadata)]), timeout=10)
    error = excinfo.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"Required Metadata Property '{missing}' is missing"
    trailing = dict(error.trailing_metadata() or ())
    assert trailing.get("exception") == "missing-required-metadata-property"
    with pytest.raises(NotFound):
        client.get_stream(s)


def test_batch_append_without_a_type_fails_and_writes_nothing(
    stub: streams_pb2_grpc.StreamsStub, client: EventStoreDBClient
):
    s = unique()
    request = batch_request(
        s, 2, correlation_id=str(uuid.uuid4()), metadata={"content-type": "application/json"}
    )
    try:
        responses = list(stub.BatchAppend(iter([request]), timeout=10))
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    else:
        assert [r.WhichOneof("result") for r in responses] == ["error"]
    with pytest.raises(NotFound):
        client.get_stream(s)


def test_a_structured_event_id_is_accepted(
    stub: streams_pb2_grpc.StreamsStub, client: EventStoreDBClient
):
    s = unique()
    event_id = uuid.uuid4()

    def signed(n: int) -> int:
        return n - 2**64 if n >= 2**63 else n

    message = streams_pb2.AppendReq.ProposedMessage(
        id=shared_pb2.UUID(
            structured=shared_pb2.UUID.Structured(
                most_significant_bits=signed(event_id.int >> 64),
                least_significant_bits=signed(event_id.int & (2**64 - 1)),
            )
        ),
        metadata=JSON,
        data=b"{}",
    )
    response = stub.Append(append_requests(s, [message]), timeout=10)
    assert response.WhichOneof("result") == "success"
    assert ids(client.get_stream(s)) == [event_id]


def test_batch_append_with_a_zero_deadline_times_out_and_writes_nothing(
    stub: streams_pb2_grpc.StreamsStub, client: EventStoreDBClient
):
    s = unique()
    correlation_id = str(uuid.uuid4())
    request = batch_request(s, 1, correlation_id=correlation_id, deadline=duration_pb2.Duration())
    [response] = list(stub.BatchAppend(iter([request]), timeout=10))
    assert response.correlation_id.string == correlation_id
    assert response.WhichOneof("result") == "error"
    assert response.error.details.Is(shared_pb2.Timeout.DESCRIPTOR)
    with pytest.raises(NotFound):
        client.get_stream(s)


def test_batch_append_answers_every_correlation_id_of_a_call(
    stub: streams_pb2_grpc.StreamsStub, client: EventStoreDBClient
):
    streams = {str(uuid.uuid4()): unique() for _ in range(3)}
    requests = [batch_request(s, 2, correlation_id=cid) for cid, s in streams.items()]
    responses = list(stub.BatchAppend(iter(requests), timeout=10))
    assert sorted(r.correlation_id.string for r in responses) == sorted(streams)
    for response in responses:
        stream = streams[response.correlation_id.string]
        assert response.WhichOneof("result") == "success"
        assert response.stream_identifier.stream_name == stream.encode()
        last = client.get_stream(stream)[-1]
        assert response.success.position.commit_position == last.commit_position
        assert response.success.current_revision == 1


def test_a_batch_spanning_several_requests_is_one_atomic_append(
    stub: streams_pb2_grpc.StreamsStub, client: EventStoreDBClient
):
    s = unique()
    correlation_id = str(uuid.uuid4())
    first = batch_request(s, 2, correlation_id=correlation_id, is_final=False)
    rest = batch_request(None, 2, correlation_id=correlation_id, is_final=True)
    [response] = list(stub.BatchAppend(iter([first, rest]), timeout=10))
    assert response.WhichOneof("result") == "success"
    recorded = client.get_stream(s)
    sent = [m.id.string for m in [*first.proposed_messages, *rest.proposed_messages]]
    assert [str(r.id) for r in recorded] == sent
    assert [r.stream_position for r in recorded] == [0, 1, 2, 3]
    assert response.success.position.commit_position == recorded[-1].commit_position


def test_append_reports_a_wrong_version_in_the_fields_the_client_reads(
    stub: streams_pb2_grpc.StreamsStub, client: EventStoreDBClient
):
    s = unique()
    response = stub.Append(append_requests(s, [proposed(JSON)], revision=4), timeout=10)
    wev = response.wrong_expected_version
    assert wev.WhichOneof("current_revision_option") == "current_no_stream"
    assert (wev.WhichOneof("expected_revision_option"), wev.expected_revision) == (
        "expected_revision",
        4,
    )

    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(1))
    response = stub.Append(append_requests(s, [proposed(JSON)], revision=4), timeout=10)
    wev = response.wrong_expected_version
    assert (wev.WhichOneof("current_revision_option"), wev.current_revision) == (
        "current_revision",
        0,
    )


def test_read_events_carry_positions_ids_and_exactly_three_metadata_keys(
    stub: streams_pb2_grpc.StreamsStub, client: EventStoreDBClient
):
    s = unique()
    json_id, other_id = uuid.uuid4(), uuid.uuid4()
    text = {"type": "Text", "content-type": "text/plain"}
    stub.Append(append_requests(s, [proposed(JSON, json_id), proposed(text, other_id)]), timeout=10)
    options = streams_pb2.ReadReq.Options(
        stream=streams_pb2.ReadReq.Options.StreamOptions(
            stream_identifier=stream_id(s), start=shared_pb2.Empty()
        ),
        read_direction=streams_pb2.ReadReq.Options.Forwards,
        count=10,
        no_filter=shared_pb2.Empty(),
        uuid_option=streams_pb2.ReadReq.Options.UUIDOption(string=shared_pb2.Empty()),
    )
    responses = list(stub.Read(streams_pb2.ReadReq(options=options), timeout=10))
    assert [r.WhichOneof("content") for r in responses] == ["event", "event"]
    for response, expected_id in zip(responses, (json_id, other_id), strict=True):
        read_event = response.event
        event = read_event.event
        assert read_event.WhichOneof("position") == "commit_position"
        assert read_event.commit_position == event.commit_position == event.prepare_position > 0
        assert event.id.string == str(expected_id)
        assert set(event.metadata) == {"type", "created", "content-type"}
        assert read_event.link.id.string == ""
    # Only "is it JSON" is stored: any other content type reads back as octet-stream.
    assert responses[0].event.event.metadata["content-type"] == "application/json"
    assert responses[1].event.event.metadata["content-type"] == "application/octet-stream"
