"""Rebuild with one process vs one process per projection, on the same events, with the core count.

`python -m bench.sharding_bench [--full]` runs it alone and prints the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from psycopg import sql

from bench.harness import Run
from bench.projections_bench import ROOT, fill
from esdblite.process import ServerProcess
from projections.db import connect, migrate
from projections.names import PROJECTION_NAMES
from projections.pgserver import EmbeddedPostgres

REBUILD = [sys.executable, "-m", "bench.projections_bench", "rebuild"]


def rebuild_processes(database_url: str, uri: str, groups: list[list[str]]) -> tuple[float, int]:
    """Rebuild each group of projections in a process of its own, all at once: (wall s, events
    the slowest group read)."""
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            [*REBUILD, database_url, uri, ",".join(group)], cwd=ROOT, stdout=subprocess.PIPE
        )
        for group in groups
    ]
    outputs = [child.communicate(timeout=3600)[0] for child in children]
    wall = time.perf_counter() - started
    if any(child.returncode for child in children):
        raise RuntimeError(f"a rebuild process failed: {[c.returncode for c in children]}")
    return wall, max(int(json.loads(out)["events"]) for out in outputs)


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
            for shape, groups in (
                ("one_process", [list(PROJECTION_NAMES)]),
                ("per_projection", [[name] for name in PROJECTION_NAMES]),
            ):
                name = "sharding_" + shape
                with connect(postgres.url()) as admin:
                    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                url = postgres.url(name)
                with connect(url) as conn:
                    migrate(conn)
                wall, events = rebuild_processes(url, server.uri, groups)
                walls[shape] = wall
                note = f"{events:,} events, {len(groups)} process(es), {cores} cores"
                results.record(f"rebuild_{shape}_s", wall, note)
                results.record(f"rebuild_{shape}_events_per_s", events / wall, note)
            results.record(
                "rebuild_per_projection_speedup",
                walls["one_process"] / walls["per_projection"],
                f"one process's wall time / one per projection's, {cores} cores",
            )
            results.record("rebuild_cpu_count", cores, "os.cpu_count() of the machine")
        finally:
            postgres.stop()
            server.stop()


if __name__ == "__main__":
    figures = Run(mode="full" if "--full" in sys.argv else "quick")
    run(figures, figures.mode == "full")
