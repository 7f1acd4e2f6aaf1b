"""Rebuild with one process vs one process per projection, on the same events, with the core count.

Both are `rebuild()` in a fresh process: one process applies every projection itself; with
`per_projection` it reads $all once and hands each batch to one applier process per projection
(projections.fanout), then verifies and swaps as the one process does.

`python -m bench.sharding_bench [--full]` runs it alone and prints the figures;
`python -m bench.sharding_bench rebuild <database_url> <uri> [--per-projection]` is one rebuild
(it prints one JSON object).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from psycopg import sql

from bench.harness import Run
from bench.projections_bench import REBUILD_BATCH, ROOT, fill
from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from ledger.writemodel import write_model_fold
from projections.db import connect, migrate
from projections.names import PROJECTION_NAMES
from projections.pgserver import EmbeddedPostgres
from projections.rebuild import rebuild

SHAPES = {"one_process": [], "per_projection": ["--per-projection"]}


def rebuild_in_a_process(database_url: str, uri: str, shape: str) -> dict[str, Any]:
    """One rebuild of every projection in a fresh process; its figures."""
    child = subprocess.run(
        [sys.executable, "-m", "bench.sharding_bench", "rebuild", database_url, uri]
        + SHAPES[shape],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        check=True,
        timeout=3600,
    )
    figures: dict[str, Any] = json.loads(child.stdout)
    return figures


def _rebuild_here(database_url: str, uri: str, per_projection: bool) -> dict[str, Any]:
    store = AccountEventStore.connect(uri)
    try:
        started = time.perf_counter()
        report = rebuild(
            database_url,
            uri,
            write_model_fold(store),
            batch_size=REBUILD_BATCH,
            per_projection=per_projection,
        )
        wall = time.perf_counter() - started
    finally:
        store.close()
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return {
        "events": report.events,
        "build_s": report.seconds,
        "total_s": wall,
        "cpu_s": me.ru_utime + me.ru_stime,
        "appliers_cpu_s": children.ru_utime + children.ru_stime,
    }


def run(results: Run, full: bool) -> None:
    """Write N events, then rebuild every projection in one process, then one per projection."""
    total = 1_000_000 if full else 100_000
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-sharding-") as tmp:
        Path(tmp).chmod(0o711)  # ours: PostgreSQL's user (as root) may pass through to pg/
        server = ServerProcess(Path(tmp) / "esdb").start()
        postgres = EmbeddedPostgres(Path(tmp) / "pg" / "data", owner_dir=Path(tmp) / "pg")
        try:
            postgres.start()
            fill(server.uri, total)
            walls = {}
            for shape in SHAPES:
                name = "sharding_" + shape
                with connect(postgres.url()) as admin:
                    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                url = postgres.url(name)
                with connect(url) as conn:
                    migrate(conn)
                figures = rebuild_in_a_process(url, server.uri, shape)
                walls[shape] = wall = figures["total_s"]
                processes = 1 if shape == "one_process" else 1 + len(PROJECTION_NAMES)
                note = (
                    f"{figures['events']:,} events, {processes} process(es), {cores} cores;"
                    f" build {figures['build_s']:.1f} s, CPU {figures['cpu_s']:.1f} s"
                    f" (+ appliers {figures['appliers_cpu_s']:.1f} s)"
                )
                results.record(f"rebuild_{shape}_s", wall, note)
                results.record(f"rebuild_{shape}_events_per_s", figures["events"] / wall, note)
            results.record(
                "rebuild_per_projection_speedup",
                walls["one_process"] / walls["per_projection"],
                f"one process's wall time / one per projection's (build, verify, swap), {cores}"
                " cores",
            )
            results.record("rebuild_cpu_count", cores, "os.cpu_count() of the machine")
        finally:
            postgres.stop()
            server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["rebuild"]:
        doc = _rebuild_here(sys.argv[2], sys.argv[3], "--per-projection" in sys.argv[4:])
        print(json.dumps(doc))
    else:
        figures = Run(mode="full" if "--full" in sys.argv else "quick")
        run(figures, figures.mode == "full")
