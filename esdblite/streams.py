"""The Streams service: Append, BatchAppend, Delete and Tombstone write; Read dispatches reads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import regex
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc

from esdblite.cluster import Leadership
from esdblite.filters import FilterTooExpensive, build_filter
from esdblite.messages import (
    abort,
    abort_deleted,
    append_success,
    append_wrong_expected_version,
    batch_error,
    batch_success,
    batch_wrong_expected_version,
    call_deadline,
    check_deadline,
    expected_revision,
    metadata_value,
    proposed_event,
)
from esdblite.reads import Notifier, Reads
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

NO_DEADLINE_SECONDS = 315576000000
INVALID = grpc.StatusCode.INVALID_ARGUMENT
EMPTY_NAME = "Stream name must not be empty."
# Batches of one BatchAppend call being committed at once; the call reads no further until one
# is answered (back-pressure on a client that sends faster than the store commits).
MAX_BATCHES_IN_FLIGHT = 1024


@dataclass
class PendingBatch:
    """A BatchAppend batch being received: its options, its events so far, its first refusal."""

    correlation_id: shared_pb2.UUID
    options: streams_pb2.BatchAppendReq.Options | None = None
    events: list[ProposedEvent] = field(default_factory=list)
    error: str | None = None  # a bad request, answered once the batch is final
    too_large: bool = False
    deadline: float | None = None
    size: int = 0


class _Resigned(Exception):
    """The node resigned while a BatchAppend call was open."""


def batch_answer(
    resp: streams_pb2.BatchAppendResp,
    expected: int,
    future: concurrent.futures.Future[WriteResult],
) -> streams_pb2.BatchAppendResp:
    """Fill a batch's answer from its settled write: success, or the in-band refusal."""
    try:
        result = future.result(timeout=0)
    except WrongExpectedVersion as exc:
        return batch_error(
            resp,
            grpc.StatusCode.ALREADY_EXISTS,
            "WrongExpectedVersion",
            batch_wrong_expected_version(exc.current, expected),
        )
    except StreamDeleted:
        return batch_error(
            resp,
            grpc.StatusCode.NOT_FOUND,
            "StreamDeleted",
            shared_pb2.StreamDeleted(stream_identifier=resp.stream_identifier),
        )
    except DeadlineExpired:
        return batch_error(resp, grpc.StatusCode.DEADLINE_EXCEEDED, "Timeout", shared_pb2.Timeout())
    except StoreFailure:
        return batch_error(resp, grpc.StatusCode.UNKNOWN, "Unknown", shared_pb2.Unknown())
    return batch_success(resp, result)


class _InFlight:
    """The writes of one BatchAppend call not yet answered. Each answer is queued by its
    future's callback on the loop's thread (the store's writer settles a whole group there
    with one wake-up of the loop); a future settled on another thread is handed over."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        answers: asyncio.Queue[streams_pb2.BatchAppendResp | None],
    ) -> None:
        self.loop = loop
        self.thread = threading.get_ident()
        self.answers = answers
        self.futures: set[concurrent.futures.Future[WriteResult]] = set()
        self.waiter: asyncio.Future[None] | None = None
        self.limit = 0

    def __len__(self) -> int:
        return len(self.futures)

    def submit(
        self,
        future: concurrent.futures.Future[WriteResult],
        resp: streams_pb2.BatchAppendResp,
        expected: int,
    ) -> None:
        """Answer `resp` once the write's future is settled."""

        def settled(done: concurrent.futures.Future[WriteResult]) -> None:
            if threading.get_ident() == self.thread:
                self.answer(done, resp, expected)
            else:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                    self.loop.call_soon_threadsafe(self.answer, done, resp, expected)

        self.futures.add(future)
        future.add_done_callback(settled)

    def answer(
        self,
        future: concurrent.futures.Future[WriteResult],
        resp: streams_pb2.BatchAppendResp,
        expected: int,
    ) -> None:
        """Queue the answer of a settled write (on the loop's thread)."""
        self.futures.discard(future)
        if not future.cancelled():
            self.answers.put_nowait(batch_answer(resp, expected, future))
        waiter = self.waiter
        if waiter is not None and len(self.futures) < self.limit and not waiter.done():
            waiter.set_result(None)

    async def below(self, limit: int) -> None:
        """Wait until fewer than `limit` writes are unanswered."""
        while len(self.futures) >= limit:
            self.limit = limit
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    def cancel(self) -> None:
        """The call is over: its unanswered writes will not be answered."""
        for future in list(self.futures):
            future.cancel()
        self.futures.clear()


class StreamsService(streams_pb2_grpc.StreamsServicer):
    """Streams.Append, BatchAppend, Read, Delete and Tombstone."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        max_append_size: int,
        leadership: Leadership | None = None,
    ) -> None:
        self.store = store
        self.reads = Reads(store, notifier)
        self.max_append_size = max_append_size
        self.leadership = leadership

    async def _check_leader(self, context: grpc.aio.ServicerContext) -> None:
        """End a write call with NotLeader when the node has (been made to) resign."""
        if self.leadership is not None and self.leadership.resigned(context):
            await self.leadership.abort_not_leader(context)

    async def _write(self, request: WriteRequest) -> WriteResult:
        # The store's writer settles requests of this loop on its thread (one wake-up of the
        # loop per group commit, not one per write), so the answer is copied across directly;
        # a future settled on another thread is copied across thread-safely.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[WriteResult] = loop.create_future()

        def copy(future: concurrent.futures.Future[WriteResult]) -> None:
            if waiter.done():
                return
            if future.cancelled():
                waiter.cancel()
            elif (exc := future.exception()) is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(future.result())

        def done(future: concurrent.futures.Future[WriteResult]) -> None:
            try:
                here = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is loop:
                copy(future)
            else:
                loop.call_soon_threadsafe(copy, future)

        request.loop = loop
        future = self.store.write(request)
        future.add_done_callback(done)
        try:
            return await waiter
        except asyncio.CancelledError:
            future.cancel()  # the caller is gone: the writer will not answer it
            raise

    async def Append(
        self,
        request_iterator: AsyncIterator[streams_pb2.AppendReq],
        context: grpc.aio.ServicerContext,
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
        self,
        request_iterator: AsyncIterator[streams_pb2.AppendReq],
        context: grpc.aio.ServicerContext,
    ) -> streams_pb2.AppendResp:
        options: streams_pb2.AppendReq.Options | None = None
        events: list[ProposedEvent] = []
        size = 0
        async for req in request_iterator:
            which = req.WhichOneof("content")
            if options is None:
                if which != "options":
                    await abort(context, INVALID, "The first message must carry options.")
                options = req.options
                continue
            if which != "proposed_message":
                await abort(context, INVALID, "Options may be sent only once.")
            try:
                event, missing = proposed_event(req.proposed_message)
            except ValueError:
                await abort(context, INVALID, "Invalid event id.")
            if missing is not None or event is None:
                context.set_trailing_metadata(
                    (
                        ("exception", "missing-required-metadata-property"),
                        ("required-metadata-properties", "type,content-type"),
                    )
                )
                await abort(context, INVALID, f"Required Metadata Property '{missing}' is missing")
            size += len(event.data) + len(event.metadata) + len(event.type.encode())
            if size > self.max_append_size:
                context.set_trailing_metadata(
                    (
                        ("exception", "maximum-append-size-exceeded"),
                        ("maximum-append-size", str(self.max_append_size)),
                    )
                )
                await abort(
                    context, INVALID, f"Maximum Append Size of {self.max_append_size} Exceeded."
                )
            events.append(event)
        if options is None:
            await abort(context, INVALID, "Missing append options.")
        name = options.stream_identifier.stream_name.decode("utf-8", "replace")
        if not name:
            await abort(context, INVALID, EMPTY_NAME)
        expected = expected_revision(
            options.WhichOneof("expected_stream_revision"), options.revision
        )
        await check_deadline(context)
        await self._check_leader(context)
        deadline = call_deadline(context)
        try:
            result = await self._write(WriteRequest("append", name, expected, events, deadline))
        except WrongExpectedVersion as exc:
            return append_wrong_expected_version(exc.current, expected)
        except StreamDeleted:
            await abort_deleted(context, name)
        except DeadlineExpired:
            await abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        except StoreFailure as exc:
            await abort(context, grpc.StatusCode.INTERNAL, f"Storage failure: {exc}")
        return append_success(result)

    async def BatchAppend(
        self,
        request_iterator: AsyncIterator[streams_pb2.BatchAppendReq],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[streams_pb2.BatchAppendResp]:
        # One call may carry many appends (§8.4): each final batch is committed in its own task,
        # so later batches join the same group commit, and each is answered once it is durable,
        # in whatever order that happens. The call ends once the client half-closed and every
        # batch has been answered.
        answers: asyncio.Queue[streams_pb2.BatchAppendResp | None] = asyncio.Queue()
        receiving = asyncio.create_task(self._receive_batches(request_iterator, context, answers))
        try:
            while (answer := await answers.get()) is not None:
                yield answer
            await receiving
        except _Resigned:
            # As EventStoreDB: the call ends with NotLeader; its batches not yet answered are
            # the client's to send again (to the leader, with the same event ids).
            assert self.leadership is not None
            await self.leadership.abort_not_leader(context)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("BatchAppend failed")
            await context.abort(grpc.StatusCode.INTERNAL, "Internal error")
        finally:
            receiving.cancel()

    async def _receive_batches(
        self,
        request_iterator: AsyncIterator[streams_pb2.BatchAppendReq],
        context: grpc.aio.ServicerContext,
        answers: asyncio.Queue[streams_pb2.BatchAppendResp | None],
    ) -> None:
        batches: dict[bytes, PendingBatch] = {}
        # Each final batch goes to the store as it arrives, so appends reach the writer in the
        # order the client sent them; its answer is queued from the future's callback, with no
        # task or loop future of its own.
        in_flight = _InFlight(asyncio.get_running_loop(), answers)
        try:
            async for req in request_iterator:
                key = req.correlation_id.SerializeToString()
                batch = batches.get(key)
                if batch is None:
                    batch = batches[key] = PendingBatch(req.correlation_id)
                    if not req.HasField("options") or not req.options.HasField("stream_identifier"):
                        batch.error = "Missing stream identifier."
                    else:
                        batch.options = req.options
                        batch.deadline = self._batch_deadline(req.options, context)
                if batch.error is None and not batch.too_large:
                    self._accumulate(batch, req)
                if req.is_final:
                    del batches[key]
                    if self.leadership is not None and self.leadership.resigned(context):
                        raise _Resigned
                    resp, request = self._batch_request(batch)
                    if request is None:
                        answers.put_nowait(resp)
                        continue
                    request.loop = in_flight.loop  # settled on this loop, one wake-up per group
                    in_flight.submit(self.store.write(request), resp, request.expected)
                    if len(in_flight) >= MAX_BATCHES_IN_FLIGHT:
                        await in_flight.below(MAX_BATCHES_IN_FLIGHT)
            await in_flight.below(1)
        finally:
            in_flight.cancel()
            answers.put_nowait(None)

    @staticmethod
    def _batch_deadline(
        options: streams_pb2.BatchAppendReq.Options, context: grpc.aio.ServicerContext
    ) -> float | None:
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

    def _accumulate(self, batch: PendingBatch, req: streams_pb2.BatchAppendReq) -> None:
        for msg in req.proposed_messages:
            try:
                event, missing = proposed_event(msg)
            except ValueError:
                batch.error = "Invalid event id."
                return
            if missing is not None or event is None:
                batch.error = f"Required Metadata Property '{missing}' is missing"
                return
            batch.size += len(event.data) + len(event.metadata) + len(event.type.encode())
            if batch.size > self.max_append_size:
                batch.too_large = True
                batch.events = []
                return
            batch.events.append(event)

    def _batch_request(
        self, batch: PendingBatch
    ) -> tuple[streams_pb2.BatchAppendResp, WriteRequest | None]:
        """A final batch's answer so far and its write; no write when the answer is a refusal."""
        resp = streams_pb2.BatchAppendResp(correlation_id=batch.correlation_id)
        options = batch.options
        if options is not None:
            resp.stream_identifier.CopyFrom(options.stream_identifier)
        if batch.too_large:
            return batch_error(
                resp,
                INVALID,
                "Maximum Append Size Exceeded",
                shared_pb2.MaximumAppendSizeExceeded(maxAppendSize=self.max_append_size),
            ), None
        if batch.error is not None:
            return batch_error(
                resp, INVALID, batch.error, shared_pb2.BadRequest(message=batch.error)
            ), None
        assert options is not None  # a batch without options carries an error
        name = options.stream_identifier.stream_name.decode("utf-8", "replace")
        if not name:
            return batch_error(
                resp, INVALID, EMPTY_NAME, shared_pb2.BadRequest(message=EMPTY_NAME)
            ), None
        which = options.WhichOneof("expected_stream_position")
        expected = expected_revision(which, options.stream_position)
        if which == "stream_position":
            resp.stream_position = options.stream_position
        elif which is not None:
            getattr(resp, which).SetInParent()
        deadline = batch.deadline
        if deadline is not None and time.monotonic() >= deadline:
            return batch_error(
                resp, grpc.StatusCode.DEADLINE_EXCEEDED, "Timeout", shared_pb2.Timeout()
            ), None
        return resp, WriteRequest("append", name, expected, batch.events, deadline)

    async def Delete(
        self, request: streams_pb2.DeleteReq, context: grpc.aio.ServicerContext
    ) -> streams_pb2.DeleteResp:
        position = await self._delete("delete", request.options, context)
        return streams_pb2.DeleteResp(
            position=streams_pb2.DeleteResp.Position(
                commit_position=position, prepare_position=position
            )
        )

    async def Tombstone(
        self, request: streams_pb2.TombstoneReq, context: grpc.aio.ServicerContext
    ) -> streams_pb2.TombstoneResp:
        position = await self._delete("tombstone", request.options, context)
        return streams_pb2.TombstoneResp(
            position=streams_pb2.TombstoneResp.Position(
                commit_position=position, prepare_position=position
            )
        )

    async def _delete(
        self,
        kind: str,
        options: streams_pb2.DeleteReq.Options | streams_pb2.TombstoneReq.Options,
        context: grpc.aio.ServicerContext,
    ) -> int:
        name = options.stream_identifier.stream_name.decode("utf-8", "replace")
        if not name:
            await abort(context, INVALID, EMPTY_NAME)
        expected = expected_revision(
            options.WhichOneof("expected_stream_revision"), options.revision
        )
        await check_deadline(context)
        await self._check_leader(context)
        deadline = call_deadline(context)
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
            await abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Delete failed due to WrongExpectedVersion. Stream: {name}, "
                f"Expected version: {expected}, Actual version: {exc.current}",
            )
        except StreamDeleted:
            await abort_deleted(context, name)
        except DeadlineExpired:
            await abort(context, grpc.StatusCode.ABORTED, "Operation timed out: Deadline Exceeded")
        except StoreFailure as exc:
            await abort(context, grpc.StatusCode.INTERNAL, f"Storage failure: {exc}")
        return result.position

    async def Read(
        self, request: streams_pb2.ReadReq, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        options = request.options
        try:
            try:
                flt = build_filter(options)
            except (regex.error, ValueError) as exc:
                await abort(context, INVALID, f"Invalid filter: {exc}")
            structured = options.uuid_option.WhichOneof("content") == "structured"
            subscription = options.WhichOneof("count_option") == "subscription"
            if options.WhichOneof("stream_option") == "stream":
                name = options.stream.stream_identifier.stream_name.decode("utf-8", "replace")
                if not name:
                    await abort(context, INVALID, EMPTY_NAME)
                gen = (
                    self.reads.subscribe_stream(name, options, context, structured)
                    if subscription
                    else self.reads.read_stream(name, options, context, structured)
                )
            elif subscription:
                gen = self.reads.subscribe_all(options, flt, context, structured)
            else:
                gen = self.reads.read_all(options, flt, context, structured)
            async for message in gen:
                yield message
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except FilterTooExpensive as exc:
            await context.abort(INVALID, str(exc))
        except Exception:
            log.exception("Read failed")
            await context.abort(grpc.StatusCode.INTERNAL, "Internal error")
