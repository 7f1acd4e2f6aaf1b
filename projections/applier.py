"""Applies a batch to projections in one transaction: revision guards, parking, checkpoint."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import psycopg
from psycopg import Cursor

from ledger.errors import CorruptEventError, LedgerError
from projections.checkpoints import advance_checkpoint, lock_checkpoint, read_checkpoints
from projections.db import lock_key
from projections.feed import Applied, ProjectedEvent, Projection, follows_transfers
from projections.names import PROJECTION_NAMES

log = logging.getLogger("projections.applier")


def _load(name: str) -> Projection:
    """The projection that the module projections/<name>.py defines as PROJECTION."""
    projection: Projection = importlib.import_module(f"projections.{name}").PROJECTION
    return projection


PROJECTIONS: dict[str, Projection] = {name: _load(name) for name in PROJECTION_NAMES}
"""The live projections by name, in the order of projections.names (the one list)."""


class ProjectionGapError(LedgerError):
    """An account's events arrived with a revision missing: a posting would be skipped."""


def slot(projection: Projection, suffix: str) -> str:
    """The bookkeeping name of a projection's live ("") or shadow tables."""
    return projection.name + suffix


def pause_key(slot_name: str) -> int:
    """The advisory lock a rebuild takes exclusively to pause the live runner of a projection."""
    return lock_key("ledger-pause:" + slot_name)


def runner_key(slot_name: str) -> int:
    """The advisory lock held by the one active runner of a projection."""
    return lock_key("ledger-runner:" + slot_name)


@dataclass
class BatchResult:
    """What one batch did, per projection slot."""

    applied: dict[str, int] = field(default_factory=dict)
    parked: dict[str, int] = field(default_factory=dict)


class Fence(Protocol):
    """Raises unless the writer may still write, checked inside its transaction."""

    def __call__(self, cur: Cursor[Any], /) -> None: ...


class Applier:
    """Writes batches for a set of projections (live tables, or a rebuild's shadow tables)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        projections: Sequence[Projection],
        suffix: str = "",
        *,
        fence: Fence | None = None,
    ) -> None:
        self.conn = conn
        self.projections = list(projections)
        self.suffix = suffix
        self.fence = fence

    @property
    def slots(self) -> list[str]:
        """The bookkeeping names of this applier's projections."""
        return [slot(p, self.suffix) for p in self.projections]

    def checkpoints(self) -> dict[str, int]:
        """Each slot's committed position (0: nothing applied yet)."""
        return read_checkpoints(self.conn, self.slots)

    def apply_batch(
        self, events: Sequence[ProjectedEvent], upto: int, *, replay: bool = False
    ) -> BatchResult:
        """Apply the events (in $all order) and move every checkpoint to `upto`, atomically.

        With `replay`, the events are parked ones being applied again: the checkpoint neither
        filters them nor moves, and the live runner is paused for the transaction.
        """
        result = BatchResult()
        decoded: dict[int, Any] = {}  # an event, or its CorruptEventError
        lock = (
            "SELECT pg_advisory_xact_lock(%s)"
            if replay
            else "SELECT pg_advisory_xact_lock_shared(%s)"
        )
        with self.conn.transaction(), self.conn.cursor() as cur:
            for projection in self.projections:
                name = slot(projection, self.suffix)
                if not self.suffix:
                    # A rebuild pauses the live runner by taking this lock exclusively.
                    cur.execute(lock, (pause_key(name),))
                if replay:
                    cur.execute(
                        "UPDATE projection_accounts SET parked = false "
                        "WHERE projection = %s AND account_id = ANY(%s)",
                        (name, sorted({e.account_id for e in events})),
                    )
                    cur.execute(
                        "DELETE FROM parked_events WHERE projection = %s AND account_id = ANY(%s)",
                        (name, sorted({e.account_id for e in events})),
                    )
                    upto = -1
                applied, parked = self._apply_one(cur, projection, name, events, upto, decoded)
                result.applied[name] = applied
                result.parked[name] = parked
            if self.fence is not None:
                # Last, with every checkpoint row locked: a runner that took over since cannot
                # have written yet, and this transaction writes nothing unless we still lead.
                self.fence(cur)
            cur.execute("SELECT pg_notify(%s, %s)", ("ledger_projections", str(upto)))
        return result

    def _apply_one(
        self,
        cur: Cursor[Any],
        projection: Projection,
        name: str,
        events: Sequence[ProjectedEvent],
        upto: int,
        decoded: dict[int, Any],
    ) -> tuple[int, int]:
        checkpoint = lock_checkpoint(cur, name)
        todo = [e for e in events if e.position > checkpoint] if upto >= 0 else list(events)
        if not follows_transfers(projection):
            todo = [e for e in todo if not e.of_transfer]
        accounts = sorted({e.account_id for e in todo})
        state: dict[str, tuple[int, bool]] = {}
        if accounts:
            for account_id, last, parked in cur.execute(
                "SELECT account_id, last_revision, parked FROM projection_accounts "
                "WHERE projection = %s AND account_id = ANY(%s)",
                (name, accounts),
            ):
                state[account_id] = (int(last), bool(parked))
        accepted: list[Applied] = []
        to_park: list[tuple[ProjectedEvent, str]] = []
        for e in todo:
            last, parked = state.get(e.account_id, (-1, False))
            if parked:
                to_park.append((e, "the account is parked by an earlier event"))
                continue
            if e.revision <= last:
                continue  # already applied: a replay after a crash or a resubscription
            if e.revision != last + 1:
                raise ProjectionGapError(
                    f"{name}: account {e.account_id} jumps from revision {last} to {e.revision} "
                    f"at position {e.position}; refusing to skip a posting"
                )
            event = decoded.get(e.position)
            if event is None:
                try:
                    event = e.decode()
                except CorruptEventError as exc:
                    event = exc
                decoded[e.position] = event
            if isinstance(event, CorruptEventError):
                to_park.append((e, str(event)))
                state[e.account_id] = (last, True)
                continue
            # A transfer's event only reaches a projection that follows them (see Projection).
            accepted.append(cast(Applied, (e, event)))
            state[e.account_id] = (e.revision, False)
        accepted = self._apply_isolating_poison(cur, projection, accepted, to_park, state)
        if state:
            cur.executemany(
                "INSERT INTO projection_accounts (projection, account_id, last_revision, parked) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (projection, account_id) DO UPDATE SET "
                "last_revision = EXCLUDED.last_revision, parked = EXCLUDED.parked",
                [(name, acc, last, parked) for acc, (last, parked) in state.items()],
            )
        if to_park:
            cur.executemany(
                "INSERT INTO parked_events (projection, account_id, revision, position, event_id,"
                " event_type, data, metadata, recorded_at, error) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (projection, account_id, revision) DO NOTHING",
                [
                    (
                        name,
                        e.account_id,
                        e.revision,
                        e.position,
                        e.event_id,
                        e.type,
                        e.data,
                        e.metadata,
                        e.recorded_at,
                        error,
                    )
                    for e, error in to_park
                ],
            )
            for e, error in to_park:
                log.warning("%s: parked %s@%d: %s", name, e.account_id, e.revision, error)
        if upto > checkpoint:
            advance_checkpoint(cur, name, upto)
        return len(accepted), len(to_park)

    def _apply_isolating_poison(
        self,
        cur: Cursor[Any],
        projection: Projection,
        accepted: list[Applied],
        to_park: list[tuple[ProjectedEvent, str]],
        state: dict[str, tuple[int, bool]],
    ) -> list[Applied]:
        """Apply the batch; if it fails, find the events that fail and park their accounts."""
        if not accepted:
            return accepted
        try:
            with self.conn.transaction():
                projection.apply(cur, accepted, self.suffix)
            return accepted
        except (psycopg.DataError, psycopg.IntegrityError, LedgerError, ValueError) as exc:
            log.warning("%s: batch failed (%s); isolating the poison events", projection.name, exc)
        applied: list[Applied] = []
        poisoned: dict[str, int] = {}  # account -> revision before its first failing event
        for item in accepted:
            stored = item[0]
            if stored.account_id in poisoned:
                to_park.append((stored, "the account is parked by an earlier event"))
                continue
            try:
                with self.conn.transaction():
                    projection.apply(cur, [item], self.suffix)
                applied.append(item)
            except (psycopg.DataError, psycopg.IntegrityError, LedgerError, ValueError) as exc:
                poisoned[stored.account_id] = stored.revision - 1
                to_park.append((stored, f"{type(exc).__name__}: {exc}"))
        for account_id, last in poisoned.items():
            state[account_id] = (last, True)
        return applied
