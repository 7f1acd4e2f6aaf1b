"""Transfer commands: the request, and the record of each step's outcome on the accounts."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledger.accounts.commands import AccountId, Currency, Description, TransactionId, UtcDateTime
from ledger.errors import SameAccountError


class TransferCommand(BaseModel):
    """Base of transfer commands: the transfer and the caller's clock."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    transfer_id: TransactionId
    now: UtcDateTime


class RequestTransfer(TransferCommand):
    """Start a transfer of an amount (minor units) from one account to another."""

    from_account: AccountId
    to_account: AccountId
    amount: Annotated[int, Field(gt=0)]
    currency: Currency
    description: Description = ""
    from_revision: int = -1  # the accounts' revisions as the request saw them (-1: unknown)
    to_revision: int = -1

    @model_validator(mode="after")
    def _two_accounts(self) -> RequestTransfer:
        if self.from_account == self.to_account:
            raise SameAccountError(self.from_account)
        return self


class RecordDebit(TransferCommand):
    """The source account's debit was posted (or had been); its balance after it."""

    from_balance: int
    posting_position: int


class RecordRejection(TransferCommand):
    """The source account refused the debit."""

    reason: str


class RecordCredit(TransferCommand):
    """The destination account's credit was posted (or had been)."""

    posting_position: int


class RecordCreditRefusal(TransferCommand):
    """The destination account refused the credit for good."""

    reason: str


class RecordRefund(TransferCommand):
    """The debit was posted back to the source account (or had been)."""

    posting_position: int


AnyTransferCommand = (
    RequestTransfer
    | RecordDebit
    | RecordRejection
    | RecordCredit
    | RecordCreditRefusal
    | RecordRefund
)
