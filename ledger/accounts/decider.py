"""The Account decider: State, initial_state, evolve and decide. Pure: no I/O, no clock."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, assert_never

from ledger.accounts.commands import (
    AccountCommand,
    ChangeOverdraftLimit,
    CloseAccount,
    Deposit,
    OpenAccount,
    PostTransferLeg,
    Reverse,
    TransferStep,
    Withdraw,
    transfer_transaction_id,
)
from ledger.accounts.events import (
    TRANSFER_KINDS,
    AccountClosed,
    AccountEvent,
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
    OverdraftLimitChanged,
    PostingEvent,
    PostingKind,
    PostingReversed,
)
from ledger.accounts.window import WINDOW_SIZE, Content, TransactionRecord, TransactionWindow
from ledger.errors import (
    AccountAlreadyOpenError,
    AccountClosedError,
    AccountNotFoundError,
    AlreadyReversedError,
    BalanceOutOfBoundsError,
    CurrencyMismatchError,
    EarlierThanLastEventError,
    InsufficientFundsError,
    NonZeroBalanceError,
    NotReversibleError,
    OverdraftLimitTooLowError,
    PostingNotFoundError,
    StepOutsideWindowError,
    TransactionConflictError,
)
from ledger.money import MAX_BALANCE, to_minor_units


class Status(StrEnum):
    """Where an account is in its life."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class State(NamedTuple):
    """An account folded from its events; revision is that of the last event folded (-1: none).

    last_event_at is the latest occurred_at folded (None: no event yet): no new event may be
    earlier, so that an account's events are in time order as well as in revision order.
    """

    # A NamedTuple rather than a frozen dataclass: evolve builds one per event on load, and
    # a tuple is built about five times faster while being just as immutable.
    status: Status = Status.NEW
    account_id: str = ""
    owner: str = ""
    currency: str = ""
    overdraft_limit: int = 0
    opening_limit: int = 0
    balance: int = 0
    revision: int = -1
    window: TransactionWindow = TransactionWindow()
    last_event_at: datetime | None = None


initial_state = State()


def find_transaction(state: State, transaction_id: str) -> TransactionRecord | None:
    """The posting with this transaction id within the account's window, or None."""
    return state.window.record(transaction_id)


def evolve(state: State, event: AccountEvent) -> State:
    """Fold one event into the state; never raises, because events are facts."""
    revision = state.revision + 1
    # The latest time rather than the last one: a stream written before events were kept in
    # time order may go back in time, and a new event must not be earlier than any before it.
    last = state.last_event_at
    at = event.occurred_at if last is None or event.occurred_at > last else last
    match event:
        case MoneyDeposited() | MoneyWithdrawn() | PostingReversed():
            return _posted(state, event, revision, at)
        case AccountOpened() if state.status is Status.NEW:
            return state._replace(
                status=Status.OPEN,
                account_id=event.account_id,
                owner=event.owner,
                currency=event.currency,
                overdraft_limit=event.overdraft_limit,
                opening_limit=event.overdraft_limit,
                revision=revision,
                last_event_at=at,
            )
        case OverdraftLimitChanged(limit=limit):
            return state._replace(overdraft_limit=limit, revision=revision, last_event_at=at)
        case AccountClosed():
            return state._replace(status=Status.CLOSED, revision=revision, last_event_at=at)
        case _:
            return state._replace(revision=revision, last_event_at=at)


def _posted(state: State, event: PostingEvent, revision: int, at: datetime) -> State:
    amount = event.amount
    if isinstance(event, PostingReversed):
        reverses: str | None = event.reverses
        content: Content = (event.kind, event.reverses, event.description)
    else:
        reverses = None
        content = (event.kind, str(abs(amount)), event.description)
    window = state.window.appended(
        event.transaction_id,
        content,
        event.kind,
        revision,
        amount,
        event.balance_after,
        reverses,
    )
    # Built directly rather than with _replace(): this runs for nearly every event on load.
    return State(
        state.status,
        state.account_id,
        state.owner,
        state.currency,
        state.overdraft_limit,
        state.opening_limit,
        state.balance + amount,
        revision,
        window,
        at,
    )


def decide(command: AccountCommand, state: State) -> list[AccountEvent]:
    """Decide which events a command causes in this state, or raise the rule it breaks."""
    match command:
        case OpenAccount():
            return _open(command, state)
        case Deposit():
            return _deposit(command, state)
        case Withdraw():
            return _withdraw(command, state)
        case Reverse():
            return _reverse(command, state)
        case ChangeOverdraftLimit():
            return _change_overdraft_limit(command, state)
        case CloseAccount():
            return _close(command, state)
        case PostTransferLeg():
            return _transfer_leg(command, state)
        case _:
            assert_never(command)


def _what(command: AccountCommand) -> str:
    match command:
        case OpenAccount():
            return "opening"
        case Deposit():
            return f"deposit {command.transaction_id!r}"
        case Withdraw():
            return f"withdrawal {command.transaction_id!r}"
        case Reverse():
            return f"reversal {command.transaction_id!r}"
        case ChangeOverdraftLimit():
            return "overdraft limit change"
        case CloseAccount():
            return "closing"
        case PostTransferLeg():
            return f"{command.step.value} of transfer {command.transfer_id!r}"
        case _:
            assert_never(command)


def _require_time_order(command: AccountCommand, state: State) -> None:
    """Refuse a command earlier than the account's last event.

    Every command that writes checks it, not only postings: balances as of a time, statements
    of a period and the limit or status at a time are read by occurred_at, so time order must
    be revision order. It comes after the replay and no-op answers (they write nothing, so a
    re-send at any time still gets the original outcome) and before the business rules (a
    backdated command is refused for its time, not for what the balance would be).
    """
    last = state.last_event_at
    if last is not None and command.now < last:
        raise EarlierThanLastEventError(
            what=_what(command), account_id=command.account_id, at=command.now, last_event_at=last
        )


def _open(command: OpenAccount, state: State) -> list[AccountEvent]:
    limit = to_minor_units(
        command.overdraft_limit, command.currency, allow_zero=True, what="overdraft limit"
    )
    same = (state.owner, state.currency, state.opening_limit) == (
        command.owner,
        command.currency,
        limit,
    )
    match state:
        case State(status=Status.NEW):
            return [
                AccountOpened(
                    account_id=command.account_id,
                    owner=command.owner,
                    currency=command.currency,
                    overdraft_limit=limit,
                    occurred_at=command.now,
                )
            ]
        case State(status=Status.CLOSED):
            raise AccountClosedError(command.account_id)
        case State(status=Status.OPEN) if same:
            return []
        case _:
            raise AccountAlreadyOpenError(command.account_id)


def _require_account(state: State, account_id: str) -> None:
    if state.status is Status.NEW:
        raise AccountNotFoundError(account_id)


def _require_open(state: State, account_id: str) -> None:
    _require_account(state, account_id)
    if state.status is Status.CLOSED:
        raise AccountClosedError(account_id)


def _is_replay(state: State, account_id: str, transaction_id: str, content: Content) -> bool:
    """True if the id was used for the same content; raise if it was used for other content."""
    same = state.window.same_content(transaction_id, content)
    if same is False:
        raise TransactionConflictError(account_id, transaction_id)
    return same is True


def _require_within_bound(state: State, credit: int) -> None:
    if state.balance + credit > MAX_BALANCE:
        raise BalanceOutOfBoundsError(
            balance=state.balance, amount=credit, bound=MAX_BALANCE, currency=state.currency
        )


def _require_funds(state: State, debit: int) -> None:
    if state.balance - debit < -state.overdraft_limit:
        raise InsufficientFundsError(
            balance=state.balance,
            overdraft_limit=state.overdraft_limit,
            requested=debit,
            currency=state.currency,
        )


def _deposit(command: Deposit, state: State) -> list[AccountEvent]:
    _require_account(state, command.account_id)
    amount = to_minor_units(command.amount, state.currency)
    content = (PostingKind.DEPOSIT, str(amount), command.description)
    # A replay is answered before the closed check: the original deposit was accepted.
    if _is_replay(state, command.account_id, command.transaction_id, content):
        return []
    _require_open(state, command.account_id)
    _require_time_order(command, state)
    _require_within_bound(state, amount)
    return [
        MoneyDeposited(
            account_id=command.account_id,
            transaction_id=command.transaction_id,
            amount=amount,
            currency=state.currency,
            description=command.description,
            balance_after=state.balance + amount,
            occurred_at=command.now,
        )
    ]


def _withdraw(command: Withdraw, state: State) -> list[AccountEvent]:
    _require_account(state, command.account_id)
    amount = to_minor_units(command.amount, state.currency)
    content = (PostingKind.WITHDRAWAL, str(amount), command.description)
    if _is_replay(state, command.account_id, command.transaction_id, content):
        return []
    _require_open(state, command.account_id)
    _require_time_order(command, state)
    _require_funds(state, amount)
    return [
        MoneyWithdrawn(
            account_id=command.account_id,
            transaction_id=command.transaction_id,
            amount=-amount,
            currency=state.currency,
            description=command.description,
            balance_after=state.balance - amount,
            occurred_at=command.now,
        )
    ]


def _reverse(command: Reverse, state: State) -> list[AccountEvent]:
    _require_account(state, command.account_id)
    content = (PostingKind.REVERSAL, command.reverses, command.description)
    if _is_replay(state, command.account_id, command.transaction_id, content):
        return []
    _require_open(state, command.account_id)
    _require_time_order(command, state)
    match find_transaction(state, command.reverses):
        case None:
            raise PostingNotFoundError(command.account_id, command.reverses)
        case TransactionRecord(kind=kind) if kind is PostingKind.REVERSAL or kind in TRANSFER_KINDS:
            # A transfer's leg is undone by its transfer (a refund), never alone: reversing
            # one leg would create or destroy the money the other leg moved.
            raise NotReversibleError(command.account_id, command.reverses)
        case TransactionRecord(reversed=True, reversed_by=reversed_by):
            raise AlreadyReversedError(command.account_id, command.reverses, reversed_by)
        case TransactionRecord(amount=original):
            if original > 0:
                _require_funds(state, original)
            else:
                _require_within_bound(state, -original)
            return [
                PostingReversed(
                    account_id=command.account_id,
                    transaction_id=command.transaction_id,
                    reverses=command.reverses,
                    amount=-original,
                    currency=state.currency,
                    description=command.description,
                    balance_after=state.balance - original,
                    occurred_at=command.now,
                )
            ]


def _change_overdraft_limit(command: ChangeOverdraftLimit, state: State) -> list[AccountEvent]:
    _require_account(state, command.account_id)
    limit = to_minor_units(command.limit, state.currency, allow_zero=True, what="overdraft limit")
    _require_open(state, command.account_id)
    if limit == state.overdraft_limit:
        return []
    _require_time_order(command, state)
    if state.balance + limit < 0:
        raise OverdraftLimitTooLowError(
            balance=state.balance, requested_limit=limit, currency=state.currency
        )
    return [
        OverdraftLimitChanged(
            account_id=command.account_id,
            limit=limit,
            previous_limit=state.overdraft_limit,
            occurred_at=command.now,
        )
    ]


def require_zero_balance(state: State) -> None:
    """The closing rule: raise NonZeroBalanceError unless the balance is zero."""
    if state.balance != 0:
        raise NonZeroBalanceError(balance=state.balance, currency=state.currency)


def _close(command: CloseAccount, state: State) -> list[AccountEvent]:
    _require_account(state, command.account_id)
    if state.status is Status.CLOSED:
        return []
    _require_time_order(command, state)
    require_zero_balance(state)
    return [AccountClosed(account_id=command.account_id, occurred_at=command.now)]


_LEG_KINDS = {
    TransferStep.DEBIT: PostingKind.TRANSFER_OUT,
    TransferStep.CREDIT: PostingKind.TRANSFER_IN,
    TransferStep.REFUND: PostingKind.TRANSFER_REFUND,
}


def _transfer_leg(command: PostTransferLeg, state: State) -> list[AccountEvent]:
    """A transfer's debit, credit or refund: the withdraw and deposit rules, except that the
    amount is already in minor units and must be in the account's currency. A refund puts
    back money that left the account, so only the account's existence limits it."""
    _require_account(state, command.account_id)
    transaction_id = transfer_transaction_id(command.transfer_id, command.step)
    kind = _LEG_KINDS[command.step]
    content = (kind, str(command.amount), command.description)
    # As for a deposit, a replay is answered first: the step was done once already.
    if _is_replay(state, command.account_id, transaction_id, content):
        return []
    # Every posting after revision `state.revision - WINDOW_SIZE` is in the window; one between
    # the transfer's start and that revision, not searched yet, could be this very step.
    searched = max(command.since_revision, command.searched_to)
    if command.since_revision >= 0 and searched < state.revision - WINDOW_SIZE:
        raise StepOutsideWindowError(command.account_id, searched)
    if state.currency != command.currency:
        raise CurrencyMismatchError(command.account_id, state.currency, command.currency)
    if command.step is not TransferStep.REFUND:
        _require_open(state, command.account_id)
    _require_time_order(command, state)
    amount = command.amount
    common = {
        "account_id": command.account_id,
        "transaction_id": transaction_id,
        "currency": state.currency,
        "description": command.description,
        "occurred_at": command.now,
        "transfer_id": command.transfer_id,
        "counterparty": command.counterparty,
    }
    if command.step is TransferStep.DEBIT:
        _require_funds(state, amount)
        return [
            MoneyWithdrawn(
                **common, amount=-amount, balance_after=state.balance - amount, kind=kind
            )
        ]
    _require_within_bound(state, amount)
    return [
        MoneyDeposited(**common, amount=amount, balance_after=state.balance + amount, kind=kind)
    ]
