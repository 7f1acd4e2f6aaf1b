"""Hostile input through the Python API: InvalidInputError naming the input, nothing written."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from ledger.errors import InvalidInputError
from ledger.service import Ledger
from tests.hostile.support import EUR_ACCOUNT, JPY_ACCOUNT

Unchanged = Callable[..., Callable[[], None]]
FRESH = "fresh-api-account"


def refused(call: Callable[[], Any], mentions: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message
    assert mentions in message.lower(), (mentions, message)


@pytest.mark.parametrize(
    ("account", "amount"),
    [
        (EUR_ACCOUNT, "1e3"),
        (EUR_ACCOUNT, "NaN"),
        (EUR_ACCOUNT, "-5"),
        (EUR_ACCOUNT, "0"),
        (EUR_ACCOUNT, "1_000"),
        (EUR_ACCOUNT, "１００"),
        (EUR_ACCOUNT, " 5"),
        (EUR_ACCOUNT, "5.001"),
        (JPY_ACCOUNT, "1.5"),
        (EUR_ACCOUNT, "10000000000000000"),
        (EUR_ACCOUNT, ""),
        (EUR_ACCOUNT, 5),
        (EUR_ACCOUNT, 5.0),
        (EUR_ACCOUNT, Decimal("5")),
        (EUR_ACCOUNT, None),
    ],
)
@pytest.mark.parametrize("method", ["deposit", "withdraw"])
def test_a_malformed_amount_raises_invalid_input_and_writes_nothing(
    ledger: Ledger, unchanged: Unchanged, method: str, account: str, amount: Any
) -> None:
    check = unchanged()
    refused(lambda: getattr(ledger, method)(account, amount, "api-tx-1"), "amount")
    check()


@pytest.mark.parametrize(
    "account", ["", "a" * 65, "UPPER", "../x", "a b", "ünï", "acc\n", None, 123]
)
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda ledger, a: ledger.deposit(a, "5", "api-tx-2"), id="deposit"),
        pytest.param(lambda ledger, a: ledger.open_account(a, "O", "EUR"), id="open"),
        pytest.param(lambda ledger, a: ledger.account(a), id="account"),
    ],
)
def test_a_malformed_account_id_raises_invalid_input_and_writes_nothing(
    ledger: Ledger, unchanged: Unchanged, account: Any, call: Callable[..., Any]
) -> None:
    check = unchanged()
    refused(lambda: call(ledger, account), "account")
    check()


@pytest.mark.parametrize("tx", ["", "a b", "x" * 65, "tx/../1", "tx\n", None])
def test_a_malformed_transaction_id_raises_invalid_input_and_writes_nothing(
    ledger: Ledger, unchanged: Unchanged, tx: Any
) -> None:
    check = unchanged()
    refused(lambda: ledger.deposit(EUR_ACCOUNT, "5", tx), "transaction")
    check()


@pytest.mark.parametrize("reverses", ["", "a b", None])
def test_a_malformed_reversal_target_raises_invalid_input_and_writes_nothing(
    ledger: Ledger, unchanged: Unchanged, reverses: Any
) -> None:
    check = unchanged()
    refused(lambda: ledger.reverse(EUR_ACCOUNT, reverses, "api-rev-1"), "reverses")
    check()


@pytest.mark.parametrize("currency", ["eur", "XXX", "EURO", "", "€", None])
def test_an_unknown_currency_raises_invalid_input_and_writes_nothing(
    ledger: Ledger, unchanged: Unchanged, currency: Any
) -> None:
    check = unchanged(FRESH)
    refused(lambda: ledger.open_account(FRESH, "O", currency), "currency")
    check()


@pytest.mark.parametrize(
    ("currency", "limit"), [("EUR", "-1"), ("EUR", "1e2"), ("EUR", "10.001"), ("JPY", "0.5")]
)
def test_a_malformed_opening_limit_raises_invalid_input_and_writes_nothing(
    ledger: Ledger, unchanged: Unchanged, currency: str, limit: str
) -> None:
    check = unchanged(FRESH)
    refused(lambda: ledger.open_account(FRESH, "O", currency, limit), "overdraft")
    check()


@pytest.mark.parametrize(
    ("account", "limit"), [(EUR_ACCOUNT, "-5"), (EUR_ACCOUNT, "abc"), (JPY_ACCOUNT, "1.5")]
)
def test_a_malformed_new_limit_raises_invalid_input_and_writes_nothing(
    ledger: Ledger, unchanged: Unchanged, account: str, limit: str
) -> None:
    check = unchanged()
    refused(lambda: ledger.set_overdraft_limit(account, limit), "limit")
    check()


@pytest.mark.parametrize("description", ["x" * 501, "a\x00b", "rtl\u202e", "new\nline", None])
def test_a_malformed_description_raises_invalid_input_and_writes_nothing(
    ledger: Ledger, unchanged: Unchanged, description: Any
) -> None:
    check = unchanged()
    refused(lambda: ledger.deposit(EUR_ACCOUNT, "5", "api-tx-3", description), "description")
    check()


@pytest.mark.parametrize("owner", ["", "   ", "x" * 201, "\x07bell", None])
def test_a_malformed_owner_raises_invalid_input_and_writes_nothing(
    ledger: Ledger, unchanged: Unchanged, owner: Any
) -> None:
    check = unchanged(FRESH)
    refused(lambda: ledger.open_account(FRESH, owner, "EUR"), "owner")
    check()
