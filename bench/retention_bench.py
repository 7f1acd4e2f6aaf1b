"""Bytes stored per posting, with and without snapshot retention (`$maxCount` 2 + a scavenge).

One busy account takes 100,000 postings on a durable esdblite, through the ledger's own adapter:
the events in appends of 500, and after each the account's snapshot, as the command handler
writes one every 500 events. The data directory's disk usage is measured, then the node is
stopped and scavenged offline, and measured again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.harness import Run
from bench.workload import NOW, new_account_id
from esdblite.maintenance import disk_usage, scavenge_offline
from esdblite.process import ServerProcess
from ledger.accounts.commands import CommandMeta, Deposit, OpenAccount, Withdraw
from ledger.accounts.decider import decide, evolve, initial_state
from ledger.accounts.snapshot import state_to_snapshot
from ledger.eventstore import AccountEventStore

SNAPSHOT_EVERY = 500  # the command handler's default
META = CommandMeta(correlation_id="bench", causation_id="bench", actor="bench:retention")


def write_postings(store: AccountEventStore, postings: int) -> None:
    """Open one account and post `postings` times, with a snapshot every 500 events."""
    account_id = new_account_id()
    common: dict[str, Any] = {"account_id": account_id, "now": NOW, "meta": META}
    state = initial_state
    batch = []
    revision = -1
    for i in range(postings + 1):
        command = (
            OpenAccount(owner="Bench", currency="EUR", **common)
            if i == 0
            else Withdraw(amount="3.00", transaction_id=f"t-{i}", **common)
            if i % 3 == 0
            else Deposit(amount=f"{i % 90 + 10}.25", transaction_id=f"t-{i}", **common)
        )
        for event in decide(command, state):
            batch.append(event)
            state = evolve(state, event)
        if len(batch) >= SNAPSHOT_EVERY or i == postings:
            store.append(account_id, expected_revision=revision, events=batch, meta=META)
            revision += len(batch)
            batch = []
            if (revision + 1) % SNAPSHOT_EVERY == 0:
                store.write_snapshot(account_id, state_to_snapshot(state))


def run(results: Run, full: bool) -> None:
    """Record bytes_per_posting_no_retention and bytes_per_posting_retention."""
    postings = 100_000
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmp:
        data = Path(tmp) / "data"
        server = ServerProcess(data).start()
        try:
            store = AccountEventStore.connect(server.uri)
            try:
                write_postings(store, postings)
            finally:
                store.close()
        finally:
            server.stop()
        before = disk_usage(data)
        _, _, after = scavenge_offline(data)
    note = f"{postings:,} postings on one account, a snapshot every {SNAPSHOT_EVERY}"
    results.record("bytes_per_posting_no_retention", before / postings, note)
    results.record(
        "bytes_per_posting_retention", after / postings, note + ", $maxCount 2 + scavenge"
    )
