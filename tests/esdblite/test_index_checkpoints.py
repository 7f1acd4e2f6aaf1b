"""The index's WAL is checkpointed by the checkpointer thread, not inside the writer's commits."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from esdblite import index
from esdblite.rules import NO_STREAM
from esdblite.store import Store
from esdblite.writer import ProposedEvent, WriteRequest
from tests.support.waiting import wait_until

PAYLOAD = b'{"amount":12345,"description":"' + b"x" * 900 + b'"}'


def append_streams(store: Store, streams: int, events: int = 50) -> None:
    """Commit `streams` appends of `events` events each, one at a time."""
    for _ in range(streams):
        batch = [
            ProposedEvent(uuid.uuid4().bytes, "MoneyDeposited", True, b"", PAYLOAD)
            for _ in range(events)
        ]
        request = WriteRequest("append", f"s-{uuid.uuid4().hex}", NO_STREAM, batch)
        store.write(request).result(timeout=30)


def rows_in_database_file(store: Store) -> int:
    """Events the index's database file itself holds, ignoring its WAL (-1: file mid-write)."""
    uri = f"file:{store.index.path}?immutable=1"
    try:
        with sqlite3.connect(uri, uri=True) as db:
            count: int = db.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.DatabaseError:
        return -1
    return count


def checkpointed(store: Store) -> bool:
    """Whether the database file holds every event the index has committed."""
    return rows_in_database_file(store) == indexed(store)


def indexed(store: Store) -> int:
    count: int = store.index.db.execute("SELECT count(*) FROM events").fetchone()[0]
    return count


def test_the_checkpointer_moves_commits_into_the_database_file_off_the_write_path(
    store: Store,
) -> None:
    # given the writer's connection, which checkpoints only past the backstop
    backstop = store.index.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    assert backstop == index.WAL_BACKSTOP_PAGES
    # when a few appends commit (far fewer pages than the backstop, or SQLite's default of 1,000)
    append_streams(store, 20, events=5)
    # then the database file itself soon holds every indexed event
    total = indexed(store)
    wait_until(lambda: rows_in_database_file(store) == total, what="the checkpoint of every commit")


def test_the_wal_stays_bounded_when_the_checkpointer_falls_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a store whose checkpointer never runs (it is stopped), with a backstop of 256 pages
    monkeypatch.setattr(index, "WAL_BACKSTOP_PAGES", 256)
    (tmp_path / "data").mkdir()
    store = Store(tmp_path / "data", fsync=False)
    try:
        store.checkpointer.close()
        # when some 5 MB of WAL frames are committed (40 appends of 50 events of ~1 KB)
        append_streams(store, 40)
        # then the writer's own checkpoints kept the WAL near the backstop (256 pages, 1 MiB,
        # plus the last commit's pages), and the database file holds every event
        wal = store.index.path.with_name(store.index.path.name + "-wal")
        assert wal.stat().st_size < 2 * 1024 * 1024
        assert indexed(store) > 2000
    finally:
        store.close()


def test_closing_the_store_stops_the_checkpointer(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    store = Store(tmp_path / "data", fsync=False)
    append_streams(store, 2)
    store.close()
    assert not store.checkpointer.thread.is_alive()
    # and the index holds everything when the store is opened again
    again = Store(tmp_path / "data", fsync=False)
    try:
        assert indexed(again) == 2 * 50 + 1  # and the seed event of a new store
    finally:
        again.close()
