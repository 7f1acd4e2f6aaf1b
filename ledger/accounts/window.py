"""The transaction window: an account's last 10,000 postings, for idempotency and reversals."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ledger.accounts.events import PostingKind

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
    reversed_by: str | None = None  # the reversal's transaction id, when it has reversed


class WindowRow(NamedTuple):
    """One posting of a window in exported form; reverses is the index of its target row or -1.

    A reversal whose target is in the window also keeps its transaction id (`name`), so that
    the window can say which transaction reversed a posting."""

    id_digest: bytes
    content_digest: bytes
    kind: PostingKind
    revision: int
    amount: int
    balance_after: int
    reverses: int
    name: str | None = None


class _Entry(NamedTuple):
    key: str | bytes  # the transaction id, or its id_digest in a window rebuilt from rows
    content: Content | bytes  # the content, or its content_digest when rebuilt from rows
    kind: PostingKind
    revision: int
    amount: int
    balance_after: int
    previous: int  # log position of the previous entry with the same key, or -1
    reverses: int  # log position of the entry this one reverses, or -1


_ID_BYTES, ROW_BYTES = 16, 24  # a row of a snapshot's digests: id digest + content digest


class _Base:
    """A window decoded from a snapshot, kept as columns; its rows become _Entry on demand.

    Loading a cold account from its snapshot is on the path of a command, and most commands
    look at one or two of the window's 10,000 rows: so nothing per row is built at load time,
    and an id digest is found by searching the packed digests (memchr speed), not a dict.
    """

    __slots__ = ("amounts", "balances", "digests", "kinds", "names", "revisions", "targets")

    def __init__(
        self,
        digests: bytes,
        kinds: Sequence[PostingKind],
        revisions: Sequence[int],
        amounts: Sequence[int],
        balances: Sequence[int],
        targets: Mapping[int, int],
        names: Mapping[int, str],
    ) -> None:
        self.digests = digests
        self.kinds = kinds
        self.revisions = revisions
        self.amounts = amounts
        self.balances = balances
        self.targets = targets
        self.names = names

    def find(self, digest: bytes, before: int | None = None) -> int:
        """The last row (before row `before`) whose id digest is `digest`, or -1."""
        blob = self.digests
        end = len(blob) if before is None else before * ROW_BYTES
        while True:
            at = blob.rfind(digest, 0, end)
            if at < 0 or at % ROW_BYTES == 0:
                return at // ROW_BYTES if at >= 0 else -1
            end = at + _ID_BYTES - 1  # a misaligned hit: look for one starting earlier

    def entry(self, row: int) -> _Entry:
        at = row * ROW_BYTES
        digest = self.digests[at : at + _ID_BYTES]
        return _Entry(
            # A reversal's id is known by name (the snapshot keeps it); others by digest.
            self.names.get(row, digest),
            self.digests[at + _ID_BYTES : at + ROW_BYTES],
            self.kinds[row],
            self.revisions[row],
            self.amounts[row],
            self.balances[row],
            self.find(digest, row),
            self.targets.get(row, -1),
        )


class _Log:
    """Append-only storage shared by the successive versions of one window.

    Positions below len(base rows) may start as None: rows of a snapshot's window, built from
    the columnar base the first time they are read.
    """

    __slots__ = ("base", "digest_keys", "entries", "latest", "lock", "reversed_by")

    def __init__(self, *, digest_keys: bool = False, base: _Base | None = None) -> None:
        self.entries: list[_Entry | None] = []
        self.latest: dict[str | bytes, int] = {}
        self.reversed_by: dict[int, int] = {}
        self.digest_keys = digest_keys
        self.base = base
        self.lock = threading.Lock()

    def entry(self, position: int) -> _Entry:
        found = self.entries[position]
        if found is None:
            assert self.base is not None
            found = self.entries[position] = self.base.entry(position)
        return found

    def last(self, key: str | bytes) -> int:
        """The newest position holding this key, or -1."""
        position = self.latest.get(key, -1)
        if position < 0 and self.base is not None and isinstance(key, bytes):
            position = self.base.find(key)
        return position


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
        log = self._log
        position = log.last(key)
        # Later versions may have appended the same key; walk back to this version's slice.
        while position >= self._stop:
            position = log.entry(position).previous
        return position if position >= self._start else -1

    def _position(self, transaction_id: str) -> int:
        position = self._visible(transaction_id)
        if self._log.digest_keys:
            position = max(position, self._visible(id_digest(transaction_id)))
        return position

    def _reversal(self, position: int) -> int:
        """The position of the posting that reversed this one in this version, or -1."""
        reversal = self._log.reversed_by.get(position)
        return reversal if reversal is not None and reversal < self._stop else -1

    def same_content(self, transaction_id: str, content: Content) -> bool | None:
        """Whether the posting with this id had this content; None if the window lacks it."""
        position = self._position(transaction_id)
        if position < 0:
            return None
        known = self._log.entry(position).content
        return known == (content_digest(content) if isinstance(known, bytes) else content)

    def record(self, transaction_id: str) -> TransactionRecord | None:
        """The posting with this transaction id, or None if the window does not hold it."""
        position = self._position(transaction_id)
        if position < 0:
            return None
        entry = self._log.entry(position)
        reversal = self._reversal(position)
        reversed_by = self._log.entry(reversal).key if reversal >= 0 else None
        return TransactionRecord(
            transaction_id=transaction_id,
            kind=entry.kind,
            revision=entry.revision,
            amount=entry.amount,
            balance_after=entry.balance_after,
            reversed=reversal >= 0,
            reversed_by=reversed_by if isinstance(reversed_by, str) else None,
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
                    log.last(transaction_id),
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
        source = self._log
        for position in range(self._stop - start):
            key, content, kind, revision, amount, balance_after, _, reverses = source.entry(
                start + position
            )
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
        entry = self._log.entry
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
                entry.key if entry.reverses >= start and isinstance(entry.key, str) else None,
            )
            for entry in map(entry, range(start, self._stop))
        ]

    @classmethod
    def from_rows(cls, rows: Iterable[WindowRow]) -> TransactionWindow:
        """Rebuild a window from rows (as rows() returns them); only the last WINDOW_SIZE count."""
        kept = list(rows)
        return cls.from_columns(
            b"".join(row.id_digest + row.content_digest for row in kept),
            [row.kind for row in kept],
            [row.revision for row in kept],
            [row.amount for row in kept],
            [row.balance_after for row in kept],
            {index: row.reverses for index, row in enumerate(kept) if row.reverses >= 0},
            {index: row.name for index, row in enumerate(kept) if row.name is not None},
        )

    @classmethod
    def from_columns(
        cls,
        digests: bytes,
        kinds: Sequence[PostingKind],
        revisions: Sequence[int],
        amounts: Sequence[int],
        balances_after: Sequence[int],
        reverses: Mapping[int, int],
        names: Mapping[int, str] | None = None,
    ) -> TransactionWindow:
        """Rebuild a window from columns, oldest first: packed (id, content) digests, 24 bytes
        a row, {row: the row it reverses} and {reversal row: its transaction id}. Rows are
        materialised lazily (see _Base)."""
        names = names or {}
        count = len(kinds)
        if len(digests) != count * ROW_BYTES or {
            len(revisions),
            len(amounts),
            len(balances_after),
        } - {count}:
            raise ValueError("window columns of different lengths")
        if count > WINDOW_SIZE:
            drop = count - WINDOW_SIZE
            return cls.from_columns(
                digests[drop * ROW_BYTES :],
                kinds[drop:],
                revisions[drop:],
                amounts[drop:],
                balances_after[drop:],
                {i - drop: t - drop for i, t in reverses.items() if t >= drop},
                {i - drop: name for i, name in names.items() if i >= drop},
            )
        targets = {i: t for i, t in sorted(reverses.items()) if 0 <= t < i < count}
        base = _Base(
            digests,
            kinds,
            revisions,
            amounts,
            balances_after,
            targets,
            {i: name for i, name in names.items() if i in targets},
        )
        log = _Log(digest_keys=True, base=base)
        log.entries = [None] * count
        for index, target in targets.items():
            log.reversed_by.setdefault(target, index)
        return cls(log, 0, count)
