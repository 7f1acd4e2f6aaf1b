"""Costs as the log grows: batched appends, server CPU per event, reads of a stream and of a $all
page, and a cold account's load, on one esdblite store filled to each size in turn."""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from esdbclient import EventStoreDBClient, StreamState

from bench.commands_bench import timed_load, write_account
from bench.esdblite_bench import _event, append_batched, fill
from bench.harness import Run
from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore

# Store sizes (events in the log) at which every figure is taken; quick mode stops early.
FULL_SIZES = (0, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (0, 10_000, 100_000)
HUGE_SIZE = 10_000_000
# Rounds of BATCHES batches at each size, the best kept: a round is about half a second, and the
# machine's own hiccups moved best-of-3 figures by up to 30% between runs of the same code.
ROUNDS = 9
BATCHES = 100
READS = 200


def label(size: int) -> str:
    """A size as it appears in a figure's name: 0, 10k, 100k, 1m, 10m."""
    if size >= 1_000_000:
        return f"{size // 1_000_000}m"
    return f"{size // 1000}k" if size else "0"


class Probe:
    """A stream of 100 events written into the empty store: the oldest data, read at each size."""

    def __init__(self, client: EventStoreDBClient) -> None:
        self.stream = f"bench-probe-{uuid.uuid4().hex}"
        client.append_to_stream(
            self.stream,
            current_version=StreamState.NO_STREAM,
            events=[_event() for _ in range(100)],
        )

    def stream_reads_per_s(self, client: EventStoreDBClient) -> float:
        """Whole reads of the probe stream per second."""
        start = time.perf_counter()
        for _ in range(READS):
            if len(client.get_stream(self.stream)) != 100:
                raise RuntimeError(f"{self.stream} lost events")
        return READS / (time.perf_counter() - start)

    def all_pages_per_s(self, client: EventStoreDBClient) -> float:
        """Pages of 100 records of $all read from the start (the oldest data) per second."""
        start = time.perf_counter()
        for _ in range(READS):
            page = list(client.read_all(commit_position=0, limit=100))
            if len(page) != 100:
                raise RuntimeError(f"a $all page held {len(page)} records")
        return READS / (time.perf_counter() - start)


def server_cpu_s(server: ServerProcess) -> float:
    """CPU seconds (user + system) the server process has used so far."""
    assert server.proc is not None  # started by the caller
    times = psutil.Process(server.proc.pid).cpu_times()
    return float(times.user + times.system)


def measure(results: Run, server: ServerProcess, probe: Probe, size: int, scratch: Path) -> int:
    """Record every figure at this store size; the number of events the measuring wrote.

    Batched appends are also taken on a fresh store beside it, rounds alternated, because the
    machine's own speed moves by a third within a minute: the ratio of the two, taken at the
    same moments, is what says whether the size costs anything."""
    client = EventStoreDBClient(server.uri)
    name = label(size)
    note = f"{size:,} events in the log"
    fresh = ServerProcess(scratch / f"fresh-{name}").start()
    fresh_client = EventStoreDBClient(fresh.uri)
    try:
        # Best of ROUNDS: other processes on a shared machine only ever slow a round down.
        rates, fresh_rates, cpus = [], [], []
        for _ in range(ROUNDS):
            before = server_cpu_s(server)
            rates.append(append_batched(client, BATCHES))
            cpus.append((server_cpu_s(server) - before) / (BATCHES * 100) * 1e6)
            fresh_rates.append(append_batched(fresh_client, BATCHES))
        best = f"{note}; best of {ROUNDS}"
        results.record(f"scale_append_batched_per_s_{name}", max(rates), best)
        results.record(f"scale_server_cpu_us_per_event_{name}", min(cpus), best)
        beside = (
            f"a fresh store (empty at its first round, {ROUNDS * BATCHES * 100:,} events after its "
            f"last), its rounds alternated with those at {size:,} events; best of {ROUNDS}"
        )
        results.record(f"scale_append_batched_fresh_per_s_{name}", max(fresh_rates), beside)
        results.record(
            f"scale_append_batched_{name}_to_fresh",
            max(rates) / max(fresh_rates),
            f"batched appends at {size:,} events in the log over a fresh store's, side by side",
        )
        # Each round over the fresh store's round right after it: a pair meets the same speed
        # of the machine, so the median pair is the steadiest reading of what the size costs.
        paired = statistics.median(r / f for r, f in zip(rates, fresh_rates, strict=True))
        results.record(
            f"scale_append_batched_{name}_to_fresh_paired",
            paired,
            f"median over {ROUNDS} pairs of a round at {size:,} events and the fresh store's next",
        )
        results.record(f"scale_read_stream_per_s_{name}", probe.stream_reads_per_s(client), note)
        results.record(f"scale_read_all_page_per_s_{name}", probe.all_pages_per_s(client), note)
        rss = psutil.Process(server.proc.pid).memory_info().rss / 2**20 if server.proc else 0.0
        results.record(f"scale_server_rss_mb_{name}", rss, note)
    finally:
        client.close()
        fresh_client.close()
        fresh.stop()
    store = AccountEventStore.connect(server.uri)
    try:
        account = write_account(store, 100, snapshot=False)
    finally:
        store.close()
    results.record(
        f"scale_cold_load_ms_{name}",
        timed_load(server.uri, account, snapshots=False, processes=1),
        f"{note}; an account of 100 events, no snapshot, a fresh process, cache off",
    )
    return ROUNDS * BATCHES * 100 + 100


def run(results: Run, full: bool, *, huge: bool = False) -> None:
    """Fill one durable store to each size in turn and measure at each."""
    sizes = (*FULL_SIZES, HUGE_SIZE) if huge else FULL_SIZES if full else QUICK_SIZES
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        server = ServerProcess(Path(tmp) / "data").start()
        try:
            client = EventStoreDBClient(server.uri)
            probe = Probe(client)
            written, filling = 100, 0.0
            for size in sizes:
                if size > written:
                    began = time.perf_counter()
                    fill(client, size - written)
                    filling += time.perf_counter() - began
                    written = size
                if size >= 1_000_000:
                    results.record(
                        f"scale_build_s_{label(size)}",
                        filling,
                        f"batched appends of 500 events through the server, {size:,} events",
                    )
                written += measure(results, server, probe, size, Path(tmp))
            client.close()
        finally:
            server.stop()
    first, last = label(sizes[0]), label(sizes[-1])
    for figure in ("append_batched_per_s", "server_cpu_us_per_event", "read_stream_per_s"):
        top = results.figures.get(f"scale_{figure}_{last}")
        bottom = results.figures.get(f"scale_{figure}_{first}")
        if top and bottom:
            results.record(f"scale_{figure}_{last}_to_{first}", top / bottom)
