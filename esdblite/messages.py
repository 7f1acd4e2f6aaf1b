"""Protocol messages: request fields read, recorded events and positions built, errors answered."""

from __future__ import annotations

import time
import urllib.parse
import uuid
from typing import NoReturn

import grpc
from esdbclient.protos.Grpc import shared_pb2, status_pb2, streams_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from esdblite import rules
from esdblite.index import Row
from esdblite.writer import ProposedEvent, WriteResult

ReadResp = streams_pb2.ReadResp
RecordedEvent = ReadResp.ReadEvent.RecordedEvent
UINT64_MAX = 2**64 - 1
JSON = "application/json"
OCTET = "application/octet-stream"


def expected_revision(which: str | None, revision: int) -> int:
    """The int64 form of an expectation: exact, NO_STREAM -1, ANY -2, STREAM_EXISTS -4."""
    return {
        "no_stream": rules.NO_STREAM,
        "any": rules.ANY,
        "stream_exists": rules.STREAM_EXISTS,
    }.get(which or "any", revision)


def uuid_bytes(msg: shared_pb2.UUID) -> bytes:
    """Parse a UUID message (string or structured) into 16 bytes; ValueError when malformed."""
    if msg.WhichOneof("value") == "structured":
        hi = msg.structured.most_significant_bits & (2**64 - 1)
        lo = msg.structured.least_significant_bits & (2**64 - 1)
        return ((hi << 64) | lo).to_bytes(16, "big")
    text = msg.string
    # The canonical form (what clients send) without uuid.UUID's object; 16 bytes from 32
    # characters means 32 hex digits, which uuid.UUID reads the same way. Anything else (other
    # forms, bad ids) goes through uuid.UUID.
    if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        try:
            raw = bytes.fromhex(text.replace("-", ""))
        except ValueError:
            raw = b""
        if len(raw) == 16:
            return raw
    return uuid.UUID(text).bytes


def uuid_message(raw: bytes, structured: bool) -> shared_pb2.UUID:
    """A UUID message in the form the client asked for."""
    if structured:
        value = int.from_bytes(raw, "big")
        hi, lo = value >> 64, value & (2**64 - 1)
        signed = [(x - 2**64) if x >= 2**63 else x for x in (hi, lo)]
        return shared_pb2.UUID(
            structured=shared_pb2.UUID.Structured(
                most_significant_bits=signed[0], least_significant_bits=signed[1]
            )
        )
    return shared_pb2.UUID(string=str(uuid.UUID(bytes=raw)))


def proposed_event(
    msg: streams_pb2.AppendReq.ProposedMessage | streams_pb2.BatchAppendReq.ProposedMessage,
) -> tuple[ProposedEvent | None, str | None]:
    """The proposed event, or the name of its missing metadata key; ValueError for a bad id."""
    meta = msg.metadata
    type_ = meta.get("type")
    if type_ is None:
        return None, "type"
    content_type = meta.get("content-type")
    if content_type is None:
        return None, "content-type"
    event_id = uuid_bytes(msg.id)
    return ProposedEvent(event_id, type_, content_type == JSON, msg.custom_metadata, msg.data), None


def event_message(row: Row, structured: bool = False) -> streams_pb2.ReadResp:
    """A stored row as a ReadResp event."""
    pos, stream, rev, eid, type_, is_json, created, meta, data = row
    return ReadResp(
        event=ReadResp.ReadEvent(
            event=RecordedEvent(
                id=uuid_message(eid, structured),
                stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream.encode()),
                stream_revision=rev,
                prepare_position=pos,
                commit_position=pos,
                metadata={
                    "type": type_,
                    "created": str(created),
                    "content-type": JSON if is_json else OCTET,
                },
                custom_metadata=meta,
                data=data,
            ),
            commit_position=pos,
        )
    )


def checkpoint_message(position: int) -> streams_pb2.ReadResp:
    """A subscription checkpoint (commit == prepare)."""
    return ReadResp(
        checkpoint=ReadResp.Checkpoint(commit_position=position, prepare_position=position)
    )


def stream_not_found(name: str) -> streams_pb2.ReadResp:
    """The answer to a read of a stream with no events."""
    return ReadResp(
        stream_not_found=ReadResp.StreamNotFound(
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=name.encode())
        )
    )


def append_success(result: WriteResult) -> streams_pb2.AppendResp:
    """Append's answer to a committed (or idempotent) write."""
    success = streams_pb2.AppendResp.Success()
    if result.revision >= 0:
        success.current_revision = result.revision
    else:
        success.no_stream.SetInParent()
    if result.position > 0:
        success.position.commit_position = result.position
        success.position.prepare_position = result.position
    else:
        success.no_position.SetInParent()
    return streams_pb2.AppendResp(success=success)


def append_wrong_expected_version(current: int, expected: int) -> streams_pb2.AppendResp:
    """Append's in-band answer when the expectation fails (with the 20.6.0 fields too)."""
    wev = streams_pb2.AppendResp.WrongExpectedVersion()
    if current < 0:
        wev.current_no_stream.SetInParent()
        wev.no_stream_20_6_0.SetInParent()
    else:
        wev.current_revision = current
        wev.current_revision_20_6_0 = current
    if expected == rules.ANY:
        wev.expected_any.SetInParent()
        wev.any_20_6_0.SetInParent()
    elif expected == rules.STREAM_EXISTS:
        wev.expected_stream_exists.SetInParent()
        wev.stream_exists_20_6_0.SetInParent()
    elif expected == rules.NO_STREAM:
        wev.expected_no_stream.SetInParent()
        wev.expected_revision_20_6_0 = UINT64_MAX
    else:
        wev.expected_revision = expected
        wev.expected_revision_20_6_0 = expected
    return streams_pb2.AppendResp(wrong_expected_version=wev)


def batch_success(
    resp: streams_pb2.BatchAppendResp, result: WriteResult
) -> streams_pb2.BatchAppendResp:
    """Fill BatchAppend's answer to a committed (or idempotent) write."""
    if result.revision >= 0:
        resp.success.current_revision = result.revision
    else:
        resp.success.no_stream.SetInParent()
    if result.position > 0:
        resp.success.position.commit_position = result.position
        resp.success.position.prepare_position = result.position
    else:
        resp.success.no_position.SetInParent()
    return resp


def batch_wrong_expected_version(current: int, expected: int) -> shared_pb2.WrongExpectedVersion:
    """The error details of a BatchAppend whose expectation fails."""
    details = shared_pb2.WrongExpectedVersion()
    if current < 0:
        details.current_no_stream.SetInParent()
    else:
        details.current_stream_revision = current
    if expected == rules.ANY:
        details.expected_any.SetInParent()
    elif expected == rules.STREAM_EXISTS:
        details.expected_stream_exists.SetInParent()
    elif expected == rules.NO_STREAM:
        details.expected_no_stream.SetInParent()
    else:
        details.expected_stream_position = expected
    return details


def batch_error(
    resp: streams_pb2.BatchAppendResp, code: grpc.StatusCode, message: str, details: Message
) -> streams_pb2.BatchAppendResp:
    """Fill BatchAppend's in-band error: a status whose packed details the client matches."""
    resp.error.CopyFrom(
        status_pb2.Status(code=code.value[0], message=message, details=pack(details))
    )
    return resp


def pack(message: Message) -> any_pb2.Any:
    """Pack in-band error details so that the client's `details.Is(...)` matches."""
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def metadata_value(text: str) -> str:
    """gRPC metadata values are printable ASCII: percent-encode anything else (names can be
    any UTF-8); the client matches on the status details, which keep the name as it is."""
    return urllib.parse.quote(text, safe=" !\"#$&'()*+,-./:;<=>?@[]^_`{|}~")


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    """End the call with a status (grpc.aio's abort always raises)."""
    await context.abort(code, details)
    raise AssertionError("grpc.aio's ServicerContext.abort returned")


async def abort_deleted(context: grpc.aio.ServicerContext, name: str) -> NoReturn:
    """End the call with EventStoreDB's stream-deleted error."""
    context.set_trailing_metadata(
        (("exception", "stream-deleted"), ("stream-name", metadata_value(name)))
    )
    await abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"Event stream '{name}' is deleted.")


async def check_deadline(context: grpc.aio.ServicerContext) -> None:
    """End the call if its deadline has already passed."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        await abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")


def call_deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline on the time.monotonic() clock, None when it has none."""
    remaining = context.time_remaining()
    return time.monotonic() + remaining if remaining is not None else None
