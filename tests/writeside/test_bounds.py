"""The balance bound through the Ledger: at the bound accepted, beyond refused, nothing written."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger.errors import BalanceOutOfBoundsError
from ledger.money import MAX_BALANCE
from ledger.service import Ledger
from ledger.store import EventStore
from tests.writeside.stores import make_store as make_store


def test_a_balance_reaches_the_bound_and_no_posting_takes_it_beyond(
    make_ledger: Callable[..., Ledger], store: EventStore, account_id: str
) -> None:
    ledger = make_ledger()
    ledger.open_account(account_id, "Ida", "JPY")
    ledger.deposit(account_id, str(MAX_BALANCE - 1), "t1")
    ledger.withdraw(account_id, "5", "t2")
    at_bound = ledger.deposit(account_id, "6", "t3")
    assert at_bound.balance == MAX_BALANCE
    before = store.read(account_id)

    with pytest.raises(BalanceOutOfBoundsError) as deposit_beyond:
        ledger.deposit(account_id, "1", "t4")
    ledger.withdraw(account_id, "1", "t5")
    with pytest.raises(BalanceOutOfBoundsError):
        ledger.reverse(account_id, "t2", "r1")  # would credit 5 back: one above the bound

    assert "(1000000000000000 JPY)" in str(deposit_beyond.value)
    assert len(store.read(account_id)) == len(before) + 1
    assert ledger.account(account_id).balance == MAX_BALANCE - 1
