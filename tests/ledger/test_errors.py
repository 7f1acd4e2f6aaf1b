"""The error hierarchy: base classes and one-line docstrings (exit codes: tests/cli)."""

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

ERROR_CLASSES = [
    cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, LedgerError)
]


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
