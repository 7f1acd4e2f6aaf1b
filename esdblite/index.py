"""The SQLite index of the log: one row per record, by position, by stream revision, by event id."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from esdblite.log import HEADER_SIZE, EventLog, Record
from esdblite.retention import retention
from esdblite.rules import DELETED, StreamState

log = logging.getLogger("esdblite.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events(
    position INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    revision INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    type TEXT NOT NULL,
    is_json INTEGER NOT NULL,
    created INTEGER NOT NULL,
    metadata BLOB NOT NULL,
    data BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_revision ON events(stream, revision);
CREATE INDEX IF NOT EXISTS events_by_id ON events(stream, event_id);
CREATE TABLE IF NOT EXISTS scavenged(position INTEGER PRIMARY KEY);
"""

COLUMNS = "position, stream, revision, event_id, type, is_json, created, metadata, data"

# WAL pages (of 4 KiB) after which the writer checkpoints itself (see esdblite.checkpointer).
WAL_BACKSTOP_PAGES = 10_000

# One indexed record, in the order of COLUMNS.
Row = tuple[int, str, int, bytes, str, int, int, bytes, bytes]


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the index database with the pragmas every connection needs."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        # Created private before SQLite opens it: its -wal and -shm files take its mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # Space freed by a scavenge goes back to the file system (effective on new indexes; an
        # older one is converted by the offline `esdblite scavenge`).
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
    # The log is the durable copy and the index is rebuilt from it, so the index does not fsync.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-16000")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


def stream_state(conn: sqlite3.Connection, stream: str) -> StreamState:
    """Derive a stream's state from the index (its events, tombstone and metastream)."""
    row = conn.execute(
        "SELECT revision FROM events WHERE stream = ? AND revision < ? "
        "ORDER BY revision DESC LIMIT 1",
        (stream, DELETED),
    ).fetchone()
    last = row[0] if row else -1
    tombstoned = (
        conn.execute(
            "SELECT 1 FROM events WHERE stream = ? AND revision = ?", (stream, DELETED)
        ).fetchone()
        is not None
    )
    meta_row = conn.execute(
        "SELECT data FROM events WHERE stream = ? ORDER BY revision DESC LIMIT 1",
        ("$$" + stream,),
    ).fetchone()
    metadata = meta_row[0] if meta_row else None
    tb = retention(metadata).truncate_before
    return StreamState(last, tombstoned, tb, metadata, meta_row is not None)


def is_position(conn: sqlite3.Connection, position: int) -> bool:
    """Whether a record (kept or scavenged) starts at this $all position."""
    return (
        conn.execute(
            "SELECT 1 FROM events WHERE position = ? UNION ALL "
            "SELECT 1 FROM scavenged WHERE position = ? LIMIT 1",
            (position, position),
        ).fetchone()
        is not None
    )


def metastream_target(stream: str) -> str | None:
    """The stream a metastream `$$name` describes."""
    return stream[2:] if stream.startswith("$$") else None


class Index:
    """The writer's read-write connection to the index; every change runs in one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = connect(path)
        # The checkpointer's thread moves the WAL into the database, off the write path; the
        # writer checkpoints only past this backstop, which a checkpointer that never catches
        # up with a busy writer would otherwise let the WAL grow without bound.
        self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
        self.db.executescript(SCHEMA)
        # Rows of the open group not yet given to SQLite: inserted with one statement per
        # group, and before anything reads the index, so reads still see them.
        self._staged: list[Record] = []

    def recover(self, event_log: EventLog) -> int:
        """Index the log's unindexed tail (from its last indexed transaction); the last position."""
        row = self.db.execute("SELECT max(position) FROM events").fetchone()
        indexed_end = min(event_log.record_end(row[0]) if row[0] else HEADER_SIZE, event_log.end)
        start = (
            event_log.last_transaction_start(indexed_end)
            if indexed_end > HEADER_SIZE
            else HEADER_SIZE
        )
        # The indexed part is checked too: a bad frame there has acknowledged records after it.
        event_log.verify(start)
        replayed = 0
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM events WHERE position >= ?", (start,))
        self.db.execute("DELETE FROM scavenged WHERE position >= ?", (start,))
        for txn in event_log.scan(start):
            self.insert(txn.records)
            self.insert_scavenged(txn.padded)
            replayed += len(txn.records)
        self.db.execute("COMMIT")
        row = self.db.execute("SELECT max(position) FROM events").fetchone()
        if replayed:
            log.info("recovered %d records from the log tail (from position %d)", replayed, start)
        last: int = row[0] or 0
        return last

    def begin(self) -> None:
        """Start the transaction of one group."""
        self.db.execute("BEGIN")

    def commit(self) -> None:
        """Commit the group's rows (after the log is durable)."""
        self.flush()
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        """Drop the group's rows, if its transaction is still open."""
        self._staged.clear()
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def insert(self, records: Sequence[Record]) -> None:
        """Index records (inside the open transaction)."""
        self.db.executemany(
            f"INSERT INTO events({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    r.position,
                    r.stream,
                    r.revision,
                    r.event_id,
                    r.type,
                    int(r.is_json),
                    r.created,
                    r.metadata,
                    r.data,
                )
                for r in records
            ],
        )

    def stage(self, records: Sequence[Record]) -> None:
        """Index records in the open transaction: with the group's other rows, at the latest
        when the index is next read or committed."""
        self._staged.extend(records)

    def flush(self) -> None:
        """Insert the staged rows (inside the open transaction)."""
        if self._staged:
            staged, self._staged = self._staged, []
            self.insert(staged)

    def insert_scavenged(self, positions: Sequence[int]) -> None:
        """Remember the positions of scavenged records (inside the open transaction)."""
        self.db.executemany(
            "INSERT OR IGNORE INTO scavenged(position) VALUES (?)", [(p,) for p in positions]
        )

    def stream_state(self, stream: str) -> StreamState:
        """A stream's state, rows of the open transaction included."""
        self.flush()
        return stream_state(self.db, stream)

    def revision_of_id(self, stream: str, event_id: bytes) -> int | None:
        """The revision of an event of the stream with this id (tombstones aside), or None."""
        self.flush()
        row = self.db.execute(
            "SELECT revision FROM events WHERE stream = ? AND event_id = ? AND revision < ?",
            (stream, event_id, DELETED),
        ).fetchone()
        revision: int | None = row[0] if row else None
        return revision

    def id_at_revision(self, stream: str, revision: int) -> bytes | None:
        """The id of the stream's event at a revision, or None."""
        self.flush()
        row = self.db.execute(
            "SELECT event_id FROM events WHERE stream = ? AND revision = ?", (stream, revision)
        ).fetchone()
        event_id: bytes | None = row[0] if row else None
        return event_id

    def position_of(self, stream: str, revision: int) -> int:
        """The position of the stream's event at a revision, 0 when there is none."""
        self.flush()
        row = self.db.execute(
            "SELECT position FROM events WHERE stream = ? AND revision = ?", (stream, revision)
        ).fetchone()
        position: int = row[0] if row else 0
        return position

    def close(self) -> None:
        """Close the connection."""
        self.db.close()
