"""esdblite figures: durable appends (single, batched), group commit, raw catch-up, RSS, and
bytes stored per posting with and without snapshot retention (`bench.retention_bench`)."""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.events import CaughtUp

from bench import retention_bench
from bench.harness import Run
from esdblite.process import ServerProcess

PAYLOAD = json.dumps({"account_id": "acc-0001", "amount": 12345, "description": "x" * 40}).encode()


def _event() -> NewEvent:
    return NewEvent(type="MoneyDeposited", data=PAYLOAD)


def append_single(client: EventStoreDBClient, n: int) -> float:
    """Sequential one-event appends with an exact expected revision; events/s."""
    stream = f"bench-single-{uuid.uuid4().hex}"
    start = time.perf_counter()
    for i in range(n):
        client.append_to_stream(
            stream, current_version=i - 1 if i else StreamState.NO_STREAM, events=_event()
        )
    return n / (time.perf_counter() - start)


def append_batched(client: EventStoreDBClient, batches: int, size: int = 100) -> float:
    """Sequential batches of `size` events to fresh streams; events/s."""
    start = time.perf_counter()
    for _ in range(batches):
        client.append_to_stream(
            f"bench-batch-{uuid.uuid4().hex}",
            current_version=StreamState.NO_STREAM,
            events=[_event() for _ in range(size)],
        )
    return batches * size / (time.perf_counter() - start)


def concurrent_writers(uri: str, writers: int, per_writer: int) -> None:
    """`writers` threads, each with its own client, appending 10-event batches."""

    def work() -> None:
        client = EventStoreDBClient(uri)
        stream = f"bench-conc-{uuid.uuid4().hex}"
        for i in range(per_writer):
            client.append_to_stream(
                stream,
                current_version=i * 10 - 1 if i else StreamState.NO_STREAM,
                events=[_event() for _ in range(10)],
            )
        client.close()

    threads = [threading.Thread(target=work) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def raw_catchup(client: EventStoreDBClient) -> tuple[float, int]:
    """subscribe_to_all from the start until caught up, doing nothing per event."""
    count = 0
    start = time.perf_counter()
    sub = client.subscribe_to_all(include_caught_up=True)
    for item in sub:
        if isinstance(item, CaughtUp):
            break
        count += 1
    elapsed = time.perf_counter() - start
    sub.stop()
    return count / elapsed, count


def fill(client: EventStoreDBClient, total: int, size: int = 500) -> None:
    """Write `total` events in batches, as fast as the server takes them."""
    for _ in range(total // size):
        client.append_to_stream(
            f"bench-fill-{uuid.uuid4().hex}",
            current_version=StreamState.NO_STREAM,
            events=[_event() for _ in range(size)],
        )


def run(results: Run, full: bool) -> None:
    """Measure the esdblite figures on a fresh durable server."""
    with tempfile.TemporaryDirectory(prefix="bench-esdblite-") as tmp:
        data = Path(tmp) / "data"
        server = ServerProcess(data).start()
        try:
            client = EventStoreDBClient(server.uri)
            single_n = 5000 if full else 1500
            results.record("esdblite_append_single_per_s", append_single(client, single_n))
            batches = 1000 if full else 200
            results.record("esdblite_append_batched_events_per_s", append_batched(client, batches))
            client.close()
        finally:
            server.stop()
        # Group commit: fsyncs per acknowledged batch under 8 concurrent writers, on a fresh
        # server process so that the counters it writes at shutdown cover only this load.
        server.start()
        try:
            concurrent_writers(server.uri, writers=8, per_writer=300 if full else 100)
        finally:
            server.stop()
        stats = json.loads((data / "stats.json").read_text())
        results.record(
            "fsyncs_per_acked_batch",
            stats["fsyncs"] / max(stats["acked_batches"], 1),
            "8 writers, 10-event batches",
        )
        server.start()
        try:
            client = EventStoreDBClient(server.uri)
            fill(client, 500_000 if full else 40_000)
            rate, count = raw_catchup(client)
            results.record("raw_catchup_events_per_s", rate, f"{count:,} events")
            if full:
                written = count
                if written < 1_000_000:
                    fill(client, 1_000_000 - written + 500)
                assert server.proc is not None  # started above
                rss = psutil.Process(server.proc.pid).memory_info().rss / 2**20
                results.record("esdblite_rss_mb_1m", rss, "after 1M events written and read")
            client.close()
        finally:
            server.stop()
    retention_bench.run(results, full)
