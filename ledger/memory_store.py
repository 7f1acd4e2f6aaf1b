"""An EventStore in memory, with the server's concurrency, idempotency and $all positions."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from ledger.accounts.commands import CommandMeta
from ledger.accounts.events import AccountEvent
from ledger.store import EncodedEvent, StoredEvent, VersionConflict, decode_event, encode_events
from ledger.streams import account_stream, transfer_stream
from ledger.transfer_store import (
    StoredTransferEvent,
    decode_transfer_event,
    encode_transfer_events,
)
from ledger.transfers.events import AnyTransferEvent


class _Record(NamedTuple):
    """One event as a server keeps it: in its stored form, with its position in $all."""

    encoded: EncodedEvent
    commit_position: int


class InMemoryEventStore:
    """Account streams, snapshot streams and one $all order, shared by every handler using it.

    Events are kept in their stored form, so a read decodes (and upcasts) what an append
    encoded. Appends are checked as EventStoreDB checks them: at exactly the expected
    revision, or an idempotent repeat of events already there (the same ids at the same
    revisions), else VersionConflict. Snapshots take positions in $all, as snapshot streams do.
    """

    def __init__(self) -> None:
        self._streams: dict[str, list[_Record]] = {}
        self._snapshots: dict[str, list[bytes]] = {}
        self._transfers: dict[str, list[_Record]] = {}
        self._position = 0
        self._lock = threading.Lock()

    def read(self, account_id: str, *, from_revision: int = 0) -> list[StoredEvent]:
        """The account's events from a revision on; empty when the stream does not exist."""
        start = max(from_revision, 0)
        with self._lock:
            records = self._streams.get(account_id, [])[start:]
        return [_decode(start + i, record) for i, record in enumerate(records)]

    def read_one(self, account_id: str, *, revision: int) -> StoredEvent | None:
        """The event at one revision of the account, if there is one."""
        with self._lock:
            records = self._streams.get(account_id, [])
            record = records[revision] if 0 <= revision < len(records) else None
        return _decode(revision, record) if record is not None else None

    def current_revision(self, account_id: str) -> int:
        """The revision of the account's newest event (-1 when the stream does not exist)."""
        with self._lock:
            return len(self._streams.get(account_id, [])) - 1

    def read_all(self, *, from_position: int = 0) -> Iterator[tuple[str, StoredEvent]]:
        """(account id, event) of every account event in $all order, from a position on."""
        with self._lock:
            found = [
                (record.commit_position, account_id, revision, record)
                for account_id, stream in self._streams.items()
                for revision, record in enumerate(stream)
                if record.commit_position >= from_position
            ]
        for _, account_id, revision, record in sorted(found, key=lambda f: f[0]):
            yield account_id, _decode(revision, record)

    def append(
        self,
        account_id: str,
        *,
        expected_revision: int,
        events: Sequence[AccountEvent],
        meta: CommandMeta,
    ) -> int:
        """Append at exactly the revision read (-1: a new stream); return the commit position."""
        encoded = encode_events(
            account_id, expected_revision=expected_revision, events=events, meta=meta
        )
        return self._append(
            self._streams, account_id, account_stream(account_id), expected_revision, encoded
        )

    def read_snapshot(self, account_id: str) -> bytes | None:
        """The newest snapshot's data, or None."""
        with self._lock:
            snapshots = self._snapshots.get(account_id)
            return snapshots[-1] if snapshots else None

    def write_snapshot(self, account_id: str, data: bytes) -> None:
        """Store a snapshot."""
        with self._lock:
            self._position += 1
            self._snapshots.setdefault(account_id, []).append(bytes(data))

    def commit_position(self) -> int:
        """The commit position of the newest event in the store (0 when none)."""
        with self._lock:
            return self._position

    def read_transfer(self, transfer_id: str) -> list[StoredTransferEvent]:
        """The transfer's events; empty when its stream does not exist."""
        with self._lock:
            records = list(self._transfers.get(transfer_id, []))
        return [_decode_transfer(i, r) for i, r in enumerate(records)]

    def append_transfer(
        self,
        transfer_id: str,
        *,
        expected_revision: int,
        events: Sequence[AnyTransferEvent],
        meta: CommandMeta,
    ) -> int:
        """Append at exactly the revision read (-1: a new stream); return the commit position."""
        encoded = encode_transfer_events(
            transfer_id, expected_revision=expected_revision, events=events, meta=meta
        )
        name = transfer_stream(transfer_id)
        return self._append(self._transfers, transfer_id, name, expected_revision, encoded)

    def _append(
        self,
        streams: dict[str, list[_Record]],
        key: str,
        name: str,
        expected_revision: int,
        encoded: list[EncodedEvent],
    ) -> int:
        """Append at exactly the expected revision, as EventStoreDB checks it."""
        with self._lock:
            stream = streams.get(key, [])
            current = len(stream) - 1
            if expected_revision < current:
                return _repeated(name, stream, expected_revision, encoded)
            if expected_revision > current:
                raise _conflict(name, expected_revision, current)
            for event in encoded:
                self._position += 1
                stream.append(_Record(event, self._position))
            streams[key] = stream
            return self._position

    def read_all_transfers(
        self, *, from_position: int = 0
    ) -> Iterator[tuple[str, StoredTransferEvent]]:
        """(transfer id, event) of every transfer event in $all order, from a position on."""
        with self._lock:
            found = [
                (record.commit_position, transfer_id, revision, record)
                for transfer_id, stream in self._transfers.items()
                for revision, record in enumerate(stream)
                if record.commit_position >= from_position
            ]
        for _, transfer_id, revision, record in sorted(found, key=lambda f: f[0]):
            yield transfer_id, _decode_transfer(revision, record)


def _decode_transfer(revision: int, record: _Record) -> StoredTransferEvent:
    e = record.encoded
    return decode_transfer_event(revision, record.commit_position, e.type, e.data)


def _decode(revision: int, record: _Record) -> StoredEvent:
    e = record.encoded
    return decode_event(revision, record.commit_position, e.type, e.data, e.metadata)


def _repeated(
    name: str, stream: list[_Record], expected_revision: int, encoded: list[EncodedEvent]
) -> int:
    """The original position when every event is already there at its revision, else conflict."""
    current = len(stream) - 1
    revisions = range(expected_revision + 1, expected_revision + 1 + len(encoded))
    if (
        not encoded
        or revisions[-1] > current
        or any(stream[r].encoded.id != e.id for r, e in zip(revisions, encoded, strict=True))
    ):
        raise _conflict(name, expected_revision, current)
    return stream[revisions[-1]].commit_position


def _conflict(name: str, expected: int, current: int) -> VersionConflict:
    shown = "no stream" if current < 0 else current
    return VersionConflict(f"stream {name}: expected revision {expected}, current {shown}")
