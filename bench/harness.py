"""The benchmark harness: figures, targets, the machine description and the results files."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(__file__).parent / "results"
README = Path(__file__).parent.parent / "README.md"
README_BEGIN = "<!-- bench-results:begin (written by `python -m bench --full`) -->"
README_END = "<!-- bench-results:end -->"


@dataclass(frozen=True)
class Target:
    """A figure's target: at least (`>=`) or at most (`<=`) a value."""

    op: str
    value: float

    def met(self, figure: float) -> bool:
        return figure >= self.value if self.op == ">=" else figure <= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


TARGETS: dict[str, Target] = {
    "esdblite_append_single_per_s": Target(">=", 1000),
    "esdblite_append_batched_events_per_s": Target(">=", 10000),
    "raw_catchup_events_per_s": Target(">=", 10000),
    "esdblite_rss_mb_1m": Target("<=", 200),
    "commands_per_s": Target(">=", 1000),
    "command_p99_ms": Target("<=", 5),
    "load_100k_snapshots_to_10_ratio": Target("<=", 2),
    "rebuild_to_raw_ratio": Target(">=", 0.7),
    "projector_rss_mb_max": Target("<=", 200),
    "cli_wall_ms_median": Target("<=", 250),
    "commands_vs_peer": Target(">=", 1),
    "transfer_to_deposit_p50": Target("<=", 3),
    "projection_vs_peer": Target(">=", 1),
}

DESCRIPTIONS: dict[str, str] = {
    "esdblite_append_single_per_s": "sequential single-event durable appends (Append RPC)",
    "esdblite_append_batched_events_per_s": "events/s in sequential batches of 100 (BatchAppend)",
    "fsyncs_per_acked_batch": "fsyncs per acknowledged batch, 8 concurrent writers (group commit)",
    "raw_catchup_events_per_s": "subscribe_to_all from the start, no processing",
    "esdblite_rss_mb_1m": "esdblite server RSS after writing 1M events (full mode)",
    "commands_per_s": "sequential deposits/withdrawals through Ledger, cache on",
    "command_p50_ms": "median command latency",
    "command_p99_ms": "99th percentile command latency",
    **{
        f"{prefix}{figure}{suffix}": f"{what}, {who}{how}"
        for prefix, how in (("", ""), ("unary_", ", one gRPC call per append"))
        for suffix, who in (
            ("", "one caller"),
            ("_8_callers", "8 threads of one process"),
            ("_32_callers", "32 threads of one process"),
        )
        for figure, what in (
            ("commands_per_s", "commands/s"),
            ("command_p50_ms", "median command latency"),
            ("command_p99_ms", "99th percentile command latency"),
        )
        if (prefix, suffix) != ("", "")
    },
    "commands_8_callers_to_sequential": "commands_per_s_8_callers / commands_per_s",
    "commands_per_s_pinned": "commands/s, one caller, this process on one core and esdblite on"
    " another",
    "commands_per_s_8_callers_pinned": "commands/s, 8 threads of one process, this process on one"
    " core and esdblite on another",
    "commands_8_callers_to_sequential_pinned": "commands_per_s_8_callers_pinned /"
    " commands_per_s_pinned",
    "commands_vs_peer_8_callers": "commands_per_s_8_callers / peer_commands_per_s_8_callers",
    "load_ms_10": "load an account of 10 events, fresh process, cache off",
    "load_ms_1000": "load an account of 1,000 events",
    "load_ms_100k_snapshots": "load a 100k-event account through its snapshot",
    "load_ms_100k_no_snapshots": "load a 100k-event account by full replay",
    "load_100k_snapshots_to_10_ratio": "load_ms_100k_snapshots / load_ms_10",
    "rebuild_events_per_s": "projections rebuild from the start of $all, build phase",
    "raw_catchup_events_per_s_same_data": "subscribe_to_all over the rebuild's events, no work",
    "rebuild_to_raw_ratio": "rebuild_events_per_s / raw catch-up on the same events",
    "rebuild_total_s": "whole rebuild: build, pause, verify, swap",
    "projector_rss_mb_max": "largest projection runner RSS during the rebuild",
    "rebuild_one_process_s": "rebuild of every projection in one process, wall time",
    "rebuild_one_process_events_per_s": "events/s of that rebuild",
    "rebuild_per_projection_s": "rebuild, an applier process per projection, one reader; wall time",
    "rebuild_per_projection_events_per_s": "events/s of that rebuild (the log read once)",
    "rebuild_per_projection_speedup": "rebuild_one_process_s / rebuild_per_projection_s",
    "rebuild_cpu_count": "os.cpu_count() where the rebuild figures were measured",
    "live_lag_ms_p50": "median time from an append to its projection row (live runner)",
    "live_lag_ms_p99": "99th percentile append-to-projection lag (live runner)",
    "cli_wall_ms_median": "median wall time of a CLI command, fresh process",
    "cli_wall_ms_median_no_bytecode_cache": "the same, every module compiled in every run",
    "cli_balance_event_store_client_modules": "event store client modules a CLI read imports",
    "peer_commands_per_s": "peer (eventsourcing 9.5, PostgreSQL): sequential deposits/withdrawals,"
    " cache without deep copies, window of 10,000 transactions",
    "peer_command_p50_ms": "peer: median command latency",
    "peer_command_p99_ms": "peer: 99th percentile command latency",
    **{
        f"peer_{figure}_{count}_callers": f"peer: {what}, {count} threads of one process"
        for count in (8, 32)
        for figure, what in (
            ("commands_per_s", "commands/s"),
            ("command_p50_ms", "median command latency"),
            ("command_p99_ms", "99th percentile command latency"),
        )
    },
    "peer_deepcopy_commands_per_s": "peer as the library defaults: a deep copy of the cached"
    " aggregate on every load",
    "peer_deepcopy_command_p50_ms": "peer with deep copies: median command latency",
    "peer_deepcopy_command_p99_ms": "peer with deep copies: 99th percentile command latency",
    "peer_projection_events_per_s": "peer: its ProjectionRunner catching up a balance table from"
    " scratch, as the library runs it (a transaction per event)",
    "peer_projection_pg_limit_events_per_s": "peer's projection writes by PostgreSQL alone,"
    " 1,000 events per transaction (our rebuild's batch)",
    "projection_vs_peer_pg_limit": "rebuild_events_per_s / peer_projection_pg_limit_events_per_s",
    "commands_vs_peer": "commands_per_s / peer_commands_per_s",
    **{
        f"scale_{figure}_{size}": f"{what}, {size} events in the log (one store, filled in turn)"
        for size in ("0", "10k", "100k", "1m", "10m")
        for figure, what in (
            ("append_batched_per_s", "events/s in sequential batches of 100, best of 3 rounds"),
            ("server_cpu_us_per_event", "esdblite CPU (all threads) per event so appended"),
            ("read_stream_per_s", "whole reads of a 100-event stream written first, per s"),
            ("read_all_page_per_s", "$all pages of 100 records from the start, per s"),
            ("server_rss_mb", "esdblite server RSS"),
            ("cold_load_ms", "load of a 100-event account, fresh process, no snapshot"),
        )
    },
    "scale_build_s_1m": "seconds of batched appends (500 a batch) to fill the store to 1M",
    "scale_build_s_10m": "seconds of batched appends (500 a batch) to fill the store to 10M",
    **{
        f"applier_events_per_s_{name}": f"the {name} projection alone: applier events/s"
        for name in ("balances", "statements", "daily_totals", "transfers")
    },
    "postgres_rows_per_s": "PostgreSQL alone: statement-sized INSERTs/s, 1,000 a transaction",
    "projection_vs_peer": "rebuild_events_per_s / peer_projection_events_per_s",
    "grpc_append_ceiling_per_s": "esdbclient Append calls/s, one at a time, against a Python"
    " (grpc.aio) server that stores nothing",
    "grpc_batch_append_ceiling_per_s": "esdbclient one-event BatchAppend calls/s, one at a time,"
    " against that Python no-op server",
    "grpc_batch_append_ceiling_p50_ms": "median latency of those calls",
    "grpc_batch_append_ceiling_p99_ms": "99th percentile latency of those calls",
    "single_append_to_ceiling": "esdblite_append_single_per_s / grpc_append_ceiling_per_s",
    "unary_commands_to_ceiling": "unary_commands_per_s / grpc_batch_append_ceiling_per_s (one"
    " call per command against one call to a no-op Python server)",
}

# Ratios of figures, computed once every suite has run, when both figures exist.
RATIOS: dict[str, tuple[str, str]] = {
    "commands_vs_peer": ("commands_per_s", "peer_commands_per_s"),
    "commands_8_callers_to_sequential": ("commands_per_s_8_callers", "commands_per_s"),
    # The same with each process on a core of its own (bench.commands_bench.one_core_each).
    "commands_8_callers_to_sequential_pinned": (
        "commands_per_s_8_callers_pinned",
        "commands_per_s_pinned",
    ),
    "commands_vs_peer_8_callers": ("commands_per_s_8_callers", "peer_commands_per_s_8_callers"),
    "projection_vs_peer": ("rebuild_events_per_s", "peer_projection_events_per_s"),
    "projection_vs_peer_pg_limit": (
        "rebuild_events_per_s",
        "peer_projection_pg_limit_events_per_s",
    ),
    # How close the durable figures come to one call against a no-op Python server.
    "single_append_to_ceiling": ("esdblite_append_single_per_s", "grpc_append_ceiling_per_s"),
    # Only the path of one call per append is bounded by a call's cost; pipelined ones are not.
    "unary_commands_to_ceiling": ("unary_commands_per_s", "grpc_batch_append_ceiling_per_s"),
    # A transfer is five appends; the target is a p50 within 3x a deposit's.
    "transfer_to_deposit_p50": ("transfer_p50_ms", "transfer_deposit_p50_ms"),
}


@dataclass(frozen=True)
class Plot:
    """A PNG written next to latest.json, linked from latest.md."""

    file: str
    title: str
    caption: str


@dataclass
class Run:
    """One benchmark run: its mode, the machine and the figures measured."""

    mode: str
    figures: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    # Measured series for the plots (not written to latest.json, which stays flat).
    series: dict[str, Any] = field(default_factory=dict)
    plots: list[Plot] = field(default_factory=list)
    # Taken when the run starts: by the time results are written, the run's own plots have
    # changed the tree.
    commit: str = field(default_factory=lambda: source_commit())

    def record(self, name: str, value: float, note: str = "") -> None:
        self.figures[name] = round(value, 3)
        if note:
            self.notes[name] = note
        target = TARGETS.get(name)
        verdict = (
            "" if target is None else ("  (target met)" if target.met(value) else "  (MISSED)")
        )
        print(f"  {name:45s} {value:12.3f}{verdict}", file=sys.stderr, flush=True)

    def record_ratios(self) -> None:
        """Record each ratio of RATIOS whose two figures this run measured."""
        for name, (top, bottom) in RATIOS.items():
            if top in self.figures and bottom in self.figures and self.figures[bottom]:
                self.record(name, self.figures[top] / self.figures[bottom])

    def plot_path(self, file: str, title: str, caption: str) -> Path:
        """Where to write a plot; it is linked from latest.md."""
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.plots = [p for p in self.plots if p.file != file] + [Plot(file, title, caption)]
        return RESULTS / file


def machine() -> dict[str, object]:
    """Describe the machine the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def source_commit() -> str:
    """The commit the benchmarked code comes from (`-dirty` if the tree had changes)."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=README.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return done.stdout.strip()


def stop_child(child: subprocess.Popen[Any], name: str, timeout: float = 30.0) -> None:
    """Stop a child process with SIGTERM and wait for it; raise unless it exits cleanly (0).

    A child that dies of a signal (an abort in gRPC's C core is SIGABRT) fails the run instead
    of passing unnoticed; one that does not stop in time is killed and fails it too.
    """
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            raise RuntimeError(f"{name} did not stop within {timeout:g} s of SIGTERM") from None
    if child.returncode != 0:
        raise RuntimeError(f"{name} exited with {child.returncode} instead of 0 on SIGTERM")


def timed_clients(count: int, client: Callable[[int, Callable[[], object]], None]) -> float:
    """Run `count` client threads and time them from a common start: each calls the `ready`
    it is given once set up; the first error of any is raised once all are done."""
    start = threading.Barrier(count + 1)
    errors: list[BaseException] = []

    def body(number: int) -> None:
        try:
            client(number, lambda: start.wait())
        except BaseException as exc:
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    # A client that fails breaks the barrier; its error is raised once every thread is done.
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return elapsed


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) of the samples."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def write_results(run: Run) -> tuple[Path, Path]:
    """Write latest.json (one flat object of figures plus the machine) and latest.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    doc: dict[str, object] = {
        "mode": run.mode,
        "measured_at": stamp,
        "commit": run.commit,
        "machine": machine(),
    }
    doc.update(run.figures)
    json_path = RESULTS / "latest.json"
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        f"# Benchmark results ({run.mode} mode, {stamp})",
        "",
        f"Commit {doc['commit']}. Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()),
        "",
        "| figure | value | target | met | what |",
        "|---|---:|---|---|---|",
    ]
    for name, value in run.figures.items():
        target = TARGETS.get(name)
        met = "" if target is None else ("yes" if target.met(value) else "**no**")
        what = DESCRIPTIONS.get(name, "")
        if name in run.notes:
            what += f" ({run.notes[name]})"
        lines.append(f"| `{name}` | {value:,.3f} | {target or ''} | {met} | {what} |")
    if run.plots:
        lines += ["", "## Plots"]
        for plot in run.plots:
            lines += [
                "",
                f"### {plot.title}",
                "",
                f"![{plot.title}]({plot.file})",
                "",
                plot.caption,
            ]
    # PNGs of earlier runs that this run did not draw would be taken for this run's.
    drawn = {plot.file for plot in run.plots}
    for stale in RESULTS.glob("*.png"):
        if stale.name not in drawn:
            stale.unlink()
    md_path = RESULTS / "latest.md"
    md_path.write_text("\n".join(lines) + "\n")
    if run.mode == "full":
        write_readme_section(json_path)
    return json_path, md_path


def readme_section(doc: dict[str, Any], plots: list[str]) -> str:
    """The README's table of a full run's figures against their targets, and its plots."""
    figures = {k: v for k, v in doc.items() if isinstance(v, int | float)}
    cpus = doc["machine"]["cpus"]
    python = doc["machine"]["python"]
    lines = [
        f"Full run of {doc['measured_at'][:10]} (commit {doc.get('commit', 'not recorded')}) on "
        f"{cpus} cores, Python {python}; every figure with its notes is in "
        "[bench/results/latest.md](bench/results/latest.md).",
        "",
        "| figure | value | target | met |",
        "|---|---:|---|---|",
    ]
    for name, value in figures.items():
        target = TARGETS.get(name)
        met = "" if target is None else ("yes" if target.met(value) else "**no**")
        lines.append(f"| `{name}` | {value:,.3f} | {target or ''} | {met} |")
    for file in plots:
        lines += ["", f"![{file}](bench/results/{file})"]
    return "\n".join(lines)


def write_readme_section(json_path: Path = RESULTS / "latest.json", readme: Path = README) -> None:
    """Put a full run's table and plots between the README's bench-results markers."""
    doc = json.loads(json_path.read_text())
    if doc.get("mode") != "full":
        raise ValueError(f"{json_path} holds a {doc.get('mode')} run; the README shows full runs")
    text = readme.read_text()
    pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {README_BEGIN} … {README_END} markers")
    plots = sorted(p.name for p in json_path.parent.glob("*.png"))
    section = f"{README_BEGIN}\n{readme_section(doc, plots)}\n{README_END}"
    readme.write_text(pattern.sub(lambda _: section, text, count=1))


Benchmark = Callable[[Run, bool], None]
