"""Account and transaction id syntax: checked before any I/O (no pydantic, so it loads fast)."""

from __future__ import annotations

import re

from ledger.errors import InvalidInputError
from ledger.money import show

_ACCOUNT_ID = re.compile(r"[a-z0-9_-]{1,64}")
_TRANSACTION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def check_account_id(value: str) -> str:
    """1-64 characters of lowercase letters, digits, '-' and '_'; InvalidInputError otherwise."""
    if not isinstance(value, str) or not _ACCOUNT_ID.fullmatch(value):
        raise InvalidInputError(
            f"account id {show(value)} must be 1-64 characters of lowercase letters a-z, "
            "digits, '-' and '_'"
        )
    return value


def check_transaction_id(value: str) -> str:
    """1-64 characters of letters, digits, '.', '_', ':' and '-'; InvalidInputError otherwise."""
    if not isinstance(value, str) or not _TRANSACTION_ID.fullmatch(value):
        raise InvalidInputError(
            f"transaction id {show(value)} must be 1-64 characters of ASCII letters, digits, "
            "'.', '_', ':' and '-'"
        )
    return value
