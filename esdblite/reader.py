"""Reads of committed records, each thread on its own read-only index connection."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from esdblite.index import COLUMNS, Row, connect, is_position, stream_state
from esdblite.rules import DELETED, StreamState


class Reader:
    """Answers reads from executor threads; `upto` is the last committed position to show."""

    def __init__(self, index_path: Path) -> None:
        self.index_path = index_path
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        """This thread's read-only connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.index_path, readonly=True)
            self._local.conn = conn
        return conn

    def stream_state(self, stream: str) -> StreamState:
        """A stream's committed state."""
        return stream_state(self.connection(), stream)

    def is_position(self, position: int) -> bool:
        """Whether a record (kept or scavenged) starts at this $all position."""
        return is_position(self.connection(), position)

    def read_stream(
        self,
        stream: str,
        start: int,
        backwards: bool,
        limit: int,
        min_revision: int,
        upto: int,
        min_created: int = 0,
    ) -> list[Row]:
        """Up to `limit` events of a stream from revision `start` (inclusive), none below
        `min_revision` or created before `min_created` (the stream's retention)."""
        if backwards:
            sql = (
                f"SELECT {COLUMNS} FROM events WHERE stream = ? AND revision <= ? "
                "AND revision >= ? AND created >= ? AND position <= ? "
                "ORDER BY revision DESC LIMIT ?"
            )
            args: tuple[object, ...] = (stream, min(start, DELETED - 1), min_revision)
        else:
            sql = (
                f"SELECT {COLUMNS} FROM events WHERE stream = ? AND revision >= ? "
                "AND revision < ? AND created >= ? AND position <= ? ORDER BY revision LIMIT ?"
            )
            args = (stream, max(start, min_revision), DELETED)
        return self._rows(sql, (*args, min_created, upto, limit))

    def read_stream_after(self, stream: str, after: int, limit: int, upto: int) -> list[Row]:
        """Records of a stream after a revision, tombstone included (subscriptions)."""
        return self._rows(
            f"SELECT {COLUMNS} FROM events WHERE stream = ? AND revision > ? "
            "AND position <= ? ORDER BY revision LIMIT ?",
            (stream, after, upto, limit),
        )

    def read_all(
        self, position: int, backwards: bool, limit: int, inclusive: bool, upto: int
    ) -> list[Row]:
        """Up to `limit` records of $all from a position."""
        if backwards:
            return self._rows(
                f"SELECT {COLUMNS} FROM events WHERE position < ? AND position <= ? "
                "ORDER BY position DESC LIMIT ?",
                (position, upto, limit),
            )
        op = ">=" if inclusive else ">"
        return self._rows(
            f"SELECT {COLUMNS} FROM events WHERE position {op} ? AND position <= ? "
            "ORDER BY position LIMIT ?",
            (position, upto, limit),
        )

    def _rows(self, sql: str, args: tuple[object, ...]) -> list[Row]:
        rows: list[Row] = self.connection().execute(sql, args).fetchall()
        return rows
