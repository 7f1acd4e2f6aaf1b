"""The ledger's exceptions (the CLI maps each kind to a process exit code)."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.currency import format_amount


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""


class InvalidInputError(LedgerError, ValueError):
    """The input is malformed (syntax, limits, decimals, unknown currency); nothing was tried."""

    # Subclassing ValueError lets pydantic validators raise it directly: pydantic wraps a
    # ValueError into a ValidationError, so one set of checks serves models and the decider.


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class EarlierThanLastEventError(InvalidInputError):
    """The command's time is earlier than the account's last event; events keep time order."""

    def __init__(
        self, *, what: str, account_id: str, at: datetime, last_event_at: datetime
    ) -> None:
        super().__init__(
            f"{what} on account {account_id!r} at {_instant(at)} is earlier than the account's "
            f"last event at {_instant(last_event_at)}; an account's events must be in time order"
        )
        self.account_id = account_id
        self.at = at
        self.last_event_at = last_event_at


class CorruptEventError(LedgerError):
    """A stored event cannot be read as any known event type or schema version."""


class ServiceUnavailableError(LedgerError):
    """The event store or database cannot be reached; the command may be retried later."""


class WaitTimeoutError(LedgerError):
    """The read side did not reach the awaited position in time."""


class CheckFailedError(LedgerError):
    """A consistency check found a difference between the write and the read side."""


class ConcurrencyConflictError(LedgerError):
    """The stream kept changing under us and the retries ran out; it is safe to retry."""


class BusinessRuleError(LedgerError):
    """The command is well formed but the account's rules refuse it."""


class AccountNotFoundError(BusinessRuleError):
    """The account has never been opened."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"no such account: {account_id}")
        self.account_id = account_id


class AccountClosedError(BusinessRuleError):
    """The account is closed and accepts no further commands."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id!r} is closed")
        self.account_id = account_id


class AccountAlreadyOpenError(BusinessRuleError):
    """The account is already open with other details (owner, currency or overdraft limit)."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id!r} is already open with other details")
        self.account_id = account_id


class TransactionConflictError(BusinessRuleError):
    """The transaction id was already used on this account for a different posting."""

    def __init__(self, account_id: str, transaction_id: str) -> None:
        super().__init__(
            f"transaction id {transaction_id!r} was already used on account {account_id!r} "
            "for a different posting"
        )
        self.account_id = account_id
        self.transaction_id = transaction_id


class PostingNotFoundError(BusinessRuleError):
    """The posting named for reversal is unknown (or older than the transaction window)."""

    def __init__(self, account_id: str, transaction_id: str) -> None:
        super().__init__(
            f"account {account_id!r} has no posting {transaction_id!r} that can be reversed"
        )
        self.account_id = account_id
        self.transaction_id = transaction_id


class AlreadyReversedError(BusinessRuleError):
    """The posting named for reversal has already been reversed (by `reversed_by`)."""

    def __init__(
        self, account_id: str, transaction_id: str, reversed_by: str | None = None
    ) -> None:
        by = f" by {reversed_by!r}" if reversed_by else ""
        super().__init__(
            f"posting {transaction_id!r} on account {account_id!r} is already reversed{by}"
        )
        self.account_id = account_id
        self.transaction_id = transaction_id
        self.reversed_by = reversed_by


class NotReversibleError(BusinessRuleError):
    """The posting named for reversal is itself a reversal, which cannot be reversed."""

    def __init__(self, account_id: str, transaction_id: str) -> None:
        super().__init__(
            f"posting {transaction_id!r} on account {account_id!r} is a reversal "
            "and cannot be reversed"
        )
        self.account_id = account_id
        self.transaction_id = transaction_id


class InsufficientFundsError(BusinessRuleError):
    """The debit would take the balance below minus the overdraft limit."""

    def __init__(
        self, *, balance: int, overdraft_limit: int, requested: int, currency: str
    ) -> None:
        def show(minor: int) -> str:
            return f"{format_amount(minor, currency)} {currency}"

        self.balance = balance
        self.overdraft_limit = overdraft_limit
        self.requested = requested
        self.shortfall = requested - (balance + overdraft_limit)
        self.currency = currency
        super().__init__(
            f"insufficient funds: balance {show(balance)}, overdraft limit "
            f"{show(overdraft_limit)}, requested {show(requested)}, "
            f"short by {show(self.shortfall)}"
        )


class OverdraftLimitTooLowError(BusinessRuleError):
    """The new overdraft limit is below what the negative balance already uses."""

    def __init__(self, *, balance: int, requested_limit: int, currency: str) -> None:
        self.balance = balance
        self.requested_limit = requested_limit
        self.currency = currency
        super().__init__(
            f"overdraft limit {format_amount(requested_limit, currency)} {currency} is "
            f"below the overdraft already used by the balance "
            f"{format_amount(balance, currency)} {currency}"
        )


class NonZeroBalanceError(BusinessRuleError):
    """Only an account with a zero balance can be closed."""

    def __init__(self, *, balance: int, currency: str) -> None:
        self.balance = balance
        self.currency = currency
        super().__init__(
            f"account cannot be closed: balance is {format_amount(balance, currency)} "
            f"{currency}, not zero"
        )


class BalanceOutOfBoundsError(BusinessRuleError):
    """The posting would take the balance beyond the largest balance an account may hold."""

    def __init__(self, *, balance: int, amount: int, bound: int, currency: str) -> None:
        def show(minor: int) -> str:
            return f"{format_amount(minor, currency)} {currency}"

        super().__init__(
            f"balance bound: a posting of {show(amount)} would take the balance from "
            f"{show(balance)} to {show(balance + amount)}, above the largest balance an "
            f"account may hold ({show(bound)})"
        )
        self.balance = balance
        self.amount = amount
        self.bound = bound
        self.currency = currency


class SameAccountError(InvalidInputError):
    """A transfer names the same account as its source and its destination."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"a transfer needs two different accounts, got {account_id!r} twice")


class CurrencyMismatchError(BusinessRuleError):
    """A transfer's accounts, or a transfer and an account, are in different currencies."""

    def __init__(self, account_id: str, currency: str, expected: str) -> None:
        super().__init__(
            f"account {account_id!r} is in {currency}, the transfer is in {expected}: "
            "a transfer moves money between accounts of one currency"
        )


class TransferConflictError(BusinessRuleError):
    """The transfer id was already used for a different transfer."""

    def __init__(self, transfer_id: str) -> None:
        super().__init__(
            f"transfer id {transfer_id!r} was already used for a different transfer "
            "(other accounts, amount or description)"
        )
        self.transfer_id = transfer_id


class TransferNotFoundError(BusinessRuleError):
    """No transfer has this id."""

    def __init__(self, transfer_id: str) -> None:
        super().__init__(f"transfer {transfer_id!r} not found")


class StepOutsideWindowError(LedgerError):
    """A transfer's step may be older than the idempotency window: search the stream first."""

    def __init__(self, account_id: str, after_revision: int) -> None:
        super().__init__(
            f"account {account_id!r} has had more postings since revision {after_revision} "
            "than its idempotency window holds; search them for the step first"
        )
        self.account_id = account_id
        self.after_revision = after_revision
