"""What projections consume: account events from $all, with their stream revision and position."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from psycopg import Cursor

from ledger.accounts.events import AccountEvent, deserialise_event, schema_version_from_metadata
from ledger.streams import ACCOUNT_STREAM_PREFIX

SHADOW = "__next"  # suffix of the tables a blue/green rebuild fills


@dataclass(frozen=True, slots=True)
class ProjectedEvent:
    """An account event as delivered by the subscription (still encoded)."""

    account_id: str
    revision: int
    position: int
    event_id: uuid.UUID
    type: str
    data: bytes
    metadata: bytes
    recorded_at: datetime

    @classmethod
    def from_recorded(cls, recorded: Any) -> ProjectedEvent:
        """From an esdbclient RecordedEvent of an account stream."""
        return cls(
            recorded.stream_name[len(ACCOUNT_STREAM_PREFIX) :],
            recorded.stream_position,
            recorded.commit_position,
            recorded.id,
            recorded.type,
            bytes(recorded.data),
            bytes(recorded.metadata),
            recorded.recorded_at,
        )

    def decode(self) -> AccountEvent:
        """The domain event (upcast to the current schema); raises CorruptEventError."""
        return deserialise_event(self.type, self.data, schema_version_from_metadata(self.metadata))


Applied = tuple[ProjectedEvent, AccountEvent]


class Projection(Protocol):
    """A read model: applies guarded, in-order events of a batch inside its transaction."""

    @property
    def name(self) -> str:
        """The projection's name (also its bookkeeping slot for the live tables)."""

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables it owns; a rebuild builds `<table>__next` and swaps them in."""

    def apply(self, cur: Cursor[Any], events: Sequence[Applied], suffix: str) -> None:
        """Write the rows for these events into the tables named with `suffix`."""
