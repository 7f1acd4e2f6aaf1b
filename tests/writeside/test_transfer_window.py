"""A transfer's step resumed after more postings than the idempotency window holds is found in
the stream, not posted twice (in memory: it takes 10,000 postings)."""

from __future__ import annotations

from ledger.accounts.commands import CommandMeta, PostTransferLeg, TransferStep
from ledger.accounts.window import WINDOW_SIZE
from ledger.handler import CommandHandler
from ledger.memory_store import InMemoryEventStore
from ledger.service import Ledger
from ledger.transfers.commands import RequestTransfer
from ledger.transfers.decider import TransferStatus
from tests.support.clock import Clock

META = CommandMeta(correlation_id="c", causation_id="c", actor="test")


def test_a_debit_posted_before_10000_later_postings_is_found_not_posted_again(
    clock: Clock,
) -> None:
    store = InMemoryEventStore()
    ledger = Ledger(CommandHandler(store), clock=clock, actor="test")
    ledger.open_account("a", "A", "EUR")
    ledger.open_account("b", "B", "EUR")
    ledger.deposit("a", "100", "seed")
    ledger.transfers.request(
        RequestTransfer(
            transfer_id="x1",
            now=clock(),
            from_account="a",
            to_account="b",
            amount=4000,
            currency="EUR",
            from_revision=ledger.account("a").revision,
            to_revision=ledger.account("b").revision,
        )
    )
    # The command posted the debit and died before recording it ...
    ledger.handler.handle(
        PostTransferLeg(
            account_id="a",
            now=clock(),
            meta=META,
            transfer_id="x1",
            step=TransferStep.DEBIT,
            counterparty="b",
            amount=4000,
            currency="EUR",
        )
    )
    # ... and the account moved on by more postings than its window remembers.
    for i in range(WINDOW_SIZE + 5):
        ledger.deposit("a", "0.01", f"later-{i}")
    assert ledger.account("a").window.record("x1/debit") is None

    result = ledger.transfers.run("x1")

    assert result.state.status is TransferStatus.COMPLETED
    debits = [s for s in store.read("a") if getattr(s.event, "transaction_id", "") == "x1/debit"]
    assert len(debits) == 1
    assert ledger.account("a").balance == 10000 - 4000 + WINDOW_SIZE + 5
    assert result.state.from_balance == 6000
