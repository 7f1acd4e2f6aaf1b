"""Account commands: frozen pydantic models that are the validated input of the decider."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from ledger.accounts.ids import check_account_id, check_transaction_id
from ledger.errors import InvalidInputError
from ledger.money import (
    check_amount_syntax,
    check_currency,
    check_limit_syntax,
    show,
    to_minor_units,
)

_META_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Control characters, invisible format characters and line/paragraph separators would let a
# name or description hide or rearrange text in statements and logs; lone surrogates cannot
# be encoded as UTF-8 JSON at all.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _meta_id(value: str) -> str:
    if not _META_ID.fullmatch(value):
        raise InvalidInputError(
            f"id {show(value)} must be 1-128 characters of ASCII letters, digits, "
            "'.', '_', ':' and '-'"
        )
    return value


def _printable(what: str, value: str, *, min_length: int, max_length: int) -> str:
    if not min_length <= len(value) <= max_length:
        raise InvalidInputError(
            f"{what} must be {min_length}-{max_length} characters long, got {len(value)}"
        )
    for ch in value:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
            raise InvalidInputError(
                f"{what} {show(value)} contains the control or invisible character U+{ord(ch):04X}"
            )
    return value


def _owner(value: str) -> str:
    _printable("owner", value, min_length=1, max_length=200)
    if value.isspace():
        raise InvalidInputError("owner must not be only whitespace")
    return value


def _description(value: str) -> str:
    return _printable("description", value, min_length=0, max_length=500)


def _actor(value: str) -> str:
    return _printable("actor", value, min_length=1, max_length=200)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise InvalidInputError(f"time {value.isoformat()} must be timezone-aware UTC")
    return value


AccountId = Annotated[str, AfterValidator(check_account_id)]
TransactionId = Annotated[str, AfterValidator(check_transaction_id)]
Owner = Annotated[str, AfterValidator(_owner)]
Description = Annotated[str, AfterValidator(_description)]
Currency = Annotated[str, AfterValidator(check_currency)]
Amount = Annotated[str, AfterValidator(check_amount_syntax)]
Limit = Annotated[str, AfterValidator(check_limit_syntax)]
UtcDateTime = Annotated[datetime, AfterValidator(_utc)]


class _Frozen(BaseModel):
    # strict: a command is typed input, so "5" is never an int and 5 never a str.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class CommandMeta(_Frozen):
    """Audit metadata every command carries into the metadata of the events it causes."""

    correlation_id: Annotated[str, AfterValidator(_meta_id)]
    causation_id: Annotated[str, AfterValidator(_meta_id)]
    actor: Annotated[str, AfterValidator(_actor)]


class Command(_Frozen):
    """Base of account commands: the target account, the caller's clock and audit metadata."""

    account_id: AccountId
    now: UtcDateTime
    meta: CommandMeta


class OpenAccount(Command):
    """Open an account for an owner in one currency, optionally with an overdraft limit."""

    owner: Owner
    currency: Currency
    overdraft_limit: Limit = "0"

    @model_validator(mode="after")
    def _limit_fits_currency(self) -> OpenAccount:
        # The currency is known here, so decimals and size are checked before any I/O.
        to_minor_units(self.overdraft_limit, self.currency, allow_zero=True, what="overdraft limit")
        return self


class Deposit(Command):
    """Credit an amount to the account, idempotent per transaction id."""

    amount: Amount
    transaction_id: TransactionId
    description: Description = ""


class Withdraw(Command):
    """Debit an amount from the account within its overdraft limit, idempotent per id."""

    amount: Amount
    transaction_id: TransactionId
    description: Description = ""


class Reverse(Command):
    """Post the opposite amount of an earlier deposit or withdrawal, at most once."""

    transaction_id: TransactionId
    reverses: TransactionId
    description: Description = ""


class ChangeOverdraftLimit(Command):
    """Set the account's overdraft limit (zero or more, in the account's currency)."""

    limit: Limit


class CloseAccount(Command):
    """Close an account whose balance is zero."""


class TransferStep(StrEnum):
    """The postings a transfer makes on accounts: its debit, its credit, or the debit's refund."""

    DEBIT = "debit"
    CREDIT = "credit"
    REFUND = "refund"


def transfer_transaction_id(transfer_id: str, step: TransferStep) -> str:
    """The account transaction id of a transfer's step: '/' never occurs in a client's id,
    so a transfer's postings can never collide with a deposit's or a withdrawal's."""
    return f"{transfer_id}/{step.value}"


class PostTransferLeg(Command):
    """Post one step of a transfer on this account: minor units, in the transfer's currency."""

    transfer_id: TransactionId
    step: TransferStep
    counterparty: AccountId
    amount: Annotated[int, Field(gt=0)]
    currency: Currency
    description: Description = ""
    # The step can only be on the account after this revision (-1: anywhere); postings up to
    # `searched_to` were searched for it already.
    since_revision: int = -1
    searched_to: int = -1


AccountCommand = (
    OpenAccount
    | Deposit
    | Withdraw
    | Reverse
    | ChangeOverdraftLimit
    | CloseAccount
    | PostTransferLeg
)

C = TypeVar("C", bound=BaseModel)


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a pydantic ValidationError into one clear sentence naming the first bad field."""
    errors = exc.errors(include_url=False)
    if not errors:
        return "invalid input"
    first = errors[0]
    # Words a clerk reads, never the field's name: "overdraft limit", "correlation id".
    where = " ".join(str(part).replace("_", " ") for part in first["loc"][-1:]) or "input"
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, Exception):
        # Our own validators already phrase a complete reason; pydantic only prefixes it.
        reason = str(cause)
        if reason.startswith(where):
            return reason + _more(len(errors) - 1)
    elif first["type"] == "extra_forbidden":
        reason = "unknown field"
    else:
        message = first["msg"]
        reason = message[:1].lower() + message[1:]
    return f"invalid {where}: {reason}{_more(len(errors) - 1)}"


def _more(more: int) -> str:
    return f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""


def make_command(command_type: type[C], fields: Mapping[str, Any]) -> C:
    """Validate fields into a command, raising InvalidInputError with a one-sentence message."""
    try:
        return command_type.model_validate(dict(fields))
    except ValidationError as exc:
        raise InvalidInputError(describe_validation_error(exc)) from exc
