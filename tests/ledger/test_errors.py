"""The error hierarchy: exit codes, base classes and one-line docstrings."""

from __future__ import annotations

import inspect

import pytest

from ledger import errors
from ledger.errors import (
    AccountNotFoundError,
    BusinessRuleError,
    ConcurrencyConflictError,
    InsufficientFundsError,
    InvalidInputError,
    LedgerError,
)

EXPECTED_EXIT_CODES = {
    "LedgerError": 70,
    "CorruptEventError": 70,
    "InvalidInputError": 2,
    "ServiceUnavailableError": 3,
    "WaitTimeoutError": 4,
    "CheckFailedError": 5,
    "ConcurrencyConflictError": 6,
    "BusinessRuleError": 1,
    "AccountNotFoundError": 1,
    "AccountClosedError": 1,
    "AccountAlreadyOpenError": 1,
    "TransactionConflictError": 1,
    "PostingNotFoundError": 1,
    "AlreadyReversedError": 1,
    "NotReversibleError": 1,
    "InsufficientFundsError": 1,
    "OverdraftLimitTooLowError": 1,
    "NonZeroBalanceError": 1,
}

ERROR_CLASSES = [
    cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, LedgerError)
]


def test_every_error_has_its_exit_code() -> None:
    assert {cls.__name__: cls.exit_code for cls in ERROR_CLASSES} == EXPECTED_EXIT_CODES


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_has_a_one_line_docstring(cls: type[LedgerError]) -> None:
    assert cls.__doc__ and "\n" not in cls.__doc__.strip()


def test_business_refusals_share_a_base_class() -> None:
    assert issubclass(InsufficientFundsError, BusinessRuleError)
    assert issubclass(AccountNotFoundError, BusinessRuleError)
    assert not issubclass(ConcurrencyConflictError, BusinessRuleError)


def test_invalid_input_is_a_value_error_so_validators_can_raise_it() -> None:
    assert issubclass(InvalidInputError, ValueError)
    assert not issubclass(InvalidInputError, BusinessRuleError)
