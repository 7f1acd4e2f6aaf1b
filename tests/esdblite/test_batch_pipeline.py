"""One BatchAppend call, many appends (§8.4): each answered once durable, in any order.

The first test drives the servicer in-process over a store whose commits the test releases one by
one; the second holds one call open against the shared server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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

from esdblite.streams import StreamsService
from esdblite.writer import WriteRequest, WriteResult
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

    def write(self, request: WriteRequest) -> concurrent.futures.Future[WriteResult]:
        future: concurrent.futures.Future[WriteResult] = concurrent.futures.Future()
        self.writes[request.stream] = future
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
