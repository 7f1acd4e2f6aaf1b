"""Streams.Read's answers: stream and $all reads, and catch-up subscriptions woken on commit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, TypeVarTuple

import grpc
from esdbclient.protos.Grpc import streams_pb2

from esdblite.filters import Filter
from esdblite.index import metastream_target
from esdblite.messages import (
    ReadResp,
    abort,
    abort_deleted,
    check_deadline,
    checkpoint_message,
    event_message,
    stream_not_found,
)
from esdblite.retention import created_cutoff, floor
from esdblite.rules import DELETED
from esdblite.store import Store

Ts = TypeVarTuple("Ts")
T = TypeVar("T")
PAGE = 500
ReadOptions = streams_pb2.ReadReq.Options


class Notifier:
    """Wakes subscriptions after each durable commit (notify-then-pull: no per-subscriber queue)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def publish_threadsafe(self, _position: int) -> None:
        """Wake every waiting subscription; called on the store's writer thread."""
        self.loop.call_soon_threadsafe(self._publish)

    def _publish(self) -> None:
        fut, self.future = self.future, self.loop.create_future()
        if not fut.done():
            fut.set_result(None)


def confirmation() -> streams_pb2.ReadResp:
    """A subscription's first message."""
    return ReadResp(
        confirmation=ReadResp.SubscriptionConfirmation(subscription_id=str(uuid.uuid4()))
    )


class Reads:
    """Pages of committed records, read on a small thread pool off the event loop."""

    def __init__(self, store: Store, notifier: Notifier) -> None:
        self.store = store
        self.notifier = notifier
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="esdblite-read")

    async def _run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def read_stream(
        self,
        name: str,
        options: ReadOptions,
        context: grpc.aio.ServicerContext,
        structured: bool,
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        """A stream's events, forwards or backwards, from a revision."""
        state = await self._run(self.store.stream_state, name)
        target = metastream_target(name)
        if state.tombstoned:
            await abort_deleted(context, name)
        if target is not None and (await self._run(self.store.stream_state, target)).tombstoned:
            await abort_deleted(context, name)
        if state.last_revision < 0 or state.soft_deleted:
            yield stream_not_found(name)
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
        lowest, oldest = floor(name, state), created_cutoff(state)
        while remaining > 0:
            await check_deadline(context)
            page = min(PAGE, remaining)
            rows = await self._run(
                self.store.read_stream, name, start, backwards, page, lowest, oldest
            )
            for row in rows:
                yield event_message(row, structured)
            remaining -= len(rows)
            if len(rows) < page:
                return
            start = rows[-1][2] - 1 if backwards else rows[-1][2] + 1

    async def read_all(
        self,
        options: ReadOptions,
        flt: Filter | None,
        context: grpc.aio.ServicerContext,
        structured: bool,
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        """$all's records, forwards or backwards, from a position, through the filter."""
        backwards = options.read_direction == 1
        which = options.all.WhichOneof("all_option")
        if which == "position":
            position = options.all.position.commit_position
            if not await self._run(self.store.is_boundary, position):
                # EventStoreDB's read enumerators answer an InvalidPosition result this way.
                result = "FilteredReadAllResult" if flt is not None else "ReadAllResult"
                await abort(
                    context, grpc.StatusCode.UNKNOWN, f"Unexpected {result}: InvalidPosition"
                )
        elif which == "end" or (which is None and backwards):
            position = DELETED if backwards else self.store.last_committed + 1
        else:
            position = 0
        remaining = options.count
        while remaining > 0:
            await check_deadline(context)
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

    async def subscribe_all(
        self,
        options: ReadOptions,
        flt: Filter | None,
        context: grpc.aio.ServicerContext,
        structured: bool,
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        """Catch up on $all, then follow each commit; filtered ones get checkpoints."""
        which = options.all.WhichOneof("all_option")
        if which == "position":
            after = options.all.position.commit_position
            if not await self._run(self.store.is_boundary, after):
                # EventStoreDB confirms the subscription, then fails it this way.
                yield confirmation()
                await abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "Trying to read from an invalid position.",
                )
        elif which == "end":
            after = self.store.last_committed
        else:
            after = 0
        interval = 0
        if flt is not None:
            window = options.filter.max if options.filter.WhichOneof("window") == "max" else 1
            interval = max(window, 1) * max(options.filter.checkpointIntervalMultiplier, 1)
        yield confirmation()
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

    async def subscribe_stream(
        self,
        name: str,
        options: ReadOptions,
        context: grpc.aio.ServicerContext,
        structured: bool,
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        """Catch up on a stream, then follow it until it is tombstoned."""
        state = await self._run(self.store.stream_state, name)
        which = options.stream.WhichOneof("revision_option")
        if which == "revision":
            after = options.stream.revision
        elif which == "end":
            after = state.last_revision
        else:
            after = -1
        yield confirmation()
        if state.tombstoned:
            await abort_deleted(context, name)
        hidden_before = floor(name, state)
        caught_up = False
        while True:
            wake = self.notifier.future
            rows = await self._run(self.store.read_stream_after, name, after, PAGE)
            for row in rows:
                after = row[2]
                if row[2] == DELETED:
                    yield event_message(row, structured)
                    await abort_deleted(context, name)
                if not caught_up and row[2] < hidden_before:
                    continue
                yield event_message(row, structured)
            if len(rows) < PAGE:
                if not caught_up:
                    yield ReadResp(caught_up=ReadResp.CaughtUp())
                    caught_up = True
                await asyncio.shield(wake)
