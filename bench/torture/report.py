"""What a run did and found: the summary it prints, and the files a failed run leaves to replay."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.torture.schedule import FAULT_KINDS, FAULT_NAMES, Config, Fault, FaultRecord


@dataclass
class Report:
    """What a torture run did and found."""

    config: Config
    operations: int = 0
    results: Counter[str] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    fault_log: list[FaultRecord] = field(default_factory=list)
    events: int = 0
    unknown: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    artifacts: Path | None = None

    def summary(self) -> str:
        """The lines the entry point prints: figures, faults and the first violations."""
        kinds = ", ".join(f"{FAULT_NAMES[k]} x{self.faults[k]}" for k in FAULT_KINDS)
        results = ", ".join(f"{k} {v}" for k, v in sorted(self.results.items()))
        lines = [
            f"torture run (seed {self.config.seed}, {self.config.clients} clients): "
            f"{self.operations:,} operations in {self.seconds:.1f}s",
            f"  outcomes: {results}",
            f"  commands: {', '.join(f'{k} {v}' for k, v in sorted(self.commands.items()))}",
            f"  events stored: {self.events:,}",
            f"  commands with an unknown outcome: "
            f"{', '.join(f'{k} {v}' for k, v in sorted(self.unknown.items())) or 'none'}",
            f"  faults injected: {kinds}",
            f"  violations found: {len(self.violations)}",
        ]
        lines += [f"    - {v}" for v in self.violations[:20]]
        if self.artifacts:
            lines.append(f"  fault schedule and operation log: {self.artifacts}")
        return "\n".join(lines)


def write_artifacts(
    config: Config,
    schedule: Sequence[Fault],
    report: Report,
    records: Sequence[Mapping[str, Any]],
    work: Path,
    root: Path | None,
) -> Path:
    """Write the run's configuration, faults, operations, violations and logs for a replay."""
    base = root or Path(os.environ.get("TORTURE_ARTIFACTS") or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix=f"torture-seed{config.seed}-", dir=base))
    run_doc = {
        "ops": config.ops,
        "clients": config.clients,
        "seed": config.seed,
        "kills_per_kind": config.kills_per_kind,
        "schedule": [asdict(f) for f in schedule],
        "replay": f"python -m bench.torture --replay {target / 'run.json'}",
    }
    (target / "run.json").write_text(json.dumps(run_doc, indent=2) + "\n")
    (target / "faults.json").write_text(
        json.dumps([asdict(f) for f in report.fault_log], indent=2) + "\n"
    )
    ordered = sorted(records, key=lambda r: r["op"])
    (target / "operations.json").write_text(
        json.dumps(ordered, ensure_ascii=False, indent=1) + "\n"
    )
    (target / "violations.json").write_text(json.dumps(report.violations, indent=2) + "\n")
    for log in ("runner.log", "esdblite.log", "pg/postgres.log"):
        with contextlib.suppress(OSError):
            shutil.copy(work / log, target / Path(log).name)
    return target


def load_replay(path: Path) -> Config:
    """The configuration and fault schedule of an earlier run (its run.json)."""
    doc = json.loads(path.read_text())
    return Config(
        ops=doc["ops"],
        clients=doc["clients"],
        seed=doc["seed"],
        kills_per_kind=doc["kills_per_kind"],
        schedule=tuple(Fault(**f) for f in doc["schedule"]),
    )
