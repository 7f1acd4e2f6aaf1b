"""One BatchAppend call, many appends (§8.4): each answered once durable, in any order.

The first test drives the servicer in-process over a store whose commits the test releases one by
one; the second holds one call open against the shared server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from esdbclient import EventStoreDBClient
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc
from google.protobuf import empty_pb2

from esdblite import streams
from esdblite.streams import StreamsService
from esdblite.writer import StreamDeleted, WriteRequest, WriteResult, WrongExpectedVersion
from tests.esdblite.support import grpc_target, unique

JSON = {"type": "Raw", "content-type": "application/json"}


def request(stream: str, correlation_id: str) -> streams_pb2.BatchAppendReq:
    return streams_pb2.BatchAppendReq(
        correlation_id=shared_pb2.UUID(string=correlation_id),
        options=streams_pb2.BatchAppendReq.Options(
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream.encode()),
            any=empty_pb2.Empty(),
        ),
        proposed_messages=[
            streams_pb2.BatchAppendReq.ProposedMessage(
                id=shared_pb2.UUID(string=str(uuid.uuid4())), metadata=JSON, data=b"{}"
            )
        ],
        is_final=True,
    )


class HeldStore:
    """A store whose writes commit only when the test releases them, by stream name."""

    def __init__(self) -> None:
        self.writes: dict[str, concurrent.futures.Future[WriteResult]] = {}
        self.requests: list[WriteRequest] = []

    def write(self, request: WriteRequest) -> concurrent.futures.Future[WriteResult]:
        future: concurrent.futures.Future[WriteResult] = concurrent.futures.Future()
        self.writes[request.stream] = future
        self.requests.append(request)
        return future


class Context:
    """The part of a servicer context BatchAppend reads."""

    def time_remaining(self) -> float | None:
        return None


async def requests_from(inbox: asyncio.Queue[Any]) -> AsyncIterator[streams_pb2.BatchAppendReq]:
    while (req := await inbox.get()) is not None:
        yield req


async def wait_until(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0)


def test_a_later_append_is_answered_before_an_earlier_one_that_is_not_yet_durable() -> None:
    async def scenario() -> list[str]:
        store = HeldStore()
        service = StreamsService(store, None, max_append_size=1 << 20)  # type: ignore[arg-type]
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        answers = service.BatchAppend(requests_from(inbox), Context())  # type: ignore[arg-type]
        inbox.put_nowait(request("slow", "c-slow"))
        inbox.put_nowait(request("fast", "c-fast"))
        first = asyncio.ensure_future(anext(answers))
        await wait_until(lambda: {"slow", "fast"} <= store.writes.keys())

        store.writes["fast"].set_result(WriteResult(revision=0, position=20))
        order = [(await first).correlation_id.string]
        store.writes["slow"].set_result(WriteResult(revision=0, position=10))
        order.append((await anext(answers)).correlation_id.string)

        inbox.put_nowait(None)  # the client half-closes: the call ends
        with pytest.raises(StopAsyncIteration):
            await anext(answers)
        return order

    assert asyncio.run(scenario()) == ["c-fast", "c-slow"]


@pytest.fixture
def stub(esdb_uri: str) -> Iterator[streams_pb2_grpc.StreamsStub]:
    channel = grpc.insecure_channel(grpc_target(esdb_uri))
    try:
        yield streams_pb2_grpc.StreamsStub(channel)
    finally:
        channel.close()


def test_one_open_call_answers_each_append_before_the_client_half_closes(
    stub: streams_pb2_grpc.StreamsStub, client: EventStoreDBClient
) -> None:
    outbox: queue.Queue[streams_pb2.BatchAppendReq | None] = queue.Queue()
    call = stub.BatchAppend(iter(outbox.get, None), timeout=30)
    streams = [unique() for _ in range(3)]
    for stream in streams:
        correlation_id = str(uuid.uuid4())
        outbox.put(request(stream, correlation_id))
        answer = next(call)  # answered while the call stays open
        assert answer.correlation_id.string == correlation_id
        assert answer.WhichOneof("result") == "success"
        assert (
            answer.success.position.commit_position == client.get_stream(stream)[-1].commit_position
        )
    outbox.put(None)
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK


def test_an_append_made_durable_on_another_thread_is_answered() -> None:
    async def scenario() -> str:
        # given a store that settles its writes on a thread of its own
        store = HeldStore()
        service = StreamsService(store, None, max_append_size=1 << 20)  # type: ignore[arg-type]
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        answers = service.BatchAppend(requests_from(inbox), Context())  # type: ignore[arg-type]
        inbox.put_nowait(request("elsewhere", "c-elsewhere"))
        first = asyncio.ensure_future(anext(answers))
        await wait_until(lambda: "elsewhere" in store.writes)
        # when the write becomes durable there
        settler = threading.Thread(
            target=store.writes["elsewhere"].set_result, args=(WriteResult(0, 10),)
        )
        settler.start()
        # then the call answers it
        answer = await asyncio.wait_for(first, 30)
        settler.join()
        inbox.put_nowait(None)
        return str(answer.correlation_id.string)

    assert asyncio.run(scenario()) == "c-elsewhere"


def open_call() -> tuple[HeldStore, asyncio.Queue[Any], AsyncIterator[streams_pb2.BatchAppendResp]]:
    """A BatchAppend call on a held store: the store, the client's outbox, the answers."""
    store = HeldStore()
    service = StreamsService(store, None, max_append_size=1 << 20)  # type: ignore[arg-type]
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    return store, inbox, service.BatchAppend(requests_from(inbox), Context())  # type: ignore[arg-type]


def test_appends_held_by_the_store_together_keep_their_own_answers_and_order() -> None:
    async def scenario() -> tuple[list[WriteRequest], dict[str, streams_pb2.BatchAppendResp]]:
        # given three appends sent on one call, all held by the store at once
        store, inbox, answers = open_call()
        for name in ("ok", "conflict", "gone"):
            inbox.put_nowait(request(name, f"c-{name}"))
        first = asyncio.ensure_future(anext(answers))
        await wait_until(lambda: len(store.requests) == 3)
        # when the store settles them in another order: a refusal, a deleted stream, a success
        store.writes["conflict"].set_exception(WrongExpectedVersion(4))
        store.writes["gone"].set_exception(StreamDeleted())
        store.writes["ok"].set_result(WriteResult(revision=0, position=30))
        got = [await first, await anext(answers), await anext(answers)]
        inbox.put_nowait(None)
        with pytest.raises(StopAsyncIteration):
            await anext(answers)
        assert all(r.loop is asyncio.get_running_loop() for r in store.requests)
        return store.requests, {a.correlation_id.string: a for a in got}

    requests, by_id = asyncio.run(scenario())
    # then they reached the store in the order sent, each to be settled on the call's loop
    # (one wake-up of the loop per group commit)
    assert [r.stream for r in requests] == ["ok", "conflict", "gone"]
    # and each answer carries its own outcome
    assert by_id["c-ok"].success.position.commit_position == 30
    assert by_id["c-ok"].stream_identifier.stream_name == b"ok"
    conflict = shared_pb2.WrongExpectedVersion()
    assert by_id["c-conflict"].error.details.Unpack(conflict)
    assert conflict.current_stream_revision == 4
    assert conflict.HasField("expected_any")
    deleted = shared_pb2.StreamDeleted()
    assert by_id["c-gone"].error.details.Unpack(deleted)
    assert deleted.stream_identifier.stream_name == b"gone"


def test_appends_unanswered_when_the_call_ends_are_given_up() -> None:
    async def scenario() -> list[concurrent.futures.Future[WriteResult]]:
        # given an append the store still holds
        store, inbox, answers = open_call()
        inbox.put_nowait(request("held", "c-held"))
        pending = asyncio.ensure_future(anext(answers))
        await wait_until(lambda: "held" in store.writes)
        # when the call ends (the client went away)
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending
        await wait_until(lambda: store.writes["held"].done())
        return list(store.writes.values())

    # then its write is cancelled: the writer will not answer a call that is gone
    assert all(future.cancelled() for future in asyncio.run(scenario()))


def test_a_call_reads_no_further_while_too_many_of_its_appends_are_unanswered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> tuple[int, int]:
        # given a call allowed two unanswered appends, and three sent
        monkeypatch.setattr(streams, "MAX_BATCHES_IN_FLIGHT", 2)
        store, inbox, answers = open_call()
        for name in ("first", "second", "third"):
            inbox.put_nowait(request(name, f"c-{name}"))
        first = asyncio.ensure_future(anext(answers))
        await wait_until(lambda: len(store.requests) == 2)
        for _ in range(100):  # the call gets every chance to read on
            await asyncio.sleep(0)
        held = len(store.requests)
        # when one of them is answered
        store.writes["first"].set_result(WriteResult(revision=0, position=10))
        await first
        # then the call reads the third
        await wait_until(lambda: len(store.requests) == 3)
        store.writes["second"].set_result(WriteResult(revision=0, position=20))
        store.writes["third"].set_result(WriteResult(revision=0, position=30))
        await anext(answers)
        await anext(answers)
        inbox.put_nowait(None)
        with pytest.raises(StopAsyncIteration):
            await anext(answers)
        return held, len(store.requests)

    assert asyncio.run(scenario()) == (2, 3)
