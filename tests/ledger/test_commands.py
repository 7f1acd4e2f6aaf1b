"""Command validation: ids, texts, currency, time, metadata and one-sentence error messages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from ledger.accounts.commands import Deposit, describe_validation_error, make_command
from ledger.errors import InvalidInputError
from tests.ledger.scenario import META, NOW, deposit, open_account


def _deposit_fields(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "account_id": "acc-1",
        "amount": "5.00",
        "transaction_id": "tx-1",
        "description": "",
        "now": NOW,
        "meta": META,
    }
    return values | fields


def _problem(command_type: type[Any], fields: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        command_type(**fields)
    return describe_validation_error(caught.value)


@pytest.mark.parametrize("account_id", ["a", "acc-1", "savings_2024", "0" * 64])
def test_valid_account_ids(account_id: str) -> None:
    assert deposit("5", "t1", account_id=account_id).account_id == account_id


@pytest.mark.parametrize(
    "account_id",
    ["", "a" * 65, "Acc-1", "../x", "a b", "a.b", "a/b", "café", "acc-1\n", " acc", "acc\x00"],
)
def test_invalid_account_ids(account_id: str) -> None:
    message = _problem(Deposit, _deposit_fields(account_id=account_id))
    assert message.startswith("account id ")  # no internal field name (issue 16)


@pytest.mark.parametrize("transaction_id", ["t", "TX:2024-05-01.a_B", "x" * 64])
def test_valid_transaction_ids(transaction_id: str) -> None:
    assert deposit("5", transaction_id).transaction_id == transaction_id


@pytest.mark.parametrize(
    "transaction_id", ["", "x" * 65, "../x", "a b", "tx#1", "tëst", "tx\t1", "tx\u200b"]
)
def test_invalid_transaction_ids(transaction_id: str) -> None:
    message = _problem(Deposit, _deposit_fields(transaction_id=transaction_id))
    assert message.startswith("transaction id ")  # no internal field name (issue 16)


@pytest.mark.parametrize("owner", ["A", "Zoë O'Brien-Łukasz", "李雷", "x" * 200, " Alice "])
def test_valid_owners_are_kept_exactly(owner: str) -> None:
    assert open_account(owner=owner).owner == owner


@pytest.mark.parametrize(
    "owner", ["", "   ", "x" * 201, "Al\x00ice", "Al\tice", "Al\u200bice", "A\u2028B", "A\u202eB"]
)
def test_invalid_owners(owner: str) -> None:
    with pytest.raises(ValidationError):
        open_account(owner=owner)


@pytest.mark.parametrize("description", ["", "x" * 500, "Rent — May ✓", "  spaced  "])
def test_valid_descriptions_are_kept_exactly(description: str) -> None:
    assert deposit("5", "t1", description).description == description


@pytest.mark.parametrize("description", ["x" * 501, "line\nbreak", "\x1b[31mred", "A\u2029B"])
def test_invalid_descriptions(description: str) -> None:
    message = _problem(Deposit, _deposit_fields(description=description))
    assert message.startswith("description ")


@pytest.mark.parametrize("currency", ["eur", "XYZ", "EURO", ""])
def test_invalid_currencies(currency: str) -> None:
    with pytest.raises(ValidationError):
        open_account(currency=currency)


@pytest.mark.parametrize("amount", ["1e3", "NaN", "-5", "0", " 5", "5 ", "", ".5", "5.", "１００"])
def test_amount_syntax_is_checked_when_the_command_is_built(amount: str) -> None:
    assert _problem(Deposit, _deposit_fields(amount=amount)).startswith("amount ")


def test_the_open_limit_is_checked_against_the_currency_when_the_command_is_built() -> None:
    with pytest.raises(ValidationError, match="EUR amounts have at most 2 decimals"):
        open_account(overdraft_limit="5.001")
    with pytest.raises(ValidationError, match="JPY amounts have no decimals"):
        open_account(currency="JPY", overdraft_limit="1.5")
    assert open_account(overdraft_limit="0").overdraft_limit == "0"


@pytest.mark.parametrize(
    "now",
    [
        datetime(2024, 5, 1, 12, 0),
        datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        "2024-05-01T12:00:00Z",
    ],
    ids=["naive", "not-utc", "text"],
)
def test_the_time_must_be_an_aware_utc_datetime(now: Any) -> None:
    with pytest.raises(ValidationError):
        Deposit(**_deposit_fields(now=now))


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 5},
        {"colour": "blue"},
        {"meta": {"correlation_id": "c", "causation_id": "c"}},
        {"meta": {"correlation_id": "c d", "causation_id": "c", "actor": "a"}},
        {"meta": {"correlation_id": "c", "causation_id": "c", "actor": ""}},
    ],
    ids=["int-amount", "extra-field", "no-actor", "bad-correlation-id", "empty-actor"],
)
def test_commands_are_strict_typed_input(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Deposit(**_deposit_fields(**change))


def test_commands_are_frozen() -> None:
    command = deposit("5", "t1")
    with pytest.raises(ValidationError):
        command.amount = "6"  # type: ignore[misc]


def test_a_validation_error_becomes_one_clear_sentence() -> None:
    assert _problem(Deposit, _deposit_fields(amount="1e3")) == (
        "amount '1e3' is not a plain decimal number like 5, 5.00 or 0.5 "
        "(no exponents, separators, NaN or Infinity)"
    )
    assert _problem(Deposit, _deposit_fields(amount="0", transaction_id="")).endswith(
        "(and 1 more problem)"
    )
    fields = _deposit_fields()
    del fields["meta"]
    assert _problem(Deposit, fields) == "invalid meta: field required"
    assert _problem(Deposit, _deposit_fields(colour="blue")) == "invalid colour: unknown field"


def test_make_command_raises_invalid_input() -> None:
    assert make_command(Deposit, _deposit_fields()) == Deposit(**_deposit_fields())
    with pytest.raises(InvalidInputError, match=r"^amount '-5'") as caught:
        make_command(Deposit, _deposit_fields(amount="-5"))
    assert str(caught.value).startswith("amount '-5' has a sign; amounts are positive")
