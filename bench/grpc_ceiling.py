"""The cost of one append call: esdbclient against a Python gRPC server that stores nothing.

`esdblite_append_single_per_s` and `unary_commands_per_s` pay for a gRPC call on every append
as well as for esdblite's work. This server answers Streams.Append and Streams.BatchAppend with
success at once, on the same grpc.aio stack as esdblite, so a sequential loop of one call per
append against it measures one call through esdbclient and grpc-python at both ends, on the
same cores. It is not the client's limit: a faster server raises it, and pipelined appends
(ledger.pipeline, many appends on one call) do not pay a call each.

`python -m bench.grpc_ceiling serve` runs the server and prints its port.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.protos.Grpc import gossip_pb2_grpc, streams_pb2, streams_pb2_grpc

from bench.harness import Run, percentile
from esdblite.server import GossipService


def _success(success: Any, revision: int) -> None:
    success.current_revision = revision
    success.position.commit_position = revision + 1
    success.position.prepare_position = revision + 1


class NoWorkStreams(streams_pb2_grpc.StreamsServicer):
    """Acknowledges every append at the next revision without storing anything."""

    async def Append(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> Any:
        events = -1
        revision = -1
        async for req in request_iterator:
            if req.HasField("options"):
                if req.options.WhichOneof("expected_stream_revision") == "revision":
                    revision = req.options.revision
            else:
                events += 1
        resp = streams_pb2.AppendResp()
        _success(resp.success, revision + 1 + events)
        return resp

    async def BatchAppend(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        async for req in request_iterator:
            if req.is_final:
                resp = streams_pb2.BatchAppendResp(correlation_id=req.correlation_id)
                resp.stream_identifier.CopyFrom(req.options.stream_identifier)
                revision = (
                    req.options.stream_position
                    if req.options.WhichOneof("expected_stream_position") == "stream_position"
                    else -1
                )
                _success(resp.success, revision + len(req.proposed_messages))
                yield resp


async def _serve() -> None:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    # The generated gRPC registration functions of esdbclient carry no annotations.
    streams_pb2_grpc.add_StreamsServicer_to_server(NoWorkStreams(), server)  # type: ignore[no-untyped-call]
    gossip_pb2_grpc.add_GossipServicer_to_server(  # type: ignore[no-untyped-call]
        GossipService("127.0.0.1", port), server
    )
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


def _appends(client: EventStoreDBClient, n: int, *, batch: bool) -> tuple[float, list[float]]:
    """Sequential one-event appends (Append RPC, or BatchAppend with a list of one).

    Returns the rate per second and every call's latency in seconds.
    """
    stream = f"ceiling-{uuid.uuid4().hex}"
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        event = NewEvent(type="MoneyDeposited", data=b'{"amount": 12345}')
        began = time.perf_counter()
        client.append_to_stream(
            stream,
            current_version=i - 1 if i else StreamState.NO_STREAM,
            events=[event] if batch else event,
        )
        latencies.append(time.perf_counter() - began)
    return n / (time.perf_counter() - start), latencies


def run(results: Run, full: bool) -> None:
    """Measure esdbclient's sequential append rate against the no-work server."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.grpc_ceiling", "serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        client = EventStoreDBClient(f"esdb://127.0.0.1:{port}?Tls=false")
        try:
            n = 5000 if full else 1500
            _appends(client, 200, batch=True)  # warm-up
            rate, _ = _appends(client, n, batch=False)
            results.record(
                "grpc_append_ceiling_per_s",
                rate,
                f"{n:,} one-event Append calls, server stores nothing",
            )
            rate, latencies = _appends(client, n, batch=True)
            note = f"{n:,} one-event BatchAppend calls (as Ledger appends), server stores nothing"
            results.record("grpc_batch_append_ceiling_per_s", rate, note)
            # The latency a command cannot go below here: command_p50_ms/p99_ms less these is
            # esdblite's durable commit and the ledger's own work.
            results.record(
                "grpc_batch_append_ceiling_p50_ms", percentile(latencies, 50) * 1000, note
            )
            results.record(
                "grpc_batch_append_ceiling_p99_ms", percentile(latencies, 99) * 1000, note
            )
        finally:
            client.close()
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        asyncio.run(_serve())
    else:
        figures = Run(mode="full" if "--full" in sys.argv else "quick")
        run(figures, figures.mode == "full")
