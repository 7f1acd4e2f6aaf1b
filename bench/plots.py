"""The plots: load time vs stream length, rebuild throughput over time, command latencies.

`run` (the "plots" suite) measures the series on a fresh esdblite and embedded PostgreSQL:
- load time of accounts of 10 events up to 10k (full mode: 100k), each by a fresh process,
  through its snapshot and by full replay (commands_bench.write_account and timed_load);
- the latency of every command of a sequential deposit/withdrawal run through Ledger
  (the schedule of bench.workload, which the commands suite runs too);
- a projections rebuild (projections.rebuild.rebuild) over every account event written,
  sampled by its on_progress callback after each batch: (seconds since start, events).

`draw` turns whatever series the run measured (the peer suite adds the peer's command latencies
and its projection's progress) into PNGs next to latest.json; latest.md links them.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

from bench.commands_bench import timed_load, write_account
from bench.harness import Run, percentile
from bench.workload import fixed_clock, open_accounts, run_commands
from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from ledger.writemodel import write_model_fold
from projections.pgserver import EmbeddedPostgres
from projections.rebuild import rebuild
from projections.runner import Progress

QUICK_LENGTHS = (10, 100, 1_000, 10_000)
FULL_LENGTHS = (10, 100, 1_000, 10_000, 100_000)
FILL_ACCOUNT = 5_000  # events per account written to give the rebuild more to do
WINDOW_S = 0.5  # throughput is events over the last WINDOW_S seconds


def command_latencies(run: Run, store: AccountEventStore, n: int) -> None:
    """Every latency of n sequential commands through Ledger (cache on), in ms."""
    ledger = Ledger(CommandHandler(store), clock=fixed_clock, actor="bench:plots")
    accounts = open_accounts(ledger, 10)
    run.series["command_latencies_ms"] = [s * 1000 for s in run_commands(ledger, accounts, n, "p")]


def load_series(run: Run, store: AccountEventStore, uri: str, lengths: Sequence[int]) -> int:
    """(events, ms through the snapshot, ms by full replay) per length; the events written."""
    points = []
    for length in lengths:
        state = write_account(store, length, snapshot=True)
        with_snapshot = timed_load(uri, state, snapshots=True)
        replay = timed_load(uri, state, snapshots=False)
        points.append((length, with_snapshot, replay))
        print(
            f"  load {length:>7,} events: {with_snapshot:.2f} ms snapshot, {replay:.2f} ms replay",
            file=sys.stderr,
            flush=True,
        )
    run.series["load_vs_length"] = points
    return sum(lengths)


def rebuild_progress(run: Run, store: AccountEventStore, database_url: str, uri: str) -> None:
    """Rebuild every projection from scratch, sampling (seconds, events) after each batch."""
    samples: list[tuple[float, int]] = [(0.0, 0)]
    start = time.perf_counter()

    def sample(progress: Progress) -> None:
        if progress.events != samples[-1][1]:
            samples.append((time.perf_counter() - start, progress.events))

    fold = write_model_fold(store)
    report = rebuild(database_url, uri, fold, on_progress=sample)
    run.series["rebuild_progress"] = samples
    run.series["rebuild_report"] = (report.events, report.seconds)
    print(
        f"  rebuild: {report.events:,} events in {report.seconds:.2f} s, sampled {len(samples)}x",
        file=sys.stderr,
        flush=True,
    )


def run(results: Run, full: bool) -> None:
    """Measure the series of the plots on a fresh esdblite and PostgreSQL."""
    with tempfile.TemporaryDirectory(prefix="bench-plots-") as tmp:
        home = Path(tmp)
        home.chmod(0o711)  # ours: PostgreSQL's user (as root) may pass through to pg/
        server = ServerProcess(home / "data").start()
        postgres = EmbeddedPostgres(home / "pg" / "data", owner_dir=home / "pg")
        try:
            postgres.start()
            with psycopg.connect(postgres.url(), autocommit=True) as admin:
                admin.execute("CREATE DATABASE plots")
            store = AccountEventStore.connect(server.uri)
            try:
                commands = 10_000 if full else 2_000
                command_latencies(results, store, commands)
                written = commands + 10
                written += load_series(
                    results, store, server.uri, FULL_LENGTHS if full else QUICK_LENGTHS
                )
                total = 300_000 if full else 25_000
                while written < total:
                    write_account(store, FILL_ACCOUNT, snapshot=False)
                    written += FILL_ACCOUNT
                rebuild_progress(results, store, postgres.url("plots"), server.uri)
            finally:
                store.close()
        finally:
            postgres.stop()
            server.stop()


def _draw_to_files() -> None:
    """Select the file-only Agg backend; pyplot is imported after this, never before."""
    import matplotlib

    matplotlib.use("Agg")


def throughput(samples: Sequence[tuple[float, int]]) -> tuple[list[float], list[float]]:
    """Events/s over the WINDOW_S seconds before each sample (from the start for early ones)."""
    times: list[float] = []
    rates: list[float] = []
    j = 0
    for t, events in samples[1:]:
        while j + 1 < len(samples) and samples[j + 1][0] <= t - WINDOW_S:
            j += 1
        t0, e0 = samples[j]
        if t > t0:
            times.append(t)
            rates.append((events - e0) / (t - t0))
    return times, rates


def draw_loads(run: Run, points: list[tuple[int, float, float]]) -> None:
    _draw_to_files()
    import matplotlib.pyplot as plt

    lengths = [p[0] for p in points]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.plot(lengths, [p[2] for p in points], "o-", label="full replay (no snapshot)")
    ax.plot(lengths, [p[1] for p in points], "s-", label="through the snapshot")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events in the account's stream")
    ax.set_ylabel("load time (ms, median of 5)")
    ax.set_title("Account load time vs stream length")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    rows = "; ".join(f"{n:,}: {s:.2f} / {r:.2f} ms" for n, s, r in points)
    path = run.plot_path(
        "load_vs_length.png",
        "Load time vs stream length",
        "Each account loaded 5 times by a fresh process, cache off, through a snapshot at its "
        f"last event and by full replay (median; events: snapshot / replay): {rows}.",
    )
    fig.savefig(path)
    plt.close(fig)


def draw_rebuild(run: Run) -> None:
    _draw_to_files()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    parts = []
    top = 1.0
    ours = run.series.get("rebuild_progress")
    if ours:
        times, rates = throughput(ours)
        top = max([top, *rates])
        ax.plot(times, rates, label="ledger: projections rebuild (all projections)")
        events, seconds = run.series["rebuild_report"]
        parts.append(f"ledger rebuild: {events:,} events in {seconds:.2f} s")
    peer = run.series.get("peer_projection_progress")
    if peer:
        times, rates = throughput(peer)
        top = max([top, *rates])
        ax.plot(times, rates, label="peer: eventsourcing ProjectionRunner (balance table)")
        parts.append(f"peer catch-up: {peer[-1][1]:,} events in {peer[-1][0]:.2f} s")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel(f"events/s (over the last {WINDOW_S:g} s)")
    ax.set_title("Projection rebuild throughput over time")
    ax.set_ylim(0, top * 1.3)  # room for the legend above the curves
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    path = run.plot_path(
        "rebuild_throughput.png",
        "Rebuild throughput over time",
        "Sampled after each applied batch (ledger: Runner's on_progress) or every 10 ms from the "
        "tracking table (peer); " + "; ".join(parts) + ".",
    )
    fig.savefig(path)
    plt.close(fig)


def draw_latencies(run: Run) -> None:
    _draw_to_files()
    import matplotlib.pyplot as plt
    import numpy as np

    series = [
        ("ledger (esdblite)", run.series.get("command_latencies_ms")),
        ("peer (eventsourcing, PostgreSQL)", run.series.get("peer_command_latencies_ms")),
    ]
    present = [(label, values) for label, values in series if values]
    low = min(min(values) for _, values in present)
    high = max(max(values) for _, values in present)
    bins = np.logspace(np.log10(low), np.log10(high), 60)
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    parts = []
    for label, values in present:
        hist.hist(values, bins=bins, histtype="step", linewidth=1.5, label=label)
        ordered = np.sort(values)
        cdf.plot(ordered, np.arange(1, len(ordered) + 1) / len(ordered), label=label)
        p50, p99 = percentile(values, 50), percentile(values, 99)
        parts.append(
            f"{label}: {len(values):,} commands, p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
            f"max {max(values):.2f} ms"
        )
    for ax in (hist, cdf):
        ax.set_xscale("log")
        ax.set_xlabel("command latency (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    hist.set_ylabel("commands")
    hist.set_title("Distribution")
    cdf.set_ylabel("fraction of commands at or below")
    cdf.set_title("Cumulative")
    cdf.axhline(0.99, color="grey", linestyle=":", linewidth=1)
    fig.suptitle("Command latency, sequential deposits/withdrawals, cache on")
    fig.tight_layout()
    path = run.plot_path(
        "command_latency.png",
        "Command latency distribution",
        "Every command of a sequential run over 10 accounts (deposit, deposit, withdrawal, ...),"
        " the ledger's by the plots suite (a run of its own, next to commands_per_s's), the "
        "peer's by the peer suite; " + "; ".join(parts) + ".",
    )
    fig.savefig(path)
    plt.close(fig)


def draw(run: Run) -> None:
    """Draw a PNG for each plot whose series this run measured (none without matplotlib)."""
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        if run.series:
            print(
                "plots: skipped (matplotlib is not installed: the `bench` extra)", file=sys.stderr
            )
        return
    if "load_vs_length" in run.series:
        draw_loads(run, run.series["load_vs_length"])
    if "rebuild_progress" in run.series or "peer_projection_progress" in run.series:
        draw_rebuild(run)
    if "command_latencies_ms" in run.series or "peer_command_latencies_ms" in run.series:
        draw_latencies(run)
