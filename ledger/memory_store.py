"""An EventStore in memory, with the server's concurrency, idempotency and $all positions."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.accounts.commands import CommandMeta
from ledger.accounts.events import (
    AccountEvent,
    deserialise_event,
    encode_metadata,
    schema_version_from_metadata,
    serialise_event,
)
from ledger.store import StoredEvent, VersionConflict, event_id
from ledger.streams import account_stream


@dataclass(frozen=True, slots=True)
class _Record:
    """One event as a server keeps it: serialised, with its id and its position in $all."""

    id: uuid.UUID
    type: str
    data: bytes
    metadata: bytes
    commit_position: int


class InMemoryEventStore:
    """Account streams, snapshot streams and one $all order, shared by every handler using it.

    Events are stored serialised, as the server stores them, so a read decodes (and upcasts)
    what an append encoded. Appends are checked as EventStoreDB checks them: at exactly the
    expected revision, or an idempotent repeat of events already there (same ids at the same
    revisions), else VersionConflict.
    """

    def __init__(self) -> None:
        self._streams: dict[str, list[_Record]] = {}
        self._snapshots: dict[str, list[bytes]] = {}
        self._position = 0
        self._lock = threading.Lock()

    def read(self, account_id: str, *, from_revision: int = 0) -> list[StoredEvent]:
        """The account's events from a revision on; empty when the stream does not exist."""
        start = max(from_revision, 0)
        with self._lock:
            records = self._streams.get(account_id, [])[start:]
        return [self._decode(start + i, record) for i, record in enumerate(records)]

    def read_one(self, account_id: str, *, revision: int) -> StoredEvent | None:
        """The event at one revision of the account, if there is one."""
        with self._lock:
            records = self._streams.get(account_id, [])
            record = records[revision] if 0 <= revision < len(records) else None
        return self._decode(revision, record) if record is not None else None

    @staticmethod
    def _decode(revision: int, record: _Record) -> StoredEvent:
        version = schema_version_from_metadata(record.metadata)
        event = deserialise_event(record.type, record.data, version)
        return StoredEvent(revision, record.commit_position, event)

    def append(
        self,
        account_id: str,
        *,
        expected_revision: int,
        events: Sequence[AccountEvent],
        meta: CommandMeta,
    ) -> int:
        """Append at exactly the revision read (-1: a new stream); return the commit position."""
        proposed = []
        for i, event in enumerate(events):
            event_type, data = serialise_event(event)
            proposed.append(
                (
                    event_id(account_id, expected_revision + 1 + i, data),
                    event_type,
                    data,
                    encode_metadata(event, meta),
                )
            )
        with self._lock:
            stream = self._streams.get(account_id, [])
            current = len(stream) - 1
            if expected_revision < current:
                return self._repeated(account_id, stream, expected_revision, proposed)
            if expected_revision > current:
                raise self._conflict(account_id, expected_revision, current)
            for id_, event_type, data, metadata in proposed:
                self._position += 1
                stream.append(_Record(id_, event_type, data, metadata, self._position))
            self._streams[account_id] = stream
            return self._position

    def _repeated(
        self,
        account_id: str,
        stream: list[_Record],
        expected_revision: int,
        proposed: list[tuple[uuid.UUID, str, bytes, bytes]],
    ) -> int:
        """The original position when every event is already there at its revision."""
        current = len(stream) - 1
        revisions = range(expected_revision + 1, expected_revision + 1 + len(proposed))
        if (
            not proposed
            or revisions[-1] > current
            or any(stream[r].id != p[0] for r, p in zip(revisions, proposed, strict=True))
        ):
            raise self._conflict(account_id, expected_revision, current)
        return stream[revisions[-1]].commit_position

    @staticmethod
    def _conflict(account_id: str, expected: int, current: int) -> VersionConflict:
        shown = "no stream" if current < 0 else current
        return VersionConflict(
            f"stream {account_stream(account_id)}: expected revision {expected}, current {shown}"
        )

    def read_snapshot(self, account_id: str) -> bytes | None:
        """The newest snapshot's data, or None."""
        with self._lock:
            snapshots = self._snapshots.get(account_id)
            return snapshots[-1] if snapshots else None

    def write_snapshot(self, account_id: str, data: bytes) -> None:
        """Store a snapshot; like a snapshot stream's event, it takes a position in $all."""
        with self._lock:
            self._position += 1
            self._snapshots.setdefault(account_id, []).append(bytes(data))

    def commit_position(self) -> int:
        """The commit position of the newest event in the store (0 when none)."""
        with self._lock:
            return self._position
