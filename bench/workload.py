"""The benchmarks' shared workload: a fixed clock, new account ids and the command schedule."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Protocol

from bench.harness import timed_clients

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Bank(Protocol):
    """What the command schedule drives: the ledger's Ledger, or the peer's bank."""

    def open_account(self, account_id: str, owner: str, currency: str) -> object: ...

    def deposit(self, account_id: str, amount: str, transaction_id: str) -> object: ...

    def withdraw(self, account_id: str, amount: str, transaction_id: str) -> object: ...


def fixed_clock() -> datetime:
    """The benchmarks' clock: always NOW."""
    return NOW


def new_account_id(prefix: str = "bench") -> str:
    """A fresh account id of the benchmarks."""
    return f"{prefix}-{uuid.uuid4().hex}"


def open_accounts(bank: Bank, count: int) -> list[str]:
    """Open `count` new EUR accounts for a run of commands."""
    accounts = [new_account_id() for _ in range(count)]
    for account in accounts:
        bank.open_account(account, "Bench", "EUR")
    return accounts


def run_commands(bank: Bank, accounts: list[str], n: int, prefix: str) -> Iterator[float]:
    """Run n deposits and withdrawals round-robin over the accounts; yield each latency (s)."""
    for i in range(n):
        account = accounts[i % len(accounts)]
        start = time.perf_counter()
        # Each account sees deposit, deposit, withdrawal, ... so it never runs out of funds.
        if (i // len(accounts)) % 3 == 2:
            bank.withdraw(account, "3.00", f"{prefix}-{i}")
        else:
            bank.deposit(account, "5.25", f"{prefix}-{i}")
        yield time.perf_counter() - start


def run_callers(
    banks: list[Bank], accounts: list[list[str]], n: int, prefix: str
) -> tuple[list[float], float]:
    """Caller i runs n // len(banks) commands on banks[i] and accounts[i], all callers in threads
    started together; every latency (s), and the wall time from the start to the last one."""
    count = len(banks)
    latencies: list[list[float]] = [[] for _ in range(count)]

    def caller(i: int, ready: Callable[[], object]) -> None:
        ready()
        latencies[i].extend(run_commands(banks[i], accounts[i], n // count, f"{prefix}-{i}"))

    elapsed = timed_clients(count, caller)
    return [latency for own in latencies for latency in own], elapsed
