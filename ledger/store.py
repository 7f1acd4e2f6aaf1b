"""The event store port: the EventStore protocol the handler depends on, and what it returns."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ledger.accounts.commands import CommandMeta
from ledger.accounts.events import (
    AccountEvent,
    deserialise_event,
    encode_metadata,
    schema_version_from_metadata,
    serialise_event,
)
from ledger.errors import LedgerError

# Fixed, so that an event's id is the same in every process that writes it.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2b0e-7d2a-4a53-9c35-3f8e51f1a0d4")


def event_id(account_id: str, revision: int, data: bytes) -> uuid.UUID:
    """A deterministic id, so that a retried append of the same events is deduplicated."""
    # The id covers the event's content, not only its transaction id: a concurrent command
    # that reuses a transaction id for other content at the same revision must get a version
    # conflict (and then TransactionConflictError), never pass as a retry of the first one.
    digest = hashlib.sha256(data).hexdigest()
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{account_id}/{revision}/{digest}")


class VersionConflict(LedgerError):
    """The stream moved on since it was read (optimistic concurrency)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An account event as read back, with where it is in its stream and in $all."""

    revision: int
    commit_position: int
    event: AccountEvent
    # The stored metadata (audit fields: actor, correlation and causation ids) as written;
    # kept undecoded, so that the handler's reads pay nothing for it.
    metadata: bytes = b""


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An account event in its stored form: deterministic id, type, JSON data and metadata."""

    id: uuid.UUID
    type: str
    data: bytes
    metadata: bytes


def encode_events(
    account_id: str, *, expected_revision: int, events: Sequence[AccountEvent], meta: CommandMeta
) -> list[EncodedEvent]:
    """The events as appended after expected_revision, each with the id of its revision."""
    encoded = []
    for i, event in enumerate(events):
        event_type, data = serialise_event(event)
        encoded.append(
            EncodedEvent(
                event_id(account_id, expected_revision + 1 + i, data),
                event_type,
                data,
                encode_metadata(event, meta),
            )
        )
    return encoded


def decode_event(
    revision: int, commit_position: int, event_type: str, data: bytes, metadata: bytes
) -> StoredEvent:
    """An event read back from its stored form, upcast to the current schema."""
    version = schema_version_from_metadata(metadata)
    return StoredEvent(
        revision, commit_position, deserialise_event(event_type, data, version), bytes(metadata)
    )


class EventStore(Protocol):
    """Account streams with optimistic concurrency, snapshot streams and $all positions.

    Implemented by the esdbclient adapter (ledger.eventstore) and in memory (ledger.memory_store).
    """

    def read(self, account_id: str, *, from_revision: int = 0) -> list[StoredEvent]:
        """The account's events from a revision on; empty when the stream does not exist."""
        ...

    def read_one(self, account_id: str, *, revision: int) -> StoredEvent | None:
        """The event at one revision of the account, if there is one."""
        ...

    def current_revision(self, account_id: str) -> int:
        """The revision of the account's newest event (-1 when the stream does not exist)."""
        ...

    def read_all(self, *, from_position: int = 0) -> Iterator[tuple[str, StoredEvent]]:
        """(account id, event) of every account event in $all order, from the event at
        `from_position` (a commit position, or 0 for the start) to the end."""
        ...

    def append(
        self,
        account_id: str,
        *,
        expected_revision: int,
        events: Sequence[AccountEvent],
        meta: CommandMeta,
    ) -> int:
        """Append at exactly the revision read (-1: a new stream); return the commit position.

        VersionConflict when the stream is elsewhere; the same events appended again at the
        same revision (a retry) are written once and answer the original commit position.
        """
        ...

    def read_snapshot(self, account_id: str) -> bytes | None:
        """The newest snapshot's data, or None."""
        ...

    def write_snapshot(self, account_id: str, data: bytes) -> None:
        """Store a snapshot, best effort: it never fails a command."""
        ...

    def commit_position(self) -> int:
        """The commit position of the newest event in the store (0 when none)."""
        ...
