"""Account and transaction id syntax: checked before any I/O (no pydantic, so it loads fast)."""

from __future__ import annotations

import re

from ledger.errors import AccountNotFoundError, InvalidInputError
from ledger.money import show

_ACCOUNT_ID = re.compile(r"[a-z0-9_-]{1,64}")
# What an account id looks like, case aside: an id of this shape that is not an account id
# (it has capitals) names no account, rather than being malformed.
_ACCOUNT_ID_ANY_CASE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TRANSACTION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def check_account_id(value: str) -> str:
    """1-64 characters of lowercase letters, digits, '-' and '_'; InvalidInputError otherwise."""
    if not isinstance(value, str) or not _ACCOUNT_ID.fullmatch(value):
        raise InvalidInputError(
            f"account id {show(value)} must be 1-64 characters of lowercase letters a-z, "
            "digits, '-' and '_'"
        )
    return value


def check_existing_account_id(value: str) -> str:
    """An id naming an account that must exist: AccountNotFoundError for one that looks like
    an id but cannot be one (capitals), InvalidInputError for one that is no id at all."""
    if isinstance(value, str) and _ACCOUNT_ID_ANY_CASE.fullmatch(value) and value != value.lower():
        raise AccountNotFoundError(value)
    return check_account_id(value)


def check_transaction_id(value: str) -> str:
    """1-64 characters of letters, digits, '.', '_', ':' and '-'; InvalidInputError otherwise."""
    if not isinstance(value, str) or not _TRANSACTION_ID.fullmatch(value):
        raise InvalidInputError(
            f"transaction id {show(value)} must be 1-64 characters of ASCII letters, digits, "
            "'.', '_', ':' and '-'"
        )
    return value
