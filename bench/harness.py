"""The benchmark harness: figures, targets, the machine description and the results files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RESULTS = Path(__file__).parent / "results"


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
    "commands_per_s_8_clients": "8 concurrent clients on distinct accounts",
    "load_ms_10": "load an account of 10 events, fresh process, cache off",
    "load_ms_1000": "load an account of 1,000 events",
    "load_ms_100k_snapshots": "load a 100k-event account through its snapshot",
    "load_ms_100k_no_snapshots": "load a 100k-event account by full replay",
    "load_100k_snapshots_to_10_ratio": "load_ms_100k_snapshots / load_ms_10",
}


@dataclass
class Run:
    """One benchmark run: its mode, the machine and the figures measured."""

    mode: str
    figures: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def record(self, name: str, value: float, note: str = "") -> None:
        self.figures[name] = round(value, 3)
        if note:
            self.notes[name] = note
        target = TARGETS.get(name)
        verdict = (
            "" if target is None else ("  (target met)" if target.met(value) else "  (MISSED)")
        )
        print(f"  {name:45s} {value:12.3f}{verdict}", file=sys.stderr, flush=True)


def machine() -> dict[str, object]:
    """Describe the machine the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) of the samples."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def write_results(run: Run) -> tuple[Path, Path]:
    """Write latest.json (one flat object of figures plus the machine) and latest.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    doc: dict[str, object] = {"mode": run.mode, "measured_at": stamp, "machine": machine()}
    doc.update(run.figures)
    json_path = RESULTS / "latest.json"
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        f"# Benchmark results ({run.mode} mode, {stamp})",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()),
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
    md_path = RESULTS / "latest.md"
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


Benchmark = Callable[[Run, bool], None]
