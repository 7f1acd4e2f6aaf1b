"""What projections consume: account events from $all, with their stream revision and position."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from psycopg import Cursor

from ledger.accounts.events import AccountEvent, deserialise_event, schema_version_from_metadata
from ledger.streams import ACCOUNT_STREAM_PREFIX

SHADOW = "__next"  # suffix of the tables a blue/green rebuild fills
JOIN_TIMEOUT = 10.0  # seconds a stopped reader gets to leave its gRPC call

log = logging.getLogger("projections.feed")


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


class SubscriptionReader(threading.Thread):
    """Reads a catch-up subscription into a bounded queue, so that batches can close on a timer.

    `close()` cancels the call and joins the thread: only then may the caller close the client,
    so that no thread is inside a gRPC call while its channel (or the interpreter) shuts down.
    """

    def __init__(self, subscription: Any, out: queue.Queue[Any]) -> None:
        super().__init__(daemon=True, name="projection-subscription")
        self.subscription = subscription
        self.out = out
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            for item in self.subscription:
                if not self._offer(item):
                    return
        except Exception as exc:
            self._offer(exc)
            return
        self._offer(ConnectionError("the subscription ended"))

    def _offer(self, item: Any) -> bool:
        """Queue an item unless stopping (never blocked for good by a full queue)."""
        while not self.stopping.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def close(self, timeout: float = JOIN_TIMEOUT) -> None:
        """Stop the subscription (cancelling its call) and wait for the thread to leave it."""
        self.stopping.set()
        # The connection may already be gone; cancelling a finished call is a no-op.
        with contextlib.suppress(Exception):
            self.subscription.stop()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout)
        if self.is_alive():
            log.warning("the subscription reader did not stop within %.0fs", timeout)
