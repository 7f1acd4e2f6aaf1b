"""Write-side figures: command throughput and latency at 1, 8 and 32 callers (pipelined appends
and, for comparison, one gRPC call per append), account load times.

`python -m bench.commands_bench load <uri> <account> <snapshots|events>` is the fresh process
that times the loads: it prints one JSON object with the median of 5 loads in milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from bench.harness import Run, percentile
from bench.workload import NOW, Bank, fixed_clock, new_account_id, open_accounts, run_callers
from esdblite.process import ServerProcess
from ledger.accounts.commands import CommandMeta, Deposit, OpenAccount, Withdraw
from ledger.accounts.decider import State, decide, evolve, initial_state
from ledger.accounts.events import AccountEvent
from ledger.accounts.snapshot import state_to_snapshot
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger

CALLERS = (1, 8, 32)
# Caller counts also measured with each process on a core of its own (see one_core_each).
PINNED_CALLERS = (1, 8)
LOADS_PER_PROCESS = 5
# Fresh processes per quick load figure: their median keeps one stalled process (a GC, a busy
# neighbour) from deciding a figure of a few milliseconds. Full replays of 100k events take
# seconds each, so they get one process.
PROCESSES = 3
BATCH = 500
META = CommandMeta(correlation_id="bench", causation_id="bench", actor="bench:commands")
ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(process: psutil.Process) -> float:
    """User plus system CPU seconds a process has used so far (every thread)."""
    times = process.cpu_times()
    return float(times.user + times.system)


def own_switches() -> int:
    """Context switches of this process so far, every thread's, ended ones included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


def switches(pid: int) -> int:
    """Context switches so far of another process's live threads (the server's threads live as
    long as it does; /proc/PID/status alone counts only the main thread's, as psutil does)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                    total += int(value)
    return total


def _pin(pid: int, cores: set[int]) -> None:
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cores)


@contextmanager
def one_core_each(server_pid: int) -> Iterator[bool]:
    """Every thread of this process on one core and every thread of the server on another (the
    threads they start meanwhile inherit it), then both as before; False, and nothing changed,
    on a machine with one core. Each process's Python runs one thread at a time (one GIL), so a
    core of its own costs it little, and its threads then hand work to one another on the core
    they share; on the 2-core virtual machine of the README's figures that made every command
    cheaper."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        yield False
        return
    mine, theirs = os.sched_getaffinity(0), os.sched_getaffinity(server_pid)
    _pin(os.getpid(), {cores[0]})
    _pin(server_pid, {cores[1]})
    try:
        yield True
    finally:
        _pin(os.getpid(), mine)
        _pin(server_pid, theirs)


def callers(
    results: Run,
    server: ServerProcess,
    n: int,
    count: int,
    *,
    pipelined: bool,
    pinned: bool = False,
) -> None:
    """`count` threads of one process, one store (one client, one channel) between them, each
    with its own Ledger and handler (cache on) on accounts of its own: n commands in all; and
    the CPU each command cost this process and the server's. `pinned`: with each process on a
    core of its own (one_core_each); its figures are named with `_pinned`."""
    assert server.proc is not None
    client_process, server_process = psutil.Process(), psutil.Process(server.proc.pid)
    store = AccountEventStore.connect(server.uri, pipelined=pipelined)
    try:
        ledgers: list[Bank] = [
            Ledger(CommandHandler(store), clock=fixed_clock, actor=f"bench:caller-{i}")
            for i in range(count)
        ]
        # A lone caller spreads its commands over 10 accounts, as the sequential figure has.
        accounts = [open_accounts(ledger, 10 if count == 1 else 1) for ledger in ledgers]
        tag = f"{'p' if pipelined else 'u'}{count}{'c' if pinned else ''}"
        with contextlib.ExitStack() as placed:
            if pinned and not placed.enter_context(one_core_each(server_process.pid)):
                return  # one core: there is nothing to pin to
            client_cpu, server_cpu = cpu_seconds(client_process), cpu_seconds(server_process)
            client_switches, server_switches = own_switches(), switches(server_process.pid)
            done, elapsed = run_callers(ledgers, accounts, n, tag)
            client_cpu = cpu_seconds(client_process) - client_cpu
            server_cpu = cpu_seconds(server_process) - server_cpu
            client_switches = own_switches() - client_switches
            server_switches = switches(server_process.pid) - server_switches
    finally:
        store.close()
    path = "one BatchAppend call shared by all" if pipelined else "one gRPC call per append"
    note = f"{len(done):,} commands, {count} caller(s) in one process, {path}, durable esdblite"
    if pinned:
        note += "; this process on one core and esdblite on another"
    prefix = "" if pipelined else "unary_"
    suffix = ("" if count == 1 else f"_{count}_callers") + ("_pinned" if pinned else "")
    results.record(f"{prefix}commands_per_s{suffix}", len(done) / elapsed, note)
    results.record(f"{prefix}command_p50_ms{suffix}", percentile(done, 50) * 1000, note)
    results.record(f"{prefix}command_p99_ms{suffix}", percentile(done, 99) * 1000, note)
    if pipelined:
        cpu = f"{note}; user + system CPU seconds of the process over the commands"
        per = 1e6 / len(done)
        results.record(f"client_cpu_us_per_command{suffix}", client_cpu * per, cpu)
        results.record(f"server_cpu_us_per_command{suffix}", server_cpu * per, cpu)
        # How often a command puts a thread to sleep or wakes one: the hand-offs between threads
        # (callers, gRPC's, the reader; the loop, the poller, the writer) it costs in each.
        woken = f"{note}; context switches of every thread of the process over the commands"
        results.record(f"client_switches_per_command{suffix}", client_switches / len(done), woken)
        results.record(f"server_switches_per_command{suffix}", server_switches / len(done), woken)


def throughput(results: Run, server: ServerProcess, n: int) -> None:
    """Commands/s and latency at 1, 8 and 32 callers, pipelined and one call per append (and
    pipelined with each process on a core of its own, at 1 and 8), in alternation so that all
    meet the same load of a shared machine."""
    for count in CALLERS:
        for pipelined in (False, True):
            callers(results, server, n, count, pipelined=pipelined)
        if count in PINNED_CALLERS:
            callers(results, server, n, count, pipelined=True, pinned=True)


def history(account_id: str, events: int) -> tuple[list[AccountEvent], State]:
    """Valid events (an open, then deposits and withdrawals) by the pure decider, and the state."""
    state = initial_state
    produced: list[AccountEvent] = []
    common: dict[str, Any] = {"account_id": account_id, "now": NOW, "meta": META}
    commands: Iterator[OpenAccount | Deposit | Withdraw] = (
        OpenAccount(owner="Bench", currency="EUR", **common)
        if i == 0
        else Withdraw(amount="3.00", transaction_id=f"t-{i}", **common)
        if i % 3 == 0
        else Deposit(amount=f"{i % 90 + 10}.25", transaction_id=f"t-{i}", **common)
        for i in range(events)
    )
    for command in commands:
        for event in decide(command, state):
            produced.append(event)
            state = evolve(state, event)
    return produced, state


def write_account(store: AccountEventStore, events: int, *, snapshot: bool) -> State:
    """Append a new account's events in batches at the right revisions (and its snapshot)."""
    account_id = new_account_id()
    produced, state = history(account_id, events)
    for first in range(0, len(produced), BATCH):
        store.append(
            account_id,
            expected_revision=first - 1,
            events=produced[first : first + BATCH],
            meta=META,
        )
    if snapshot:
        store.write_snapshot(account_id, state_to_snapshot(state))
    return state


def timed_load(uri: str, state: State, *, snapshots: bool, processes: int = PROCESSES) -> float:
    """Load time in ms of the account: the median of fresh processes' medians."""
    mode = "snapshots" if snapshots else "events"
    medians = []
    for _ in range(processes):
        done = subprocess.run(
            [sys.executable, "-m", "bench.commands_bench", "load", uri, state.account_id, mode],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        report = json.loads(done.stdout)
        if (report["revision"], report["balance"]) != (state.revision, state.balance):
            raise RuntimeError(f"the fresh process loaded another state: {report}")
        medians.append(float(report["median_ms"]))
    return statistics.median(medians)


def loads(results: Run, uri: str, full: bool) -> None:
    """Load times of accounts of 10, 1,000 and 100k (quick: 20k) events, in fresh processes."""
    big = 100_000 if full else 20_000
    store = AccountEventStore.connect(uri)
    try:
        small = write_account(store, 10, snapshot=False)
        medium = write_account(store, 1_000, snapshot=False)
        large = write_account(store, big, snapshot=True)
    finally:
        store.close()
    size = f"{big:,} events" + ("" if full else " (quick mode)")
    each = f"median over {PROCESSES} fresh processes of {LOADS_PER_PROCESS} loads each, cache off"
    replay = f"median of {LOADS_PER_PROCESS} loads in one fresh process, cache off"
    load_10 = timed_load(uri, small, snapshots=True)
    results.record("load_ms_10", load_10, f"10 events, no snapshot; {each}")
    results.record(
        "load_ms_1000",
        timed_load(uri, medium, snapshots=True),
        f"1,000 events, no snapshot; {each}",
    )
    with_snapshot = timed_load(uri, large, snapshots=True)
    results.record(
        "load_ms_100k_snapshots", with_snapshot, f"{size}, snapshot at the last one; {each}"
    )
    results.record(
        "load_ms_100k_no_snapshots",
        timed_load(uri, large, snapshots=False, processes=1),
        f"{size}, full replay; {replay}",
    )
    results.record(
        "load_100k_snapshots_to_10_ratio",
        with_snapshot / load_10,
        f"load_ms_100k_snapshots / load_ms_10 ({size})",
    )


def run(results: Run, full: bool) -> None:
    """Measure the write-side figures on a fresh durable esdblite server."""
    with tempfile.TemporaryDirectory(prefix="bench-commands-") as tmp:
        server = ServerProcess(Path(tmp) / "data").start()
        try:
            throughput(results, server, 10_000 if full else 2_000)
            loads(results, server.uri, full)
        finally:
            server.stop()


def load_in_this_process(uri: str, account_id: str, mode: str) -> dict[str, float]:
    """Time LOADS_PER_PROCESS loads of one account with the cache off; the median in ms."""
    store = AccountEventStore.connect(uri)
    try:
        handler = CommandHandler(store, cache_size=0, use_snapshots=mode == "snapshots")
        # Open the connection first, so the figure is the load and not the TCP/HTTP2 handshake.
        store.read("bench-warm-up")
        samples = []
        for _ in range(LOADS_PER_PROCESS):
            start = time.perf_counter()
            state = handler.load(account_id)
            samples.append(time.perf_counter() - start)
    finally:
        store.close()
    return {
        "median_ms": statistics.median(samples) * 1000,
        "revision": state.revision,
        "balance": state.balance,
    }


if __name__ == "__main__":
    _, command, uri, account_id, mode = sys.argv
    if command != "load" or mode not in ("snapshots", "events"):
        sys.exit("usage: python -m bench.commands_bench load <uri> <account> <snapshots|events>")
    print(json.dumps(load_in_this_process(uri, account_id, mode)))
