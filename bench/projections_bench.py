"""Read-side figures: raw catch-up, rebuild and live catch-up on the same events, RSS, live lag.

`python -m bench.projections_bench [--full]` runs it alone and prints the figures;
`python -m bench.projections_bench rebuild <database_url> <uri> [NAME,...]` is the fresh process
whose RSS is sampled (it prints one JSON object); `... runner <database_url> <uri>` is the live
projector.
"""

from __future__ import annotations

import contextlib
import json
import queue
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
from esdbclient import EventStoreDBClient, RecordedEvent
from esdbclient.events import CaughtUp

from bench.harness import Run, percentile, stop_child
from bench.workload import NOW, fixed_clock, new_account_id
from esdblite.process import ServerProcess
from ledger.accounts.commands import CommandMeta
from ledger.accounts.events import AccountEvent, AccountOpened, MoneyDeposited
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from ledger.writemodel import write_model_fold
from projections.consistency import wait_for_position
from projections.db import connect, migrate
from projections.names import PROJECTION_NAMES
from projections.pgserver import EmbeddedPostgres
from projections.rebuild import rebuild
from projections.runner import ACCOUNT_FILTER, Runner

ACCOUNTS = 100
BATCH = 500  # events per append
REBUILD_BATCH = 1000  # rebuild()'s default batch, also the raw subscription's window
COMMANDS_PER_S = 200
SAMPLE_EVERY = 4  # commands whose lag is measured
META = CommandMeta(correlation_id="bench", causation_id="bench", actor="bench:projections")
ROOT = Path(__file__).resolve().parent.parent


def account_chunks(account_id: str, count: int) -> Iterator[list[AccountEvent]]:
    """An account's valid events (an open, then deposits), in append-sized chunks."""
    chunk: list[AccountEvent] = [
        AccountOpened(
            account_id=account_id, owner="Bench", currency="EUR", overdraft_limit=0, occurred_at=NOW
        )
    ]
    balance = 0
    for i in range(1, count):
        amount = 100 + i % 900
        balance += amount
        chunk.append(
            MoneyDeposited(
                account_id=account_id,
                transaction_id=f"t-{i}",
                amount=amount,
                currency="EUR",
                description="bench deposit",
                balance_after=balance,
                occurred_at=NOW,
            )
        )
        if len(chunk) == BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def fill(uri: str, total: int) -> int:
    """Write `total` account events over ACCOUNTS accounts, round-robin in batches of BATCH."""
    store = AccountEventStore.connect(uri)
    try:
        accounts = [new_account_id() for _ in range(ACCOUNTS)]
        pending = [(acc, account_chunks(acc, total // ACCOUNTS), -1) for acc in accounts]
        while pending:
            still = []
            for account_id, chunks, revision in pending:
                chunk = next(chunks, None)
                if chunk is None:
                    continue
                store.append(account_id, expected_revision=revision, events=chunk, meta=META)
                still.append((account_id, chunks, revision + len(chunk)))
            pending = still
        return store.commit_position()
    finally:
        store.close()


def raw_catchup(uri: str) -> tuple[float, int]:
    """subscribe_to_all from the start with the runner's account filter, no processing."""
    client = EventStoreDBClient(uri)
    count = 0
    try:
        start = time.perf_counter()
        subscription = client.subscribe_to_all(
            filter_include=ACCOUNT_FILTER,
            filter_by_stream_name=True,
            include_checkpoints=True,
            include_caught_up=True,
            window_size=REBUILD_BATCH,
            checkpoint_interval_multiplier=1,
        )
        try:
            for item in subscription:
                if isinstance(item, CaughtUp):
                    break
                if type(item) is RecordedEvent:
                    count += 1
            elapsed = time.perf_counter() - start
        finally:
            subscription.stop()  # the call cancelled before its channel closes
    finally:
        client.close()
    return count / elapsed, count


def rebuild_in_a_process(database_url: str, uri: str) -> tuple[dict[str, Any], float]:
    """rebuild() of every projection in a fresh process; (its report, its peak RSS in MB)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.projections_bench", "rebuild", database_url, uri],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    peak = 0
    with contextlib.suppress(psutil.Error):
        sampled = psutil.Process(child.pid)
        while child.poll() is None:
            peak = max(peak, sampled.memory_info().rss)
            time.sleep(0.1)
    out, _ = child.communicate(timeout=3600)
    if child.returncode != 0:
        raise RuntimeError(f"the rebuild process failed with exit code {child.returncode}")
    return json.loads(out), peak / 2**20


def _rebuild_here(database_url: str, uri: str, names: list[str] | None = None) -> dict[str, Any]:
    store = AccountEventStore.connect(uri)
    fold = write_model_fold(store)
    try:
        started = time.perf_counter()
        report = rebuild(database_url, uri, fold, projections=names, batch_size=REBUILD_BATCH)
        total = time.perf_counter() - started
    finally:
        store.close()
    return {
        "events": report.events,
        "build_s": report.seconds,
        "events_per_s": report.events_per_s,
        "total_s": total,
        "swapped_at": report.swapped_at,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _runner_here(database_url: str, uri: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Runner(database_url, uri, stop=stop).run()


def live_lag(database_url: str, uri: str, seconds: float) -> tuple[list[float], float]:
    """A steady command load with a live runner process; (lag samples in s, commands/s)."""
    runner = subprocess.Popen(
        [sys.executable, "-m", "bench.projections_bench", "runner", database_url, uri], cwd=ROOT
    )
    store = AccountEventStore.connect(uri)
    conn = connect(database_url)
    samples: queue.Queue[tuple[int, float] | None] = queue.Queue()
    lags: list[float] = []
    errors: list[BaseException] = []

    def measure() -> None:
        waiter = connect(database_url)
        try:
            while (item := samples.get()) is not None:
                position, returned = item
                if not wait_for_position(waiter, position, timeout=30):
                    raise RuntimeError(f"position {position} was not applied within 30 s")
                lags.append(time.perf_counter() - returned)
        except BaseException as exc:
            errors.append(exc)
        finally:
            waiter.close()

    measurer = threading.Thread(target=measure, name="lag-measurer")
    try:
        deadline = time.monotonic() + 60
        while not _runner_is_live(conn, runner.pid):
            if time.monotonic() > deadline or runner.poll() is not None:
                raise RuntimeError("the live runner did not start")
            time.sleep(0.05)
        ledger = Ledger(CommandHandler(store), clock=fixed_clock, actor="bench:projections")
        accounts = [new_account_id("live") for _ in range(20)]
        for account in accounts:
            ledger.open_account(account, "Bench", "EUR")
        measurer.start()
        n = int(seconds * COMMANDS_PER_S)
        start = time.perf_counter()
        for i in range(n):
            delay = start + i / COMMANDS_PER_S - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            outcome = ledger.deposit(accounts[i % len(accounts)], "1.00", f"live-{i}")
            if i % SAMPLE_EVERY == 0:
                samples.put((outcome.commit_position, time.perf_counter()))
        rate = n / (time.perf_counter() - start)
    finally:
        samples.put(None)
        if measurer.is_alive():
            measurer.join()
        try:
            stop_child(runner, "the live runner")
        finally:
            conn.close()
            store.close()
    if errors:
        raise errors[0]
    return lags, rate


def _runner_is_live(conn: psycopg.Connection[Any], pid: int) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM projection_status WHERE runner_pid = %s AND caught_up", (pid,)
    ).fetchone()
    return bool(row and row[0] == len(PROJECTION_NAMES))


def run(results: Run, full: bool) -> None:
    """Measure the read-side figures on a fresh durable esdblite and embedded PostgreSQL."""
    total = 1_000_000 if full else 50_000
    with tempfile.TemporaryDirectory(prefix="bench-projections-") as tmp:
        Path(tmp).chmod(0o711)  # ours: PostgreSQL's user (as root) may pass through to pg/
        server = ServerProcess(Path(tmp) / "esdb").start()
        postgres = EmbeddedPostgres(Path(tmp) / "pg" / "data", owner_dir=Path(tmp) / "pg")
        try:
            postgres.start()
            with connect(postgres.url()) as admin:
                admin.execute("CREATE DATABASE ledger_bench")
            database_url = postgres.url("ledger_bench")
            with connect(database_url) as conn:
                migrate(conn)
            written = time.perf_counter()
            head = fill(server.uri, total)
            written = time.perf_counter() - written
            size = f"{total:,} events over {ACCOUNTS} accounts"
            print(f"  wrote {size} in {written:.1f} s", file=sys.stderr, flush=True)

            raw, count = raw_catchup(server.uri)
            results.record("raw_catchup_events_per_s_same_data", raw, f"{count:,} events")
            report, rss = rebuild_in_a_process(database_url, server.uri)
            if report["swapped_at"] != head or report["events"] != count:
                raise RuntimeError(f"the rebuild did not cover every event: {report}")
            rate = float(report["events_per_s"])
            results.record("rebuild_events_per_s", rate, f"{size}, build phase, all projections")
            results.record(
                "rebuild_to_raw_ratio", rate / raw, "rebuild / raw catch-up, on the same events"
            )
            results.record(
                "rebuild_total_s", report["total_s"], "build + pause + verify + swap, wall time"
            )
            results.record(
                "projector_rss_mb_max",
                rss,
                f"rebuild process, sampled every 0.1 s (its ru_maxrss: {report['maxrss_mb']:.0f})",
            )
            with connect(postgres.url()) as admin:
                admin.execute("CREATE DATABASE ledger_bench_live")
            live = Runner(postgres.url("ledger_bench_live"), server.uri, batch_size=REBUILD_BATCH)
            started = time.perf_counter()
            live.run(until_caught_up=True)
            results.record(
                "live_catchup_events_per_s",
                live.progress.events / (time.perf_counter() - started),
                f"{size}: a live runner (status probes on) from an empty database",
            )
            seconds = 30.0 if full else 10.0
            lags, achieved = live_lag(database_url, server.uri, seconds)
            note = (
                f"{len(lags)} sampled commands of {achieved:.0f} commands/s for {seconds:.0f} s;"
                " append returned -> wait_for_position true"
            )
            results.record("live_lag_ms_p50", percentile(lags, 50) * 1000, note)
            results.record("live_lag_ms_p99", percentile(lags, 99) * 1000, note)
        finally:
            postgres.stop()
            server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["rebuild"]:
        only = sys.argv[4].split(",") if len(sys.argv) > 4 else None
        print(json.dumps(_rebuild_here(sys.argv[2], sys.argv[3], only)))
    elif sys.argv[1:2] == ["runner"]:
        _runner_here(sys.argv[2], sys.argv[3])
    else:
        figures = Run(mode="full" if "--full" in sys.argv else "quick")
        run(figures, figures.mode == "full")
