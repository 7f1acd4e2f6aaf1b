"""Transfers through the Ledger and the transfer process, on each event store."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from ledger.accounts.commands import CommandMeta, PostTransferLeg, TransferStep, make_command
from ledger.accounts.events import TRANSFER_KINDS, Posting
from ledger.currency import format_amount
from ledger.errors import (
    AccountClosedError,
    BalanceOutOfBoundsError,
    CurrencyMismatchError,
    InsufficientFundsError,
    SameAccountError,
    TransferConflictError,
)
from ledger.handler import CommandHandler
from ledger.memory_store import InMemoryEventStore
from ledger.money import MAX_BALANCE
from ledger.service import Ledger
from ledger.store import EventStore
from ledger.transfer_store import StoredTransferEvent
from ledger.transfers.commands import RecordRejection, RequestTransfer
from ledger.transfers.decider import TransferStatus, decide_transfer
from tests.support.clock import Clock
from tests.support.ids import new_account_id
from tests.writeside.stores import make_store as make_store

META = CommandMeta(correlation_id="c", causation_id="c", actor="test")


def accounts(ledger: Ledger, *balances: str, currency: str = "EUR") -> list[str]:
    ids = []
    for i, balance in enumerate(balances):
        account_id = new_account_id()
        ledger.open_account(account_id, f"Owner {i}", currency)
        if balance != "0":
            ledger.deposit(account_id, balance, f"seed-{account_id}")
        ids.append(account_id)
    return ids


def balance(ledger: Ledger, account_id: str) -> int:
    return ledger.account(account_id).balance


def test_a_transfer_moves_the_money_and_completes_before_returning(ledger: Ledger) -> None:
    a, b = accounts(ledger, "100", "0")

    outcome = ledger.transfer(a, b, "30.00", "x-" + a, "rent")

    assert (outcome.state.status, outcome.replayed, outcome.state.from_balance) == (
        TransferStatus.COMPLETED,
        False,
        7000,
    )
    assert (balance(ledger, a), balance(ledger, b)) == (7000, 3000)
    posting = ledger.account(b).window.record("x-" + a + "/credit")
    assert posting is not None and outcome.commit_position > 0


def test_the_same_transfer_again_is_a_replay_and_moves_nothing(ledger: Ledger) -> None:
    a, b = accounts(ledger, "100", "0")
    first = ledger.transfer(a, b, "30", "x-" + a, "rent")

    again = ledger.transfer(a, b, "30.00", "x-" + a, "rent")

    assert (again.replayed, again.state.status, again.commit_position) == (
        True,
        TransferStatus.COMPLETED,
        first.commit_position,
    )
    assert (balance(ledger, a), balance(ledger, b)) == (7000, 3000)
    with pytest.raises(TransferConflictError):
        ledger.transfer(a, b, "31", "x-" + a, "rent")


def test_insufficient_funds_reject_the_transfer_with_the_withdrawal_s_arithmetic(
    ledger: Ledger,
) -> None:
    a, b = accounts(ledger, "10", "0")

    with pytest.raises(InsufficientFundsError) as refused:
        ledger.transfer(a, b, "25", "x-" + a)

    assert refused.value.shortfall == 1500
    assert ledger.transfer_state("x-" + a).status is TransferStatus.REJECTED
    assert (balance(ledger, a), balance(ledger, b)) == (1000, 0)
    again = ledger.transfer(a, b, "25", "x-" + a)  # a replay answers the state, without error
    assert (again.replayed, again.state.status) == (True, TransferStatus.REJECTED)


def test_accounts_of_two_currencies_are_refused_and_nothing_is_written(ledger: Ledger) -> None:
    (a,) = accounts(ledger, "10")
    (b,) = accounts(ledger, "0", currency="USD")

    with pytest.raises(CurrencyMismatchError, match="USD"):
        ledger.transfer(a, b, "1", "x-" + a)

    assert ledger.transfers.load("x-" + a)[0].status is TransferStatus.NEW


def test_a_transfer_to_the_same_account_is_invalid(ledger: Ledger) -> None:
    (a,) = accounts(ledger, "10")
    with pytest.raises(SameAccountError):
        ledger.transfer(a, a, "1", "x-" + a)


def test_a_closed_destination_is_refused_before_anything_is_written(ledger: Ledger) -> None:
    a, b = accounts(ledger, "10", "0")
    ledger.close_account(b)
    with pytest.raises(AccountClosedError):
        ledger.transfer(a, b, "1", "x-" + a)
    assert ledger.transfers.load("x-" + a)[0].status is TransferStatus.NEW


def test_a_destination_closed_between_debit_and_credit_gets_the_debit_refunded(
    ledger: Ledger, clock: Clock
) -> None:
    a, b = accounts(ledger, "100", "0")
    tid = "x-" + a
    request = make_command(
        RequestTransfer,
        {
            "transfer_id": tid,
            "now": clock(),
            "from_account": a,
            "to_account": b,
            "amount": 4000,
            "currency": "EUR",
        },
    )
    ledger.transfers.request(request)
    ledger.transfers.step(tid)  # the debit
    assert ledger.transfer_state(tid).in_transit == 4000
    ledger.close_account(b)

    result = ledger.transfers.run(tid)

    assert (result.state.status, result.state.refunded) == (TransferStatus.FAILED, True)
    assert isinstance(result.refusal, AccountClosedError)
    assert (balance(ledger, a), balance(ledger, b)) == (10000, 0)
    assert ledger.transfer(a, b, "40", tid).state.status is TransferStatus.FAILED


def test_a_debit_posted_after_a_rejection_was_recorded_is_refunded(
    ledger: Ledger, clock: Clock
) -> None:
    """The race of two processes: one saw the funds missing and recorded the rejection, the
    other saw a deposit that had just arrived and debited."""
    a, b = accounts(ledger, "10", "0")
    tid = "x-" + a
    fields = {"transfer_id": tid, "now": clock(), "from_account": a, "to_account": b}
    ledger.transfers.request(
        make_command(RequestTransfer, {**fields, "amount": 1500, "currency": "EUR"})
    )
    rejection = RecordRejection(transfer_id=tid, now=clock(), reason="insufficient funds")
    state = ledger.transfer_state(tid)
    ledger.transfers.store.append_transfer(
        tid, expected_revision=0, events=decide_transfer(rejection, state), meta=META
    )
    ledger.deposit(a, "10", "late-deposit")
    leg = {"account_id": a, "now": clock(), "meta": META, "transfer_id": tid, "counterparty": b}
    ledger.handler.handle(
        make_command(
            PostTransferLeg,
            {**leg, "step": TransferStep.DEBIT, "amount": 1500, "currency": "EUR"},
        )
    )
    assert balance(ledger, a) == 500

    result = ledger.transfers.run(tid)

    assert (result.state.status, result.state.refunded) == (TransferStatus.REJECTED, True)
    assert (balance(ledger, a), balance(ledger, b)) == (2000, 0)


def test_processes_racing_on_one_transfer_post_each_step_once(
    make_ledger: Callable[..., Ledger], store: EventStore
) -> None:
    ledgers = [make_ledger() for _ in range(4)]
    a, b = accounts(ledgers[0], "100", "0")
    tid = "x-" + a
    errors: list[BaseException] = []

    def transfer(ledger: Ledger) -> None:
        try:
            ledger.transfer(a, b, "30", tid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=transfer, args=(x,)) for x in ledgers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert (balance(ledgers[0], a), balance(ledgers[0], b)) == (7000, 3000)
    assert ledgers[0].transfer_state(tid).status is TransferStatus.COMPLETED
    assert len(store.read(a)) == 3 and len(store.read(b)) == 2


def test_concurrent_transfers_among_hot_accounts_conserve_money(
    make_ledger: Callable[..., Ledger], store: EventStore
) -> None:
    ledgers = [make_ledger() for _ in range(4)]
    hot = accounts(ledgers[0], "50", "50", "50")
    errors: list[BaseException] = []

    def client(n: int, ledger: Ledger) -> None:
        for i in range(15):
            src, dst = hot[(n + i) % 3], hot[(n + i + 1) % 3]
            try:
                if i % 5 == 0:
                    ledger.deposit(src, "3", f"d-{src}-{n}-{i}")
                elif i % 7 == 0:
                    ledger.withdraw(dst, "2", f"w-{dst}-{n}-{i}")
                else:
                    ledger.transfer(src, dst, "7", f"x-{hot[0]}-{n}-{i}")
            except InsufficientFundsError:
                pass
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(n, x)) for n, x in enumerate(ledgers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    external = sum(
        stored.event.amount
        for account_id in hot
        for stored in store.read(account_id)
        if isinstance(stored.event, Posting) and stored.event.kind not in TRANSFER_KINDS
    )
    assert sum(balance(ledgers[0], x) for x in hot) == external


def bound_case(ledger: Ledger, clock: Clock) -> tuple[str, str, str]:
    """a: 100.00; b: 10.00 below the balance bound; transfer x of 40.00 requested and debited."""
    a, b = accounts(ledger, "100", "0")
    ledger.deposit(b, format_amount(MAX_BALANCE - 1000, "EUR"), "near-the-bound")
    tid = "x-" + a
    request = {"transfer_id": tid, "now": clock(), "from_account": a, "to_account": b}
    ledger.transfers.request(
        make_command(RequestTransfer, {**request, "amount": 4000, "currency": "EUR"})
    )
    ledger.transfers.step(tid)  # the debit
    return a, b, tid


def test_a_credit_over_the_balance_bound_is_refunded_and_the_transfer_fails_with_the_reason(
    ledger: Ledger, clock: Clock
) -> None:
    a, b, tid = bound_case(ledger, clock)

    result = ledger.transfers.run(tid)

    assert (result.state.status, result.state.refunded) == (TransferStatus.FAILED, True)
    assert isinstance(result.refusal, BalanceOutOfBoundsError)
    assert "bound" in ledger.transfer_state(tid).reason
    assert (balance(ledger, a), balance(ledger, b)) == (10000, MAX_BALANCE - 1000)
    assert ledger.transfer_state(tid).in_transit == 0


def test_a_credit_that_got_through_after_its_refusal_completes_the_transfer_not_a_refund(
    ledger: Ledger, clock: Clock
) -> None:
    """The race of two processes: one recorded the refusal over the bound, the other credited
    just after the destination's balance went down."""
    a, b, tid = bound_case(ledger, clock)
    step = ledger.transfers.step(tid)  # the credit refused over the bound, recorded
    assert step.state.status is TransferStatus.CREDIT_REFUSED
    ledger.withdraw(b, "100", "makes-room")
    leg = {"account_id": b, "now": clock(), "meta": META, "transfer_id": tid, "counterparty": a}
    ledger.handler.handle(
        make_command(
            PostTransferLeg,
            {**leg, "step": TransferStep.CREDIT, "amount": 4000, "currency": "EUR"},
        )
    )

    result = ledger.transfers.run(tid)

    assert (result.state.status, result.state.refunded) == (TransferStatus.COMPLETED, False)
    assert (balance(ledger, a), balance(ledger, b)) == (6000, MAX_BALANCE - 1000 - 10000 + 4000)


class CountingStore(InMemoryEventStore):
    """The in-memory store, counting the reads of transfer streams."""

    def __init__(self) -> None:
        super().__init__()
        self.transfer_reads = 0

    def read_transfer(self, transfer_id: str) -> list[StoredTransferEvent]:
        self.transfer_reads += 1
        return super().read_transfer(transfer_id)


def test_a_new_transfer_is_requested_without_reading_its_stream_first(clock: Clock) -> None:
    store = CountingStore()
    ledger = Ledger(CommandHandler(store), clock=clock, actor="test")
    a, b = accounts(ledger, "100", "0")

    outcome = ledger.transfer(a, b, "30", "x-" + a)
    again = ledger.transfer(a, b, "30", "x-" + a)  # the same clock reading: still a replay

    assert (outcome.replayed, again.replayed) == (False, True)
    assert store.transfer_reads == 1  # the replay's, after its request met "no stream"
