"""Where a command's time goes, slowest 1% included: a profile, not a figure.

`python -m bench.command_tail [N]` runs N sequential commands (default 10,000) through the
Ledger, as the commands suite does, against an esdblite server that times its own commits, and
prints how the median and the slowest 1% split between the append (gRPC round trip and
esdblite's commit), esdblite's commit alone, snapshot writes, garbage collection and the
ledger's own work. The README's "Where the time goes" quotes it.

`python -m bench.command_tail serve ...` is that server: esdblite with timers around its commit
path, writing them as JSON to the file named by BENCH_COMMIT_TIMES when it stops.
"""

from __future__ import annotations

import atexit
import bisect
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest.mock import patch

from bench.harness import percentile
from bench.workload import fixed_clock, open_accounts, run_commands
from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger


class GcPauses:
    """Every garbage collection of this process: (start, end, generation)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((self._started, time.perf_counter(), info["generation"]))


def serve(argv: list[str]) -> int:
    """esdblite's `serve` with its commit path timed (wall clock at the end, duration)."""
    from esdblite import store, streams
    from esdblite.__main__ import main

    commits: list[tuple[float, float]] = []
    groups: list[float] = []
    submitted: dict[int, float] = {}
    submit, answer = streams._InFlight.submit, streams._InFlight.answer
    commit_group = store.Store._commit_group

    # A batch's commit: from its hand-over to the store to its answer being queued.
    def timed_submit(self: Any, future: Any, resp: Any, expected: int) -> None:
        submitted[id(future)] = time.perf_counter()
        submit(self, future, resp, expected)

    def timed_answer(self: Any, future: Any, resp: Any, expected: int) -> None:
        answer(self, future, resp, expected)
        began = submitted.pop(id(future), None)
        if began is not None:
            commits.append((time.time(), time.perf_counter() - began))

    def timed_commit_group(self: Any, group: Any) -> None:
        began = time.perf_counter()
        try:
            commit_group(self, group)
        finally:
            groups.append(time.perf_counter() - began)

    out = Path(os.environ["BENCH_COMMIT_TIMES"])
    atexit.register(lambda: out.write_text(json.dumps({"commits": commits, "groups": groups})))
    with (
        patch.object(streams._InFlight, "submit", timed_submit),
        patch.object(streams._InFlight, "answer", timed_answer),
        patch.object(store.Store, "_commit_group", timed_commit_group),
    ):
        return main(["serve", *argv])


class TimedServer(ServerProcess):
    """An esdblite process started through `serve` above."""

    def command(self) -> list[str]:
        args = super().command()
        at = args.index("esdblite")
        return [*args[: at - 1], "-m", "bench.command_tail", *args[at + 1 :]]


def _timed(fn: Callable[..., Any], into: list[tuple[float, float, float]]) -> Callable[..., Any]:
    """Wrap fn to record (wall start, wall end, seconds) of every call."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, began = time.time(), time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            into.append((wall, time.time(), time.perf_counter() - began))

    return wrapper


def _ms(values: list[float]) -> str:
    return f"p50 {percentile(values, 50) * 1000:.2f} ms, p99 {percentile(values, 99) * 1000:.2f} ms"


def profile(n: int) -> None:
    """Run n commands and print where their time went."""
    gcs = GcPauses()
    appends: list[tuple[float, float, float]] = []
    snapshots: list[tuple[float, float, float]] = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tail-") as tmp:
        times = Path(tmp) / "commits.json"
        server = TimedServer(Path(tmp) / "data", env={"BENCH_COMMIT_TIMES": str(times)}).start()
        try:
            store = AccountEventStore.connect(server.uri)
            timers = ExitStack()
            timers.enter_context(patch.object(store, "append", _timed(store.append, appends)))
            timers.enter_context(
                patch.object(store, "write_snapshot", _timed(store.write_snapshot, snapshots))
            )
            ledger = Ledger(CommandHandler(store), clock=fixed_clock, actor="bench:tail")
            accounts = open_accounts(ledger, 10)
            gc.callbacks.append(gcs)
            # The commands suite's own workload; each latency arrives after its command ran.
            marks = len(appends), len(snapshots), len(gcs.pauses)
            for total in run_commands(ledger, accounts, n, "tail"):
                append = appends[marks[0]]
                snapshot = sum(s[2] for s in snapshots[marks[1] :])
                collected = sum(end - start for start, end, _ in gcs.pauses[marks[2] :])
                rows.append((total, append, snapshot, collected))
                marks = len(appends), len(snapshots), len(gcs.pauses)
            gc.callbacks.remove(gcs)
            timers.close()
            store.close()
        finally:
            server.stop()
        timed = json.loads(times.read_text())
    commits: list[tuple[float, ...]] = [tuple(c) for c in timed["commits"]]
    ends = [c[0] for c in commits]

    def server_time(call: tuple[float, float, float]) -> float:
        # The commits that ended while this append was in flight (one, sequentially).
        first, last = bisect.bisect_left(ends, call[0]), bisect.bisect_right(ends, call[1])
        return sum(c[1] for c in commits[first:last])

    totals = [r[0] for r in rows]
    cutoff = percentile(totals, 99)
    slow = [r for r in rows if r[0] >= cutoff]
    own = [r[0] - r[1][2] - r[2] - r[3] for r in rows]
    print(f"{n:,} sequential commands over {len(accounts)} accounts")
    print(f"  command                   {_ms(totals)}, max {max(totals) * 1000:.1f} ms")
    print(f"  append (client side)      {_ms([r[1][2] for r in rows])}")
    print(f"  esdblite commit           {_ms([c[1] for c in commits])}")
    print(f"  esdblite writer's commit  {_ms(timed['groups'])}")
    print(f"  ledger's own work         {_ms(own)}")
    print(f"  snapshot writes           {len(snapshots)}, mean {_mean(s[2] for s in snapshots)}")
    gen2 = [end - start for start, end, g in gcs.pauses if g == 2]
    print(f"  garbage collections       {len(gcs.pauses)} ({len(gen2)} of generation 2)")
    print(f"the slowest 1% (>= {cutoff * 1000:.2f} ms, {len(slow)} commands), mean per command:")
    print(f"  command                   {_mean(r[0] for r in slow)}")
    print(f"  append (client side)      {_mean(r[1][2] for r in slow)}")
    print(f"  esdblite commit in it     {_mean(server_time(r[1]) for r in slow)}")
    print(f"  snapshot writes           {_mean(r[2] for r in slow)}, in {_count(slow, 2)}")
    print(f"  garbage collection        {_mean(r[3] for r in slow)}, in {_count(slow, 3)}")


def _mean(values: Any) -> str:
    values = list(values)
    return f"{statistics.mean(values) * 1000:.2f} ms" if values else "-"


def _count(slow: list[Any], column: int) -> str:
    return f"{sum(1 for r in slow if r[column])} of them"


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        sys.exit(serve(sys.argv[2:]))
    profile(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
