"""What projections consume: account and transfer events from $all, with their stream revision
and position."""

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
from ledger.streams import ACCOUNT_STREAM_PREFIX, TRANSFER_STREAM_PREFIX
from ledger.transfers.events import AnyTransferEvent, deserialise_transfer_event

SHADOW = "__next"  # suffix of the tables a blue/green rebuild fills
JOIN_TIMEOUT = 10.0  # seconds a stopped reader gets to leave its gRPC call

log = logging.getLogger("projections.feed")

# The streams projections follow (server side, on the stream name): accounts, and transfers.
FEED_FILTER = [ACCOUNT_STREAM_PREFIX + ".*", TRANSFER_STREAM_PREFIX + ".*"]
# A transfer stream's key where projections keep an account id (':' is never in an account id).
TRANSFER_KEY_PREFIX = "transfer:"


def transfer_key(transfer_id: str) -> str:
    """The key a transfer's stream has in projections' per-stream bookkeeping."""
    return TRANSFER_KEY_PREFIX + transfer_id


@dataclass(frozen=True, slots=True)
class ProjectedEvent:
    """An account or transfer event as delivered by the subscription (still encoded);
    `account_id` is the account's id, or a transfer's `transfer_key`."""

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
        """From an esdbclient RecordedEvent of an account or a transfer stream."""
        name: str = recorded.stream_name
        return cls(
            transfer_key(name[len(TRANSFER_STREAM_PREFIX) :])
            if name.startswith(TRANSFER_STREAM_PREFIX)
            else name[len(ACCOUNT_STREAM_PREFIX) :],
            recorded.stream_position,
            recorded.commit_position,
            recorded.id,
            recorded.type,
            bytes(recorded.data),
            bytes(recorded.metadata),
            recorded.recorded_at,
        )

    @property
    def of_transfer(self) -> bool:
        """True for an event of a transfer's stream."""
        return self.account_id.startswith(TRANSFER_KEY_PREFIX)

    def decode(self) -> AccountEvent | AnyTransferEvent:
        """The domain event (upcast to the current schema); raises CorruptEventError."""
        if self.of_transfer:
            return deserialise_transfer_event(self.type, self.data)
        return deserialise_event(self.type, self.data, schema_version_from_metadata(self.metadata))


Applied = tuple[ProjectedEvent, AccountEvent]
"""An account event, as every projection is given it."""
FedEvent = tuple[ProjectedEvent, AccountEvent | AnyTransferEvent]
"""Either kind of event, as a projection that `follows_transfers` is given it."""


class Projection(Protocol):
    """A read model: applies guarded, in-order events of a batch inside its transaction."""

    @property
    def name(self) -> str:
        """The projection's name (also its bookkeeping slot for the live tables)."""

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables it owns; a rebuild builds `<table>__next` and swaps them in."""

    def apply(self, cur: Cursor[Any], events: Sequence[Applied], suffix: str) -> None:
        """Write the rows for these events into the tables named with `suffix`.

        Only account events, unless the projection has `follows_transfers = True`: then the
        transfer streams' events too (the applier never gives them to any other)."""


def follows_transfers(projection: Projection) -> bool:
    """Whether the projection is given the transfer streams' events too (its
    `follows_transfers = True`); every other one gets account events only."""
    return bool(getattr(projection, "follows_transfers", False))


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
