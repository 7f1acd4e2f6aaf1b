"""Parked events: list them, and apply an account's parked events again after a fix."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from projections.applier import PROJECTIONS, Applier, BatchResult, pause_key
from projections.feed import ProjectedEvent


@dataclass(frozen=True)
class ParkedEvent:
    """An event a projection could not apply."""

    projection: str
    account_id: str
    revision: int
    position: int
    event_type: str
    error: str
    parked_at: dt.datetime


def list_parked(
    conn: psycopg.Connection[Any],
    account_id: str | None = None,
    *,
    projection: str | None = None,
) -> list[ParkedEvent]:
    """Parked events of the live projections (or one of them), oldest first."""
    rows = conn.execute(
        "SELECT projection, account_id, revision, position, event_type, error, parked_at"
        " FROM parked_events WHERE projection = ANY(%s)"
        " AND (%s::text IS NULL OR account_id = %s)"
        " ORDER BY account_id, revision, projection",
        ([projection] if projection else list(PROJECTIONS), account_id, account_id),
    ).fetchall()
    return [ParkedEvent(*r) for r in rows]


def replay_parked(conn: psycopg.Connection[Any], account_id: str | None = None) -> BatchResult:
    """Apply parked events again, in order; those that still fail are parked again."""
    with conn.transaction():
        # Pause the live runners before reading: an event they parked between this read and
        # the replay would be deleted with the others without being replayed, and lost.
        for name in PROJECTIONS:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (pause_key(name),))
        rows = conn.execute(
            "SELECT DISTINCT ON (account_id, revision) account_id, revision, position, event_id,"
            " event_type, data, metadata, recorded_at FROM parked_events"
            " WHERE projection = ANY(%s) AND (%s::text IS NULL OR account_id = %s)"
            " ORDER BY account_id, revision",
            (list(PROJECTIONS), account_id, account_id),
        ).fetchall()
        events = sorted(
            (
                ProjectedEvent(
                    acc, int(rev), int(pos), eid, etype, bytes(data), bytes(meta), recorded_at
                )
                for acc, rev, pos, eid, etype, data, meta, recorded_at in rows
            ),
            key=lambda e: e.position,
        )
        if not events:
            return BatchResult()
        return Applier(conn, list(PROJECTIONS.values())).apply_batch(events, 0, replay=True)
