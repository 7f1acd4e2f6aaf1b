"""The Account decider: State, initial_state, evolve and decide. Pure: no I/O, no clock."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from ledger.accounts.commands import (
    AccountCommand,
    ChangeOverdraftLimit,
    CloseAccount,
    Deposit,
    OpenAccount,
    Reverse,
    Withdraw,
)
from ledger.accounts.events import (
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
from ledger.errors import (
    AccountAlreadyOpenError,
    AccountClosedError,
    AccountNotFoundError,
    AlreadyReversedError,
    InsufficientFundsError,
    NonZeroBalanceError,
    NotReversibleError,
    OverdraftLimitTooLowError,
    PostingNotFoundError,
    TransactionConflictError,
)
from ledger.money import to_minor_units

WINDOW_SIZE = 10_000
# A log is compacted to one window once this many of its entries are forgotten: memory stays
# bounded and the copy costs well under one entry's worth of work per append.
_COMPACT_AT = 4 * WINDOW_SIZE


def id_digest(transaction_id: str) -> bytes:
    """Fixed-size (16-byte) digest under which a snapshot remembers a transaction id."""
    return hashlib.blake2b(transaction_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()


# What a posting asks for: (kind, amount or reversed transaction id, description).
Content = tuple[str, str, str]


def content_digest(content: Content) -> bytes:
    """Fixed-size (8-byte) digest under which a snapshot remembers a posting's content."""
    kind, subject, description = content
    # The subject is length-prefixed so no two different contents share one text.
    text = f"{kind}\n{len(subject)}:{subject}\n{description}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """What the window remembers of one posting: enough to report or reverse it."""

    transaction_id: str
    kind: PostingKind
    revision: int
    amount: int
    balance_after: int
    reversed: bool


class WindowRow(NamedTuple):
    """One posting of a window in exported form; reverses is the index of its target row or -1."""

    id_digest: bytes
    content_digest: bytes
    kind: PostingKind
    revision: int
    amount: int
    balance_after: int
    reverses: int


class _Entry(NamedTuple):
    key: str | bytes  # the transaction id, or its id_digest in a window rebuilt from rows
    content: Content | bytes  # the content, or its content_digest when rebuilt from rows
    kind: PostingKind
    revision: int
    amount: int
    balance_after: int
    previous: int  # log position of the previous entry with the same key, or -1
    reverses: int  # log position of the entry this one reverses, or -1


class _Log:
    """Append-only storage shared by the successive versions of one window."""

    __slots__ = ("digest_keys", "entries", "latest", "lock", "reversed_by")

    def __init__(self, *, digest_keys: bool = False) -> None:
        self.entries: list[_Entry] = []
        self.latest: dict[str | bytes, int] = {}
        self.reversed_by: dict[int, int] = {}
        self.digest_keys = digest_keys
        self.lock = threading.Lock()


class TransactionWindow:
    """The account's last WINDOW_SIZE (10,000) postings, for idempotency and reversals.

    For each posting the window keeps its transaction id, revision, signed amount, kind,
    balance_after, content (kind, amount or reversed id, description) and whether it has
    been reversed. Snapshots store the id and the content as fixed-size digests (16 and 8
    bytes), so a full window stays small. Outside the window an id is forgotten: a
    transaction id older than the last 10,000 postings is treated as new, and a posting
    older than that can no longer be reversed (PostingNotFoundError).

    A window is immutable. Its versions share one append-only log and each sees only its own
    slice of it, so appending to the newest version is amortised O(1) and needs no hashing;
    appending to an older version (a branch) copies that version's slice first, and the log
    is compacted once it holds several windows' worth of forgotten entries.
    """

    __slots__ = ("_log", "_start", "_stop")

    def __init__(self, log: _Log | None = None, start: int = 0, stop: int = 0) -> None:
        self._log = log if log is not None else _Log()
        self._start = start
        self._stop = stop

    def __len__(self) -> int:
        return self._stop - self._start

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TransactionWindow):
            return NotImplemented
        return self.rows() == other.rows()

    def __hash__(self) -> int:
        return hash(tuple(self.rows()))

    def __repr__(self) -> str:
        return f"TransactionWindow(<{len(self)} postings>)"

    def _visible(self, key: str | bytes) -> int:
        entries = self._log.entries
        position = self._log.latest.get(key, -1)
        # Later versions may have appended the same key; walk back to this version's slice.
        while position >= self._stop:
            position = entries[position].previous
        return position if position >= self._start else -1

    def _position(self, transaction_id: str) -> int:
        position = self._visible(transaction_id)
        if self._log.digest_keys:
            position = max(position, self._visible(id_digest(transaction_id)))
        return position

    def _is_reversed(self, position: int) -> bool:
        reversal = self._log.reversed_by.get(position)
        return reversal is not None and reversal < self._stop

    def same_content(self, transaction_id: str, content: Content) -> bool | None:
        """Whether the posting with this id had this content; None if the window lacks it."""
        position = self._position(transaction_id)
        if position < 0:
            return None
        known = self._log.entries[position].content
        return known == (content_digest(content) if isinstance(known, bytes) else content)

    def record(self, transaction_id: str) -> TransactionRecord | None:
        """The posting with this transaction id, or None if the window does not hold it."""
        position = self._position(transaction_id)
        if position < 0:
            return None
        entry = self._log.entries[position]
        return TransactionRecord(
            transaction_id=transaction_id,
            kind=entry.kind,
            revision=entry.revision,
            amount=entry.amount,
            balance_after=entry.balance_after,
            reversed=self._is_reversed(position),
        )

    def appended(
        self,
        transaction_id: str,
        content: Content,
        kind: PostingKind,
        revision: int,
        amount: int,
        balance_after: int,
        reverses: str | None = None,
    ) -> TransactionWindow:
        """A new window with one more posting; reverses names the posting it reverses."""
        window = self
        log = self._log
        with log.lock:
            position = len(log.entries)
            if not (position == self._stop and position > 0 and self._start < _COMPACT_AT):
                # A branch, an empty window (so the shared initial state's log never grows)
                # or a log full of forgotten entries: continue in a private copy.
                window = self._copy()
                log = window._log
                position = len(log.entries)
            target = -1 if reverses is None else window._position(reverses)
            log.entries.append(
                _Entry(
                    transaction_id,
                    content,
                    kind,
                    revision,
                    amount,
                    balance_after,
                    log.latest.get(transaction_id, -1),
                    target,
                )
            )
            log.latest[transaction_id] = position
            if target >= 0:
                log.reversed_by.setdefault(target, position)
        return TransactionWindow(log, max(window._start, position + 1 - WINDOW_SIZE), position + 1)

    def _copy(self) -> TransactionWindow:
        log = _Log(digest_keys=self._log.digest_keys)
        start = self._start
        for position, entry in enumerate(self._log.entries[start : self._stop]):
            key, content, kind, revision, amount, balance_after, _, reverses = entry
            target = reverses - start if reverses >= start else -1
            previous = log.latest.get(key, -1)
            log.entries.append(
                _Entry(key, content, kind, revision, amount, balance_after, previous, target)
            )
            log.latest[key] = position
            if target >= 0:
                log.reversed_by.setdefault(target, position)
        return TransactionWindow(log, 0, len(log.entries))

    def rows(self) -> list[WindowRow]:
        """The window's postings, oldest first, with ids and contents as digests."""
        start = self._start
        return [
            WindowRow(
                entry.key if isinstance(entry.key, bytes) else id_digest(entry.key),
                entry.content
                if isinstance(entry.content, bytes)
                else content_digest(entry.content),
                entry.kind,
                entry.revision,
                entry.amount,
                entry.balance_after,
                entry.reverses - start if entry.reverses >= start else -1,
            )
            for entry in self._log.entries[start : self._stop]
        ]

    @classmethod
    def from_rows(cls, rows: Iterable[WindowRow]) -> TransactionWindow:
        """Rebuild a window from rows (as rows() returns them); only the last WINDOW_SIZE count."""
        log = _Log(digest_keys=True)
        kept = list(rows)[-WINDOW_SIZE:]
        for position, row in enumerate(kept):
            target = row.reverses if 0 <= row.reverses < position else -1
            previous = log.latest.get(row.id_digest, -1)
            key, content, kind, revision, amount, balance_after, _ = row
            log.entries.append(
                _Entry(key, content, kind, revision, amount, balance_after, previous, target)
            )
            log.latest[row.id_digest] = position
            if target >= 0:
                log.reversed_by.setdefault(target, position)
        return cls(log, 0, len(kept))


class Status(StrEnum):
    """Where an account is in its life."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class State(NamedTuple):
    """An account folded from its events; revision is that of the last event folded (-1: none)."""

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


initial_state = State()


def find_transaction(state: State, transaction_id: str) -> TransactionRecord | None:
    """The posting with this transaction id within the account's window, or None."""
    return state.window.record(transaction_id)


def evolve(state: State, event: AccountEvent) -> State:
    """Fold one event into the state; never raises, because events are facts."""
    revision = state.revision + 1
    match event:
        case MoneyDeposited() | MoneyWithdrawn() | PostingReversed():
            return _posted(state, event, revision)
        case AccountOpened() if state.status is Status.NEW:
            return state._replace(
                status=Status.OPEN,
                account_id=event.account_id,
                owner=event.owner,
                currency=event.currency,
                overdraft_limit=event.overdraft_limit,
                opening_limit=event.overdraft_limit,
                revision=revision,
            )
        case OverdraftLimitChanged(limit=limit):
            return state._replace(overdraft_limit=limit, revision=revision)
        case AccountClosed():
            return state._replace(status=Status.CLOSED, revision=revision)
        case _:
            return state._replace(revision=revision)


def _posted(state: State, event: PostingEvent, revision: int) -> State:
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
    match find_transaction(state, command.reverses):
        case None:
            raise PostingNotFoundError(command.account_id, command.reverses)
        case TransactionRecord(kind=PostingKind.REVERSAL):
            raise NotReversibleError(command.account_id, command.reverses)
        case TransactionRecord(reversed=True):
            raise AlreadyReversedError(command.account_id, command.reverses)
        case TransactionRecord(amount=original):
            if original > 0:
                _require_funds(state, original)
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


def _close(command: CloseAccount, state: State) -> list[AccountEvent]:
    _require_account(state, command.account_id)
    if state.status is Status.CLOSED:
        return []
    if state.balance != 0:
        raise NonZeroBalanceError(balance=state.balance, currency=state.currency)
    return [AccountClosed(account_id=command.account_id, occurred_at=command.now)]
