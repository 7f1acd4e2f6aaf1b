"""Concurrent clients in separate processes never overdraw an account and lose no withdrawal."""

from __future__ import annotations

import multiprocessing
import queue
import random
import traceback
from dataclasses import asdict
from multiprocessing.synchronize import Barrier
from typing import Any

from ledger.accounts.events import MoneyDeposited, MoneyWithdrawn, Posting
from ledger.errors import ConcurrencyConflictError, InsufficientFundsError
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.money import format_minor_units
from ledger.service import Ledger
from tests.support.clock import Clock

CLIENTS = 8
ATTEMPTS_PER_CLIENT = 40
FUNDS = 10_000  # 100.00 EUR
MAX_WITHDRAWAL = 300  # 3.00 EUR: the clients together ask for far more than the funds
REPORT_TIMEOUT_S = 120


def withdraw_concurrently(
    uri: str,
    account_id: str,
    client: int,
    start: Barrier,
    reports: multiprocessing.Queue[dict[str, Any]],
) -> None:
    """One client process: its own connection and handler (no cache), many small withdrawals."""
    try:
        store = AccountEventStore.connect(uri)
        # A small snapshot interval makes the clients also load through fresh snapshots.
        handler = CommandHandler(store, cache_size=0, snapshot_every=16)
        ledger = Ledger(handler, clock=Clock(), actor=f"client-{client}")
        rng = random.Random(client)
        succeeded: list[tuple[str, int]] = []
        refused = gave_up = 0
        start.wait(timeout=60)
        for attempt in range(ATTEMPTS_PER_CLIENT):
            amount = rng.randint(1, MAX_WITHDRAWAL)
            transaction_id = f"w-{client}-{attempt}"
            try:
                ledger.withdraw(account_id, format_minor_units(amount, "EUR"), transaction_id)
            except InsufficientFundsError:
                refused += 1
            except ConcurrencyConflictError:
                gave_up += 1
            else:
                succeeded.append((transaction_id, amount))
        store.close()
        reports.put(
            {
                "client": client,
                "succeeded": succeeded,
                "refused": refused,
                "gave_up": gave_up,
                "stats": asdict(handler.stats),
            }
        )
    except BaseException:
        reports.put({"client": client, "error": traceback.format_exc()})


def run_clients(uri: str, account_id: str) -> list[dict[str, Any]]:
    """Start the client processes together and collect one report from each."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(CLIENTS)
    reports: multiprocessing.Queue[dict[str, Any]] = context.Queue()
    processes = [
        context.Process(
            target=withdraw_concurrently, args=(uri, account_id, client, start, reports)
        )
        for client in range(CLIENTS)
    ]
    try:
        for process in processes:
            process.start()
        collected = []
        for _ in processes:
            try:
                collected.append(reports.get(timeout=REPORT_TIMEOUT_S))
            except queue.Empty:
                raise AssertionError("a client process did not report back") from None
        for process in processes:
            process.join(timeout=REPORT_TIMEOUT_S)
            assert process.exitcode == 0
        return collected
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()


def test_concurrent_clients_never_overdraw_and_every_success_is_one_event(
    esdb_uri: str, ledger: Ledger, store: AccountEventStore, account_id: str
) -> None:
    ledger.open_account(account_id, "Concurrent Carla", "EUR", overdraft_limit="0")
    ledger.deposit(account_id, format_minor_units(FUNDS, "EUR"), "funding")

    reports = run_clients(esdb_uri, account_id)

    errors = [r["error"] for r in reports if "error" in r]
    assert not errors, errors[0] if errors else ""
    succeeded = [s for r in reports for s in r["succeeded"]]
    withdrawn_total = sum(amount for _, amount in succeeded)
    stored = store.read(account_id)
    balance = 0
    for item in stored:
        if isinstance(item.event, Posting):
            # Every posting's recorded balance_after is the fold of the events before it ...
            balance += item.event.amount
            assert item.event.balance_after == balance
            # ... and none ever took the balance below minus the overdraft limit (zero).
            assert item.event.balance_after >= 0
    withdrawals = [item.event for item in stored if isinstance(item.event, MoneyWithdrawn)]
    assert sum(isinstance(item.event, MoneyDeposited) for item in stored) == 1
    assert len(withdrawals) == len(succeeded)
    assert sorted((w.transaction_id, -w.amount) for w in withdrawals) == sorted(succeeded)
    assert balance == FUNDS - withdrawn_total
    fresh = CommandHandler(store, cache_size=0, use_snapshots=False).load(account_id)
    assert fresh.balance == FUNDS - withdrawn_total
    assert sum(r["refused"] for r in reports) > 0, "the funds never ran out"
    assert sum(r["stats"]["conflicts"] for r in reports) > 0, "no client ever had to re-decide"
    assert sum(r["stats"]["commands"] for r in reports) == len(succeeded)
