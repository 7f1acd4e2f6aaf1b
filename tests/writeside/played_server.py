"""A Streams server whose BatchAppend answers the test plays: it hands each request to the test,
which answers it when and how it chooses, relays it to a real store, or breaks the call."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from esdbclient.protos.Grpc import streams_pb2, streams_pb2_grpc

Answer = streams_pb2.BatchAppendResp | grpc.StatusCode


@dataclass(frozen=True)
class Received:
    """One append request as the server got it, and the way to answer it on its call."""

    request: streams_pb2.BatchAppendReq
    answer: Callable[[Answer], None]

    @property
    def stream(self) -> str:
        return self.request.options.stream_identifier.stream_name.decode()

    def succeed(self, revision: int, position: int) -> None:
        """Answer as a committed append would be answered."""
        response = streams_pb2.BatchAppendResp(
            correlation_id=self.request.correlation_id,
            stream_identifier=self.request.options.stream_identifier,
        )
        response.success.current_revision = revision
        response.success.position.commit_position = position
        response.success.position.prepare_position = position
        self.answer(response)


class PlayedServer(streams_pb2_grpc.StreamsServicer):
    """BatchAppend only; `received` yields each request with its answerer, `calls` counts calls."""

    def __init__(self) -> None:
        self.received: queue.Queue[Received] = queue.Queue()
        self.calls = 0
        self.server = grpc.server(ThreadPoolExecutor(max_workers=8))
        streams_pb2_grpc.add_StreamsServicer_to_server(self, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.uri = f"esdb://127.0.0.1:{port}?Tls=false"
        self.server.start()

    def next(self) -> Received:
        """The next request any call received (fails the test after 10 s)."""
        return self.received.get(timeout=10)

    def BatchAppend(
        self, request_iterator: Iterator[streams_pb2.BatchAppendReq], context: grpc.ServicerContext
    ) -> Iterator[streams_pb2.BatchAppendResp]:
        self.calls += 1
        answers: queue.SimpleQueue[Answer | None] = queue.SimpleQueue()

        def receive() -> None:
            with contextlib.suppress(grpc.RpcError):  # the call ended: nothing more to receive
                for request in request_iterator:
                    self.received.put(Received(request, answers.put))
            answers.put(None)  # the client half-closed

        threading.Thread(target=receive, daemon=True).start()
        while (answer := answers.get()) is not None:
            if isinstance(answer, grpc.StatusCode):
                context.abort(answer, "broken by the test")
            yield answer

    def stop(self) -> None:
        """Go away: every open call ends, and new ones cannot connect."""
        self.server.stop(grace=None).wait()


def relay(received: Received, stub: streams_pb2_grpc.StreamsStub) -> streams_pb2.BatchAppendResp:
    """Commit a request on a real store, as its own call; the answer is the store's."""
    [response] = list(stub.BatchAppend(iter([received.request]), timeout=10))
    assert response.WhichOneof("result") == "success", response
    return response
