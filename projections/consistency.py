"""Eventual-consistency strategies on the read side: read-your-writes and version tracking waits."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from projections.names import PROJECTION_NAMES

CHANNEL = "ledger_projections"


def _wait(conn: psycopg.Connection[Any], done: Any, timeout: float) -> bool:
    """Re-check `done()` at every checkpoint notification (and every 100 ms) until the deadline."""
    deadline = time.monotonic() + timeout
    if done():
        return True
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bool(done())
            for _ in conn.notifies(timeout=min(remaining, 0.1), stop_after=1):
                pass
            if done():
                return True
    finally:
        conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(CHANNEL)))


def wait_for_position(
    conn: psycopg.Connection[Any],
    position: int,
    *,
    timeout: float,
    projections: Sequence[str] | None = None,
) -> bool:
    """Read-your-writes: wait until every projection has applied up to a commit position."""
    names = list(projections or PROJECTION_NAMES)

    def done() -> bool:
        row = conn.execute(
            "SELECT count(*) FROM projection_checkpoints"
            " WHERE projection = ANY(%s) AND position >= %s",
            (names, position),
        ).fetchone()
        return bool(row and row[0] == len(names))

    return _wait(conn, done, timeout)


def wait_for_revision(
    conn: psycopg.Connection[Any], account_id: str, min_revision: int, *, timeout: float
) -> bool:
    """Version tracking: wait until the account's balance row has reached a stream revision."""

    def done() -> bool:
        row = conn.execute(
            "SELECT last_revision FROM account_balances WHERE account_id = %s", (account_id,)
        ).fetchone()
        return bool(row and row[0] >= min_revision)

    return _wait(conn, done, timeout)
