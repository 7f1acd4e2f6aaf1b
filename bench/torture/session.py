"""One torture run: services up, clients under the fault schedule, then the checks."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.torture.catchup import check_everything
from bench.torture.clients import client_exits, open_accounts, start_clients, stop_clients
from bench.torture.faults import inject_faults
from bench.torture.report import Report, write_artifacts
from bench.torture.schedule import Config
from bench.torture.services import Services


def run(config: Config, *, artifacts_root: Path | None = None, progress: bool = False) -> Report:
    """Run the clients under the fault schedule, then check everything; never raises on a find."""
    work = Path(tempfile.mkdtemp(prefix="torture-"))
    work.chmod(0o711)  # ours: PostgreSQL's user (as root) may pass through to work/pg
    try:
        return _run(config, work, artifacts_root, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(config: Config, work: Path, artifacts_root: Path | None, progress: bool) -> Report:
    started = time.monotonic()
    report = Report(config)
    schedule = config.faults()
    records: list[dict[str, Any]] = []
    services = Services(work)
    try:
        services.start()
        open_accounts(services.eventstore_uri)
        counter, stop, clients = start_clients(config, services.client_uri, work)
        deadline = time.monotonic() + max(240.0, config.ops / 15)
        try:
            report.fault_log = inject_faults(
                services, schedule, counter, clients, deadline, progress
            )
        finally:
            stop_clients(stop, clients)
        report.operations = int(counter.value)
        for path in sorted(work.glob("ops-c*.jsonl")):
            records += _read_jsonl(path)
        report.faults = Counter(f.kind for f in report.fault_log)
        planned = Counter(f.kind for f in schedule)
        if report.faults != planned:
            report.violations.append(
                f"harness: faults injected {dict(report.faults)}, scheduled {dict(planned)}"
            )
        report.violations += services.problems
        report.violations += client_exits(clients)
        report.violations += check_everything(services, records, report)
    except Exception as exc:
        report.violations.append(f"harness: the run failed: {type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            services.stop()
    report.results = Counter(r["result"] for r in records)
    report.commands = Counter(_command_kind(r) for r in records)
    report.seconds = time.monotonic() - started
    if report.violations:
        report.artifacts = write_artifacts(config, schedule, report, records, work, artifacts_root)
    return report


def _command_kind(record: Mapping[str, Any]) -> str:
    for flag in ("duplicate", "conflicting", "retry", "hostile"):
        if record.get(flag):
            return f"{flag} {record['cmd']['kind']}"
    return str(record["cmd"]["kind"])


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records
