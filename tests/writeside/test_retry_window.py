"""How long a retry with the same transaction id is safe: until WINDOW_SIZE later postings."""

from __future__ import annotations

from ledger.accounts.commands import CommandMeta
from ledger.accounts.events import MoneyDeposited
from ledger.accounts.window import WINDOW_SIZE
from ledger.handler import CommandHandler
from ledger.memory_store import InMemoryEventStore
from ledger.service import Ledger
from tests.support.clock import T0, Clock

ACCOUNT = "acc-window"
META = CommandMeta(correlation_id="corr-w", causation_id="cause-w", actor="test:window")


def _later_postings(store: InMemoryEventStore, ledger: Ledger, count: int) -> None:
    """Append `count` deposits of 0.01 after the account's last event, in one append."""
    state = ledger.account(ACCOUNT)
    revision, balance = state.revision, state.balance
    events = []
    for n in range(count):
        balance += 1
        events.append(
            MoneyDeposited(
                account_id=ACCOUNT,
                transaction_id=f"later-{revision + n}",
                amount=1,
                currency="EUR",
                description="",
                balance_after=balance,
                occurred_at=T0,
            )
        )
    store.append(ACCOUNT, expected_revision=revision, events=events, meta=META)


def test_a_retry_is_a_replay_until_the_window_size_of_later_postings_then_posts_again() -> None:
    assert WINDOW_SIZE == 10_000  # the number the CLI's retry hint and the README promise
    store = InMemoryEventStore()
    ledger = Ledger(CommandHandler(store, cache_size=0), clock=Clock(), actor="test:window")
    ledger.open_account(ACCOUNT, "Ida", "EUR")
    first = ledger.deposit(ACCOUNT, "10.00", "t1")

    _later_postings(store, ledger, WINDOW_SIZE - 1)
    inside = ledger.deposit(ACCOUNT, "10.00", "t1")

    assert inside.replayed is True
    assert (inside.revision, inside.balance) == (first.revision, first.balance)

    _later_postings(store, ledger, 1)  # the WINDOW_SIZE-th later posting: t1 leaves the window
    beyond = ledger.deposit(ACCOUNT, "10.00", "t1")

    assert beyond.replayed is False
    assert beyond.revision == first.revision + WINDOW_SIZE + 1
    assert beyond.balance == 1000 + WINDOW_SIZE + 1000
    posted = [s for s in store.read(ACCOUNT) if getattr(s.event, "transaction_id", "") == "t1"]
    assert len(posted) == 2
