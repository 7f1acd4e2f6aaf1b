"""Targeted attacks on esdblite's Streams service: wrong expected revisions, giant appends, bad
filter regexes and any stream name are refused or answered, and write nothing they should not.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from esdbclient import NewEvent, StreamState
from esdbclient.protos.Grpc import shared_pb2, streams_pb2
from google.protobuf import empty_pb2
from hypothesis import given
from hypothesis import strategies as st

from tests.hostile.protocol import (
    BAD_REGEXES,
    FUZZ,
    MIB,
    TEXT,
    Target,
    append_requests,
    assert_answered,
    call_streams,
    proposed,
    stream_id,
)


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
        answer = call_streams(target, how, append_requests(victim, revision, [proposed()]))
        assert answer.ok, answer.details
        assert streams_pb2.AppendResp.FromString(answer.responses[0]).WhichOneof("result") == (
            "wrong_expected_version"
        )
    else:
        request_type = streams_pb2.DeleteReq if how == "Delete" else streams_pb2.TombstoneReq
        options = request_type.Options(stream_identifier=stream_id(victim))
        if revision == "no_stream":
            options.no_stream.CopyFrom(shared_pb2.Empty())
        else:
            options.revision = revision
        answer = call_streams(target, how, [request_type(options=options)])
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
        events = [proposed(data=blob.encode())]
    elif where == "metadata":
        event = proposed()
        event.custom_metadata = blob.encode()
        events = [event]
    elif where == "type":
        events = [proposed(type=blob)]
    else:
        events = [proposed(data=b"y" * (256 * 1024)) for _ in range(size // (256 * 1024) + 1)]
    answer = call_streams(target, "Append", append_requests(stream, "any", events))
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
    answer = call_streams(target, "Read", [request])
    assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, (answer.code, answer.details)


@FUZZ
@given(pattern=TEXT, by_stream=st.booleans(), subscribe=st.booleans())
def test_any_filter_text_is_answered(
    target: Target, pattern: str, by_stream: bool, subscribe: bool
) -> None:
    request = _filtered_read(pattern, by_stream=by_stream, subscribe=subscribe)
    assert_answered(call_streams(target, "Read", [request]))


@FUZZ
@given(name=st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40))
def test_any_stream_name_is_written_read_and_refused_consistently(
    target: Target, name: str
) -> None:
    stream = f"{uuid.uuid4().hex[:8]}{name}"
    written = call_streams(target, "Append", append_requests(stream, "no_stream", [proposed()]))
    assert_answered(written)
    assert written.ok and streams_pb2.AppendResp.FromString(written.responses[0]).HasField(
        "success"
    )
    assert len(target.read(stream)) == 1
    delete = streams_pb2.DeleteReq(
        options=streams_pb2.DeleteReq.Options(stream_identifier=stream_id(stream), revision=7)
    )
    refused = call_streams(target, "Delete", [delete])
    assert refused.code == grpc.StatusCode.FAILED_PRECONDITION, (refused.code, refused.details)


@pytest.mark.parametrize("name", ["café", "tab\tname", "line\nbreak", "snake-🐍"])
def test_a_refused_delete_of_a_stream_with_any_name_is_answered(target: Target, name: str) -> None:
    stream = f"{name}-{uuid.uuid4().hex[:8]}"
    delete = streams_pb2.DeleteReq(
        options=streams_pb2.DeleteReq.Options(stream_identifier=stream_id(stream), revision=7)
    )
    answer = call_streams(target, "Delete", [delete])
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
    options.stream.stream_identifier.CopyFrom(stream_id(stream))
    options.stream.start.CopyFrom(empty())
    answer = call_streams(target, "Read", [streams_pb2.ReadReq(options=options)])
    assert answer.code == grpc.StatusCode.FAILED_PRECONDITION, (answer.code, answer.details)


def test_an_out_of_range_batch_deadline_is_refused_as_invalid(target: Target) -> None:
    request = streams_pb2.BatchAppendReq(
        correlation_id=shared_pb2.UUID(string=str(uuid.uuid4())),
        options=streams_pb2.BatchAppendReq.Options(
            stream_identifier=stream_id(f"deadline-{uuid.uuid4().hex}"), any=empty_pb2.Empty()
        ),
        is_final=True,
    )
    request.options.deadline_21_10_0.seconds = 2**63 - 1
    answer = call_streams(target, "BatchAppend", [request])
    if answer.ok:
        [raw] = answer.responses
        result = streams_pb2.BatchAppendResp.FromString(raw)
        assert result.WhichOneof("result") == "error"
    else:
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, (answer.code, answer.details)
