"""The gRPC services (Streams, Gossip, PersistentSubscriptions.List) on grpc.aio over the store."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import regex
from esdbclient.protos.Grpc import (
    gossip_pb2,
    gossip_pb2_grpc,
    persistent_pb2,
    persistent_pb2_grpc,
    shared_pb2,
    status_pb2,
    streams_pb2,
    streams_pb2_grpc,
)
from google.protobuf import any_pb2

from esdblite import rules
from esdblite.index import metastream_target
from esdblite.rules import DELETED
from esdblite.store import Store
from esdblite.writer import (
    DeadlineExpired,
    ProposedEvent,
    StoreFailure,
    StreamDeleted,
    WriteRequest,
    WriteResult,
    WrongExpectedVersion,
)

log = logging.getLogger("esdblite.server")

T = TypeVar("T")
ReadResp = streams_pb2.ReadResp
RecordedEvent = ReadResp.ReadEvent.RecordedEvent
PAGE = 500
NO_DEADLINE_SECONDS = 315576000000
UINT64_MAX = 2**64 - 1
JSON = "application/json"
OCTET = "application/octet-stream"


class Notifier:
    """Wakes subscriptions after each durable commit (notify-then-pull: no per-subscriber queue)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def publish_threadsafe(self, _position: int) -> None:
        self.loop.call_soon_threadsafe(self._publish)

    def _publish(self) -> None:
        fut, self.future = self.future, self.loop.create_future()
        if not fut.done():
            fut.set_result(None)


# A client's filter regex runs on the server's event loop; one match may take at most this long,
# so a catastrophic pattern (`(a|aa)+$`) costs its own subscription an error, not everyone a stall.
REGEX_BUDGET_SECONDS = 0.05
# Results are remembered per filter: names and types repeat, and a repeat costs one dict lookup.
MEMO_LIMIT = 65536


class FilterTooExpensive(Exception):
    """A filter regex exceeded its matching budget on one name."""


@functools.lru_cache(maxsize=256)
def compile_regex(pattern: str) -> regex.Pattern[str]:
    """Compile a client regex (the `regex` module reads .NET's `(?<name>...)`); search semantics."""
    return regex.compile(pattern)


def regex_matcher(pattern: str) -> Callable[[str], bool]:
    """A memoised, time-bounded search for one filter; raises FilterTooExpensive on a runaway."""
    search = compile_regex(pattern).search
    memo: dict[str, bool] = {}

    def matches(name: str) -> bool:
        hit = memo.get(name)
        if hit is None:
            try:
                hit = search(name, timeout=REGEX_BUDGET_SECONDS) is not None
            except TimeoutError:
                raise FilterTooExpensive(
                    f"Invalid filter: regex {pattern!r} took over "
                    f"{REGEX_BUDGET_SECONDS * 1000:.0f} ms on {name!r}"
                ) from None
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            memo[name] = hit
        return hit

    return matches


@dataclass(frozen=True)
class Filter:
    """A server-side $all filter on the stream name or the event type."""

    on_stream: bool
    matches: Callable[[str], bool]


def build_filter(options: Any) -> Filter | None:
    """The filter of a read or subscription, or None; raises regex.error for a bad regex."""
    if options.WhichOneof("filter_option") != "filter":
        return None
    f = options.filter
    which = f.WhichOneof("filter")
    expr = f.stream_identifier if which == "stream_identifier" else f.event_type
    if expr.regex:
        return Filter(which == "stream_identifier", regex_matcher(expr.regex))
    prefixes = tuple(expr.prefix)
    if prefixes:
        return Filter(which == "stream_identifier", lambda s: s.startswith(prefixes))
    return Filter(which == "stream_identifier", lambda s: True)


def expected_revision(which: str | None, revision: int) -> int:
    """The int64 form of an expectation: exact, NO_STREAM -1, ANY -2, STREAM_EXISTS -4."""
    return {
        "no_stream": rules.NO_STREAM,
        "any": rules.ANY,
        "stream_exists": rules.STREAM_EXISTS,
    }.get(which or "any", revision)


def uuid_bytes(msg: Any) -> bytes:
    """Parse a UUID message (string or structured) into 16 bytes; ValueError when malformed."""
    if msg.WhichOneof("value") == "structured":
        hi = msg.structured.most_significant_bits & (2**64 - 1)
        lo = msg.structured.least_significant_bits & (2**64 - 1)
        return ((hi << 64) | lo).to_bytes(16, "big")
    return uuid.UUID(msg.string).bytes


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


def event_message(row: tuple[Any, ...], structured: bool = False) -> streams_pb2.ReadResp:
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


def metadata_value(text: str) -> str:
    """gRPC metadata values are printable ASCII: percent-encode anything else (names can be
    any UTF-8); the client matches on the status details, which keep the name as it is."""
    return urllib.parse.quote(text, safe=" !\"#$&'()*+,-./:;<=>?@[]^_`{|}~")


def pack(message: Any) -> any_pb2.Any:
    """Pack in-band error details so that the client's `details.Is(...)` matches."""
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


class StreamsService(streams_pb2_grpc.StreamsServicer):  # type: ignore[misc]
    """Streams.Append, BatchAppend, Read, Delete and Tombstone."""

    def __init__(self, store: Store, notifier: Notifier, max_append_size: int) -> None:
        self.store = store
        self.notifier = notifier
        self.max_append_size = max_append_size
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="esdblite-read")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def _write(self, request: WriteRequest) -> WriteResult:
        return await asyncio.wrap_future(self.store.write(request))

    # ----- shared error answers

    @staticmethod
    async def _abort_deleted(context: grpc.aio.ServicerContext, name: str) -> None:
        context.set_trailing_metadata(
            (("exception", "stream-deleted"), ("stream-name", metadata_value(name)))
        )
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION, f"Event stream '{name}' is deleted."
        )

    @staticmethod
    async def _check_deadline(context: grpc.aio.ServicerContext) -> None:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    def _proposed(self, msg: Any) -> tuple[ProposedEvent | None, str | None]:
        meta = msg.metadata
        for key in ("type", "content-type"):
            if key not in meta:
                return None, key
        event_id = uuid_bytes(msg.id)
        return (
            ProposedEvent(
                event_id, meta["type"], meta["content-type"] == JSON, msg.custom_metadata, msg.data
            ),
            None,
        )

    # ----- Append

    async def Append(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> streams_pb2.AppendResp:
        try:
            return await self._append(request_iterator, context)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("Append failed")
            await context.abort(grpc.StatusCode.INTERNAL, "Internal error")
            raise

    async def _append(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> streams_pb2.AppendResp:
        options = None
        events: list[ProposedEvent] = []
        size = 0
        async for req in request_iterator:
            which = req.WhichOneof("content")
            if options is None:
                if which != "options":
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT, "The first message must carry options."
                    )
                options = req.options
                continue
            if which != "proposed_message":
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "Options may be sent only once."
                )
            try:
                event, missing = self._proposed(req.proposed_message)
            except ValueError:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Invalid event id.")
            if missing is not None or event is None:
                context.set_trailing_metadata(
                    (
                        ("exception", "missing-required-metadata-property"),
                        ("required-metadata-properties", "type,content-type"),
                    )
                )
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Required Metadata Property '{missing}' is missing",
                )
            size += len(event.data) + len(event.metadata) + len(event.type.encode())
            if size > self.max_append_size:
                context.set_trailing_metadata(
                    (
                        ("exception", "maximum-append-size-exceeded"),
                        ("maximum-append-size", str(self.max_append_size)),
                    )
                )
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Maximum Append Size of {self.max_append_size} Exceeded.",
                )
            events.append(event)
        if options is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Missing append options.")
        name = options.stream_identifier.stream_name.decode("utf-8", "replace")
        if not name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Stream name must not be empty.")
        which = options.WhichOneof("expected_stream_revision")
        expected = expected_revision(which, options.revision)
        await self._check_deadline(context)
        remaining = context.time_remaining()
        deadline = time.monotonic() + remaining if remaining is not None else None
        try:
            result = await self._write(WriteRequest("append", name, expected, events, deadline))
        except WrongExpectedVersion as exc:
            return self._append_wev(exc.current, expected)
        except StreamDeleted:
            await self._abort_deleted(context, name)
        except DeadlineExpired:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        except StoreFailure as exc:
            await context.abort(grpc.StatusCode.INTERNAL, f"Storage failure: {exc}")
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

    @staticmethod
    def _append_wev(current: int, expected: int) -> streams_pb2.AppendResp:
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

    # ----- BatchAppend

    async def BatchAppend(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[streams_pb2.BatchAppendResp]:
        batches: dict[bytes, dict[str, Any]] = {}
        try:
            async for req in request_iterator:
                key = req.correlation_id.SerializeToString()
                batch = batches.get(key)
                if batch is None:
                    batch = {
                        "cid": req.correlation_id,
                        "options": None,
                        "events": [],
                        "error": None,
                    }
                    batches[key] = batch
                    if not req.HasField("options") or not req.options.HasField("stream_identifier"):
                        batch["error"] = ("bad", "Missing stream identifier.")
                    else:
                        batch["options"] = req.options
                        batch["deadline"] = self._batch_deadline(req.options, context)
                if batch["error"] is None:
                    self._accumulate(batch, req)
                if req.is_final:
                    del batches[key]
                    yield await self._commit_batch(batch, context)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("BatchAppend failed")
            await context.abort(grpc.StatusCode.INTERNAL, "Internal error")

    @staticmethod
    def _batch_deadline(options: Any, context: grpc.aio.ServicerContext) -> float | None:
        now = time.monotonic()
        deadlines = []
        which = options.WhichOneof("deadline_option")
        if which == "deadline":
            d = options.deadline
            if d.seconds < NO_DEADLINE_SECONDS:
                deadlines.append(now + d.seconds + d.nanos / 1e9)
        elif which == "deadline_21_10_0":
            try:
                absolute = options.deadline_21_10_0.ToNanoseconds() / 1e9
            except (ValueError, OverflowError):
                absolute = 0.0  # out of range: treated as already expired
            deadlines.append(now + (absolute - time.time()))
        remaining = context.time_remaining()
        if remaining is not None:
            deadlines.append(now + remaining)
        return min(deadlines) if deadlines else None

    def _accumulate(self, batch: dict[str, Any], req: Any) -> None:
        for msg in req.proposed_messages:
            try:
                event, missing = self._proposed(msg)
            except ValueError:
                batch["error"] = ("bad", "Invalid event id.")
                return
            if missing is not None or event is None:
                batch["error"] = ("bad", f"Required Metadata Property '{missing}' is missing")
                return
            batch["size"] = batch.get("size", 0) + (
                len(event.data) + len(event.metadata) + len(event.type.encode())
            )
            if batch["size"] > self.max_append_size:
                batch["error"] = ("size", None)
                batch["events"] = []
                return
            batch["events"].append(event)

    async def _commit_batch(
        self, batch: dict[str, Any], context: grpc.aio.ServicerContext
    ) -> streams_pb2.BatchAppendResp:
        resp = streams_pb2.BatchAppendResp(correlation_id=batch["cid"])
        options = batch["options"]
        if options is not None:
            resp.stream_identifier.CopyFrom(options.stream_identifier)
        error = batch["error"]
        if error is not None:
            if error[0] == "size":
                return self._batch_error(
                    resp,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "Maximum Append Size Exceeded",
                    shared_pb2.MaximumAppendSizeExceeded(maxAppendSize=self.max_append_size),
                )
            return self._batch_error(
                resp,
                grpc.StatusCode.INVALID_ARGUMENT,
                error[1],
                shared_pb2.BadRequest(message=error[1]),
            )
        name = options.stream_identifier.stream_name.decode("utf-8", "replace")
        if not name:
            return self._batch_error(
                resp,
                grpc.StatusCode.INVALID_ARGUMENT,
                "Stream name must not be empty.",
                shared_pb2.BadRequest(message="Stream name must not be empty."),
            )
        which = options.WhichOneof("expected_stream_position")
        expected = expected_revision(which, options.stream_position)
        if which == "stream_position":
            resp.stream_position = options.stream_position
        elif which is not None:
            getattr(resp, which).SetInParent()
        deadline = batch.get("deadline")
        if deadline is not None and time.monotonic() >= deadline:
            return self._batch_error(
                resp, grpc.StatusCode.DEADLINE_EXCEEDED, "Timeout", shared_pb2.Timeout()
            )
        try:
            result = await self._write(
                WriteRequest("append", name, expected, batch["events"], deadline)
            )
        except WrongExpectedVersion as exc:
            details = shared_pb2.WrongExpectedVersion()
            if exc.current < 0:
                details.current_no_stream.SetInParent()
            else:
                details.current_stream_revision = exc.current
            if expected == rules.ANY:
                details.expected_any.SetInParent()
            elif expected == rules.STREAM_EXISTS:
                details.expected_stream_exists.SetInParent()
            elif expected == rules.NO_STREAM:
                details.expected_no_stream.SetInParent()
            else:
                details.expected_stream_position = expected
            return self._batch_error(
                resp, grpc.StatusCode.ALREADY_EXISTS, "WrongExpectedVersion", details
            )
        except StreamDeleted:
            return self._batch_error(
                resp,
                grpc.StatusCode.NOT_FOUND,
                "StreamDeleted",
                shared_pb2.StreamDeleted(stream_identifier=options.stream_identifier),
            )
        except DeadlineExpired:
            return self._batch_error(
                resp, grpc.StatusCode.DEADLINE_EXCEEDED, "Timeout", shared_pb2.Timeout()
            )
        except StoreFailure:
            return self._batch_error(resp, grpc.StatusCode.UNKNOWN, "Unknown", shared_pb2.Unknown())
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

    @staticmethod
    def _batch_error(
        resp: streams_pb2.BatchAppendResp, code: grpc.StatusCode, message: str, details: Any
    ) -> streams_pb2.BatchAppendResp:
        resp.error.CopyFrom(
            status_pb2.Status(code=code.value[0], message=message, details=pack(details))
        )
        return resp

    # ----- Delete and Tombstone

    async def Delete(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> streams_pb2.DeleteResp:
        position = await self._delete("delete", request.options, context)
        return streams_pb2.DeleteResp(
            position=streams_pb2.DeleteResp.Position(
                commit_position=position, prepare_position=position
            )
        )

    async def Tombstone(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> streams_pb2.TombstoneResp:
        position = await self._delete("tombstone", request.options, context)
        return streams_pb2.TombstoneResp(
            position=streams_pb2.TombstoneResp.Position(
                commit_position=position, prepare_position=position
            )
        )

    async def _delete(self, kind: str, options: Any, context: grpc.aio.ServicerContext) -> int:
        name = options.stream_identifier.stream_name.decode("utf-8", "replace")
        if not name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Stream name must not be empty.")
        expected = expected_revision(
            options.WhichOneof("expected_stream_revision"), options.revision
        )
        await self._check_deadline(context)
        remaining = context.time_remaining()
        deadline = time.monotonic() + remaining if remaining is not None else None
        try:
            result = await self._write(WriteRequest(kind, name, expected, (), deadline))
        except WrongExpectedVersion as exc:
            context.set_trailing_metadata(
                (
                    ("exception", "wrong-expected-version"),
                    ("stream-name", metadata_value(name)),
                    ("expected-version", str(expected)),
                    ("actual-version", str(exc.current)),
                )
            )
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Delete failed due to WrongExpectedVersion. Stream: {name}, "
                f"Expected version: {expected}, Actual version: {exc.current}",
            )
        except StreamDeleted:
            await self._abort_deleted(context, name)
        except DeadlineExpired:
            await context.abort(grpc.StatusCode.ABORTED, "Operation timed out: Deadline Exceeded")
        except StoreFailure as exc:
            await context.abort(grpc.StatusCode.INTERNAL, f"Storage failure: {exc}")
        return result.position

    # ----- Read: reads and catch-up subscriptions

    async def Read(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        options = request.options
        try:
            try:
                flt = build_filter(options)
            except (regex.error, ValueError) as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid filter: {exc}")
            structured = options.uuid_option.WhichOneof("content") == "structured"
            subscription = options.WhichOneof("count_option") == "subscription"
            if options.WhichOneof("stream_option") == "stream":
                name = options.stream.stream_identifier.stream_name.decode("utf-8", "replace")
                if not name:
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT, "Stream name must not be empty."
                    )
                gen = (
                    self._subscribe_stream(name, options, context, structured)
                    if subscription
                    else self._read_stream(name, options, context, structured)
                )
            elif subscription:
                gen = self._subscribe_all(options, flt, context, structured)
            else:
                gen = self._read_all(options, flt, context, structured)
            async for message in gen:
                yield message
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except FilterTooExpensive as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception:
            log.exception("Read failed")
            await context.abort(grpc.StatusCode.INTERNAL, "Internal error")

    async def _read_stream(
        self, name: str, options: Any, context: grpc.aio.ServicerContext, structured: bool
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        state = await self._run(self.store.stream_state, name)
        target = metastream_target(name)
        if state.tombstoned:
            await self._abort_deleted(context, name)
        if target is not None and (await self._run(self.store.stream_state, target)).tombstoned:
            await self._abort_deleted(context, name)
        if state.last_revision < 0 or state.soft_deleted:
            yield ReadResp(
                stream_not_found=ReadResp.StreamNotFound(
                    stream_identifier=shared_pb2.StreamIdentifier(stream_name=name.encode())
                )
            )
            return
        backwards = options.read_direction == 1
        which = options.stream.WhichOneof("revision_option")
        if which == "revision":
            start = options.stream.revision
        elif which == "end" or (which is None and backwards):
            start = DELETED - 1 if backwards else state.last_revision + 1
        else:
            start = 0
        remaining = options.count
        tb = state.truncate_before
        while remaining > 0:
            await self._check_deadline(context)
            page = min(PAGE, remaining)
            rows = await self._run(self.store.read_stream, name, start, backwards, page, tb)
            for row in rows:
                yield event_message(row, structured)
            remaining -= len(rows)
            if len(rows) < page:
                return
            start = rows[-1][2] - 1 if backwards else rows[-1][2] + 1

    async def _read_all(
        self,
        options: Any,
        flt: Filter | None,
        context: grpc.aio.ServicerContext,
        structured: bool,
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        backwards = options.read_direction == 1
        which = options.all.WhichOneof("all_option")
        if which == "position":
            position = options.all.position.commit_position
        elif which == "end" or (which is None and backwards):
            position = DELETED if backwards else self.store.last_committed + 1
        else:
            position = 0
        remaining = options.count
        while remaining > 0:
            await self._check_deadline(context)
            rows = await self._run(self.store.read_all, position, backwards, PAGE)
            for row in rows:
                if flt is None or flt.matches(row[1] if flt.on_stream else row[4]):
                    yield event_message(row, structured)
                    remaining -= 1
                    if remaining == 0:
                        return
            if len(rows) < PAGE:
                return
            position = rows[-1][0] if backwards else rows[-1][0] + 1

    async def _subscribe_all(
        self,
        options: Any,
        flt: Filter | None,
        context: grpc.aio.ServicerContext,
        structured: bool,
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        which = options.all.WhichOneof("all_option")
        if which == "position":
            after = options.all.position.commit_position
        elif which == "end":
            after = self.store.last_committed
        else:
            after = 0
        interval = 0
        if flt is not None:
            window = options.filter.max if options.filter.WhichOneof("window") == "max" else 1
            interval = max(window, 1) * max(options.filter.checkpointIntervalMultiplier, 1)
        yield ReadResp(
            confirmation=ReadResp.SubscriptionConfirmation(subscription_id=str(uuid.uuid4()))
        )
        counted = 0
        last_examined = 0
        last_checkpoint = 0
        caught_up = False
        while True:
            wake = self.notifier.future
            rows = await self._run(self.store.read_all, after, False, PAGE, False)
            for row in rows:
                position = row[0]
                if flt is None or flt.matches(row[1] if flt.on_stream else row[4]):
                    yield event_message(row, structured)
                if interval:
                    counted += 1
                    if counted >= interval:
                        yield checkpoint_message(position)
                        last_checkpoint = position
                        counted = 0
                last_examined = after = position
            if len(rows) < PAGE:
                if not caught_up:
                    if interval and last_examined and last_examined != last_checkpoint:
                        yield checkpoint_message(last_examined)
                        last_checkpoint = last_examined
                    yield ReadResp(caught_up=ReadResp.CaughtUp())
                    caught_up = True
                await asyncio.shield(wake)

    async def _subscribe_stream(
        self, name: str, options: Any, context: grpc.aio.ServicerContext, structured: bool
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        state = await self._run(self.store.stream_state, name)
        which = options.stream.WhichOneof("revision_option")
        if which == "revision":
            after = options.stream.revision
        elif which == "end":
            after = state.last_revision
        else:
            after = -1
        yield ReadResp(
            confirmation=ReadResp.SubscriptionConfirmation(subscription_id=str(uuid.uuid4()))
        )
        if state.tombstoned:
            await self._abort_deleted(context, name)
        hidden_before = state.truncate_before
        caught_up = False
        while True:
            wake = self.notifier.future
            rows = await self._run(self.store.read_stream_after, name, after, PAGE)
            for row in rows:
                after = row[2]
                if row[2] == DELETED:
                    yield event_message(row, structured)
                    await self._abort_deleted(context, name)
                if not caught_up and row[2] < hidden_before:
                    continue
                yield event_message(row, structured)
            if len(rows) < PAGE:
                if not caught_up:
                    yield ReadResp(caught_up=ReadResp.CaughtUp())
                    caught_up = True
                await asyncio.shield(wake)


class GossipService(gossip_pb2_grpc.GossipServicer):  # type: ignore[misc]
    """Gossip.Read: one alive Leader at the advertised address."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.instance_id = str(uuid.uuid4())

    async def Read(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return gossip_pb2.ClusterInfo(
            members=[
                gossip_pb2.MemberInfo(
                    instance_id=shared_pb2.UUID(string=self.instance_id),
                    time_stamp=time.time_ns() // 100,
                    state=gossip_pb2.MemberInfo.VNodeState.Leader,
                    is_alive=True,
                    http_end_point=gossip_pb2.EndPoint(address=self.host, port=self.port),
                )
            ]
        )


class PersistentSubscriptionsService(persistent_pb2_grpc.PersistentSubscriptionsServicer):  # type: ignore[misc]
    """PersistentSubscriptions.List answers with no subscriptions; the rest is UNIMPLEMENTED."""

    async def List(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return persistent_pb2.ListResp()


def add_services(
    server: grpc.aio.Server,
    store: Store,
    notifier: Notifier,
    gossip: GossipService,
    max_append_size: int,
) -> None:
    """Register every service on a grpc.aio server."""
    streams_pb2_grpc.add_StreamsServicer_to_server(
        StreamsService(store, notifier, max_append_size), server
    )
    gossip_pb2_grpc.add_GossipServicer_to_server(gossip, server)
    persistent_pb2_grpc.add_PersistentSubscriptionsServicer_to_server(
        PersistentSubscriptionsService(), server
    )
