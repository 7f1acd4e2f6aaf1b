"""Transfer figures: latency beside a deposit's in the same run, transfers/s with 8 clients, and
the time the process manager takes to finish 1,000 transfers abandoned after their debit."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.harness import Run, percentile, timed_clients
from bench.workload import fixed_clock, new_account_id
from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from ledger.transfer_manager import TransferManager
from ledger.transfers.commands import RequestTransfer

CLIENTS = 8


def _ledger(store: AccountEventStore, actor: str = "bench:transfers") -> Ledger:
    return Ledger(CommandHandler(store), clock=fixed_clock, actor=actor)


def _funded(ledger: Ledger, count: int) -> list[str]:
    accounts = [new_account_id() for _ in range(count)]
    for account in accounts:
        ledger.open_account(account, "Bench", "EUR")
        ledger.deposit(account, "1000000.00", "fund-" + account)
    return accounts


def latency(results: Run, uri: str, n: int) -> None:
    """Deposits and transfers interleaved over 10 accounts, each timed, in one process."""
    store = AccountEventStore.connect(uri)
    try:
        ledger = _ledger(store)
        accounts = _funded(ledger, 10)
        deposits: list[float] = []
        transfers: list[float] = []
        for i in range(n):
            source, target = accounts[i % 10], accounts[(i + 1) % 10]
            began = time.perf_counter()
            ledger.deposit(source, "1.00", f"d-{source}-{i}")
            deposits.append(time.perf_counter() - began)
            began = time.perf_counter()
            ledger.transfer(source, target, "1.00", f"x-{source}-{i}")
            transfers.append(time.perf_counter() - began)
    finally:
        store.close()
    note = f"{n:,} transfers interleaved with {n:,} deposits over 10 accounts, durable esdblite"
    for name, samples in (("transfer", transfers), ("transfer_deposit", deposits)):
        results.record(f"{name}_p50_ms", percentile(samples, 50) * 1000, note)
        results.record(f"{name}_p99_ms", percentile(samples, 99) * 1000, note)


def concurrent(results: Run, uri: str, n: int) -> None:
    """8 threads, each with its own connection, transferring back and forth between two
    accounts of its own."""
    per_client = n // CLIENTS

    def client(number: int, ready: Callable[[], object]) -> None:
        store = AccountEventStore.connect(uri)
        try:
            ledger = _ledger(store, f"bench:client-{number}")
            a, b = _funded(ledger, 2)
            ready()
            for i in range(per_client):
                source, target = (a, b) if i % 2 == 0 else (b, a)
                ledger.transfer(source, target, "1.00", f"c{number}-{a}-{i}")
        finally:
            store.close()

    elapsed = timed_clients(CLIENTS, client)
    results.record(
        "transfers_per_s_8_clients",
        per_client * CLIENTS / elapsed,
        f"{per_client * CLIENTS:,} transfers, 8 threads, two accounts each",
    )


class _Checkpoint:
    def __init__(self, position: int) -> None:
        self.position = position

    def load(self) -> int:
        return self.position

    def save(self, position: int) -> None:
        self.position = position


def manager(results: Run, uri: str, count: int) -> None:
    """`count` transfers requested and debited, never credited (their command died); then
    the time one process manager pass takes to finish them all."""
    store = AccountEventStore.connect(uri)
    try:
        ledger = _ledger(store)
        start = store.commit_position()
        accounts = _funded(ledger, 20)
        for i in range(count):
            source, target = accounts[i % 20], accounts[(i + 7) % 20]
            tid = f"abandoned-{start}-{i}"
            fields: dict[str, Any] = {"from_account": source, "to_account": target}
            ledger.transfers.request(
                RequestTransfer(
                    transfer_id=tid, now=fixed_clock(), amount=100, currency="EUR", **fields
                )
            )
            ledger.transfers.step(tid)  # the debit, recorded: then the command "dies"
        pm = TransferManager(
            ledger.transfers, store, _Checkpoint(start), clock=fixed_clock, grace=timedelta(0)
        )
        began = time.perf_counter()
        pending = pm.catch_up()
        elapsed = time.perf_counter() - began
    finally:
        store.close()
    if pending or pm.finished != count:
        raise RuntimeError(f"the manager left {pending} pending, finished {pm.finished}")
    results.record(
        "transfer_manager_finish_1000_s" if count == 1000 else f"transfer_manager_finish_{count}_s",
        elapsed,
        f"{count:,} transfers abandoned after their debit, one catch-up pass",
    )


def run(results: Run, full: bool) -> None:
    """Measure the transfer figures on a fresh durable esdblite server."""
    with tempfile.TemporaryDirectory(prefix="bench-transfers-") as tmp:
        server = ServerProcess(Path(tmp) / "data").start()
        try:
            latency(results, server.uri, 2_000 if full else 500)
            concurrent(results, server.uri, 4_000 if full else 800)
            manager(results, server.uri, 1_000)
        finally:
            server.stop()
