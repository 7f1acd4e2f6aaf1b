"""EventStoreDB's commit check (IndexWriter.CheckCommit): expected revision and idempotency."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

NO_STREAM = -1
ANY = -2
STREAM_EXISTS = -4
DELETED = 2**63 - 1  # the tombstone's revision, and `$tb` of a soft-deleted stream


@dataclass(frozen=True, slots=True)
class StreamState:
    """What the commit check needs to know about a stream."""

    last_revision: int  # -1 when the stream has no events
    tombstoned: bool
    truncate_before: int  # `$tb` from the latest metadata, 0 when none
    metadata: bytes | None  # the latest metadata event's data
    metadata_exists: bool  # the metastream has at least one event

    @property
    def soft_deleted(self) -> bool:
        """A soft delete sets `$tb` to the maximum revision."""
        return self.truncate_before == DELETED and not self.tombstoned

    @property
    def current(self) -> int:
        """The revision clients see in wrong-expected-version answers."""
        return DELETED if self.tombstoned else self.last_revision

    def advanced(self, last_revision: int) -> StreamState:
        """The state after appending up to `last_revision` (dataclasses.replace, made cheap)."""
        return StreamState(
            last_revision,
            self.tombstoned,
            self.truncate_before,
            self.metadata,
            self.metadata_exists,
        )


@dataclass(frozen=True, slots=True)
class Ok:
    """Write the events as revisions current+1 onwards."""

    undelete: bool


@dataclass(frozen=True, slots=True)
class Idempotent:
    """Every event is already there: answer with the original revision (of the last event)."""

    revision: int


@dataclass(frozen=True, slots=True)
class WrongExpected:
    """The expectation does not hold; `current` is the stream's last revision."""

    current: int


@dataclass(frozen=True, slots=True)
class Deleted:
    """The stream is tombstoned (or soft-deleted, for STREAM_EXISTS)."""


Outcome = Ok | Idempotent | WrongExpected | Deleted


def check_commit(
    state: StreamState,
    expected: int,
    ids: Sequence[bytes],
    revision_of_id: Callable[[bytes], int | None],
    id_at_revision: Callable[[int], bytes | None],
) -> Outcome:
    """Decide an append as EventStoreDB does; the callables look events up in this stream."""
    cur = state.last_revision
    if state.tombstoned:
        return Deleted()
    if expected == STREAM_EXISTS:
        if state.soft_deleted:
            return Deleted()
        if cur < 0 and not state.metadata_exists:
            return WrongExpected(cur)
    if expected in (ANY, STREAM_EXISTS):
        if not ids:
            return Ok(undelete=False)
        first = revision_of_id(ids[0])
        if first is None:
            return Ok(undelete=state.soft_deleted)
        last = first
        for event_id in ids[1:]:
            rev = revision_of_id(event_id)
            if rev is None:
                return WrongExpected(cur)
            last = rev
        return Idempotent(last)
    if expected < cur:
        if not ids:
            return WrongExpected(cur)
        for i, event_id in enumerate(ids):
            rev = expected + 1 + i
            if rev > cur:
                return WrongExpected(cur)
            if id_at_revision(rev) != event_id:
                if i == 0 and expected == NO_STREAM and state.soft_deleted:
                    return Ok(undelete=True)
                return WrongExpected(cur)
        return Idempotent(expected + len(ids))
    if expected > cur:
        return WrongExpected(cur)
    return Ok(undelete=state.soft_deleted)
