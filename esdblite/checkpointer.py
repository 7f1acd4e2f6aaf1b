"""Copies the index's write-ahead log into its database file on a thread of its own.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, on the writer
thread: every append waits behind it, and it grows with the index, since the pages an append
dirties scatter over more of the B-trees as the log grows. Here this thread checkpoints (PASSIVE:
it never blocks the writer or a reader), woken by commits, and the writer's own checkpoint is only
a backstop (`index.WAL_BACKSTOP_PAGES`): under a steady stream of commits a PASSIVE checkpoint
may never find the WAL complete, and only a complete one lets the next commit start the WAL over.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("esdblite.store")

INTERVAL = 0.1  # seconds: at most this often, so a busy writer's WAL grows a few MB at most


class Checkpointer:
    """Checkpoints the index's WAL after commits, at most once every `interval` seconds."""

    def __init__(self, index_path: Path, *, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.checkpoints = 0
        self._db = sqlite3.connect(index_path, isolation_level=None, check_same_thread=False)
        # A checkpoint syncs the database file before the WAL may be reused (as the writer's did).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="esdblite-checkpointer", daemon=True)
        self.thread.start()

    def committed(self) -> None:
        """Say that the index committed; a checkpoint follows within `interval`."""
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.checkpoints += 1
            except sqlite3.Error:
                # The next commit wakes it again; the WAL keeps every change meanwhile.
                log.exception("the index checkpoint failed")
            if self._stop.wait(self.interval):
                return

    def close(self) -> None:
        """Stop the thread (after a checkpoint under way) and close its connection."""
        self._stop.set()
        self._wake.set()
        self.thread.join(timeout=30)
        self._db.close()
