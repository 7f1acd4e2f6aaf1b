"""Projection checkpoints: each slot's committed $all position, read, locked and moved forward."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg


def read_checkpoints(conn: psycopg.Connection[Any], slots: Sequence[str]) -> dict[str, int]:
    """Each slot's committed position (0: nothing applied yet)."""
    rows = conn.execute(
        "SELECT projection, position FROM projection_checkpoints WHERE projection = ANY(%s)",
        (list(slots),),
    ).fetchall()
    found = {name: int(pos) for name, pos in rows}
    return {s: found.get(s, 0) for s in slots}


def lock_checkpoint(cur: psycopg.Cursor[Any], slot: str) -> int:
    """A slot's position, its row locked until the caller's transaction ends (0: none yet)."""
    row = cur.execute(
        "SELECT position FROM projection_checkpoints WHERE projection = %s FOR UPDATE", (slot,)
    ).fetchone()
    return int(row[0]) if row else 0


def ensure_checkpoints(conn: psycopg.Connection[Any], slots: Sequence[str]) -> None:
    """Give every slot a checkpoint row (at 0 if new), so that each batch can lock its row."""
    conn.cursor().executemany(
        "INSERT INTO projection_checkpoints (projection, position, updated_at)"
        " VALUES (%s, 0, now()) ON CONFLICT (projection) DO NOTHING",
        [(s,) for s in slots],
    )


def advance_checkpoint(
    db: psycopg.Connection[Any] | psycopg.Cursor[Any], slot: str, position: int
) -> None:
    """Move a slot's checkpoint to `position`, never backwards, in the caller's transaction."""
    db.execute(
        "INSERT INTO projection_checkpoints (projection, position, updated_at)"
        " VALUES (%s, %s, now()) ON CONFLICT (projection) DO UPDATE SET"
        " position = GREATEST(projection_checkpoints.position, EXCLUDED.position),"
        " updated_at = now()",
        (slot, position),
    )


class SlotCheckpoint:
    """One slot's checkpoint on a connection of its own: the transfer process manager's."""

    def __init__(self, conn: psycopg.Connection[Any], slot: str) -> None:
        self.conn = conn
        self.slot = slot

    def load(self) -> int:
        """The slot's committed position (0: none yet)."""
        return read_checkpoints(self.conn, [self.slot])[self.slot]

    def save(self, position: int) -> None:
        """Move the slot forward (never back), committed at once."""
        with self.conn.transaction():
            advance_checkpoint(self.conn, self.slot, position)
