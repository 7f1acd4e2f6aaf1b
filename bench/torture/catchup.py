"""After the clients: bring the services back, let the runner catch up, then run every check."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg

from bench.torture.checks import check_commands, check_streams, unknown_outcomes
from bench.torture.model_checks import check_read_models
from bench.torture.reading import TransferRecord, read_models, read_streams, read_transfers
from bench.torture.report import Report
from bench.torture.schedule import ESDB
from bench.torture.services import Services, log_tail
from bench.torture.transfer_checks import check_money_in_flight, check_transfers
from ledger.eventstore import AccountEventStore
from ledger.transfers.decider import TransferState, evolve_transfer, initial_transfer_state
from ledger.writemodel import write_model_fold
from projections.consistency import wait_for_position
from projections.verify import verify

CATCH_UP_TIMEOUT = 120.0


def check_everything(
    services: Services, records: Sequence[Mapping[str, Any]], report: Report
) -> list[str]:
    """Bring both services back, let the runner catch up, then run every check."""
    if services.esdb.proc is None or services.esdb.proc.poll() is not None:
        services.restart(ESDB)
    if services.runner is None or services.runner.poll() is not None:
        services.start_runner()
    # The runner's process manager finishes the transfers whose clients gave up on them.
    transfers = _settled_transfers(services.eventstore_uri)
    streams = read_streams(services.eventstore_uri)
    report.events = sum(len(s) for s in streams.values())
    report.unknown = unknown_outcomes(streams, records)
    found = check_streams(streams) + check_commands(streams, records)
    found += check_money_in_flight(streams, transfers) + check_transfers(transfers, records)
    head = max(
        max((e.position for s in streams.values() for e in s), default=0),
        max((t.position for t in transfers), default=0),
    )
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        if not _caught_up(conn, head):
            return [
                *found,
                f"catch-up: the projections did not reach position {head} within "
                f"{CATCH_UP_TIMEOUT:g}s; runner log: {log_tail(services.work / 'runner.log')}",
            ]
        found += check_read_models(streams, read_models(conn), transfers)
        store = AccountEventStore.connect(services.eventstore_uri)
        try:
            found += [f"verify(): {v}" for v in verify(conn, write_model_fold(store))]
        finally:
            store.close()
    return found + _cli_verify(services)


def _settled_transfers(uri: str) -> list[TransferRecord]:
    """The transfer events once every transfer is final (or the deadline passed)."""
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while True:
        transfers = read_transfers(uri)
        states: dict[str, TransferState] = {}
        for t in transfers:
            states[t.transfer_id] = evolve_transfer(
                states.get(t.transfer_id, initial_transfer_state), t.event
            )
        if all(s.final for s in states.values()) or time.monotonic() > deadline:
            return transfers
        time.sleep(0.2)


def _caught_up(conn: psycopg.Connection[Any], head: int) -> bool:
    """Wait for every projection to reach `head`; tables not created yet mean "not yet"."""
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while (remaining := deadline - time.monotonic()) > 0:
        with contextlib.suppress(psycopg.errors.UndefinedTable):
            return wait_for_position(conn, head, timeout=remaining)
        time.sleep(0.1)
    return False


def ledger_command() -> list[str]:
    """The installed `ledger` entry point next to this interpreter, else `python -m cli.main`."""
    installed = Path(sys.executable).with_name("ledger")
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "cli.main"]


def _cli_verify(services: Services) -> list[str]:
    result = subprocess.run(
        [*ledger_command(), "verify", "--json"],
        env=services.cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        return [
            f"ledger verify: exit {result.returncode}: {result.stdout.strip()[:600]} "
            f"{result.stderr.strip()[:600]}"
        ]
    return []
