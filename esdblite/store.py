"""The event store: the log and its index, one group-committing writer thread, and reads."""

from __future__ import annotations

import concurrent.futures
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from esdblite import rules
from esdblite.checkpointer import Checkpointer
from esdblite.index import Index, Row
from esdblite.log import EventLog
from esdblite.reader import Reader
from esdblite.rules import StreamState
from esdblite.scavenge import ScavengeResult, scavenge
from esdblite.writer import ProposedEvent, Writer, WriteRequest, WriteResult

SEED_STREAM = "$$$scavenges"
SEED_DATA = b'{"$maxAge":2592000}'
MAX_GROUP = 512
# How long the writer waits for more writes to join a group once recent groups held several
# (concurrent callers): fewer, larger group commits cost less CPU per write. A lone caller's
# groups hold one write, so it never waits.
LINGER_SECONDS = 0.001


class _Scavenge:
    """A scavenge queued for the writer thread, so that no append runs while it does."""

    def __init__(self) -> None:
        self.future: concurrent.futures.Future[ScavengeResult] = concurrent.futures.Future()


class Store:
    """The durable store. Writes go through one writer thread; reads use their own connections."""

    def __init__(self, data_dir: Path, *, fsync: bool = True) -> None:
        self.data_dir = data_dir
        self.log = EventLog(data_dir / "events.log", fsync=fsync)
        self.log.redo_journal()
        self.index = Index(data_dir / "index.sqlite")
        self.reader = Reader(self.index.path)
        self.writer = Writer(self.log, self.index, self._committed)
        self.stats = self.writer.stats
        self.last_committed = self.index.recover(self.log)
        self.checkpointer = Checkpointer(self.index.path)
        self.checkpointer.committed()
        self._queue: queue.SimpleQueue[WriteRequest | _Scavenge | None] = queue.SimpleQueue()
        self._listeners: list[Callable[[int], None]] = []
        self._recent_group = 1  # writes in the last group: how many to wait for in the next
        self._thread = threading.Thread(
            target=self._run_writer, name="esdblite-writer", daemon=True
        )
        self._thread.start()
        if self.last_committed == 0:
            self._seed()

    def _seed(self) -> None:
        # Clients that subscribe without a filter expect the first record to be a system event.
        event = ProposedEvent(uuid.uuid4().bytes, "$metadata", True, b"", SEED_DATA)
        self.write(WriteRequest("append", SEED_STREAM, rules.ANY, [event], client=False)).result()

    def write(self, request: WriteRequest) -> concurrent.futures.Future[WriteResult]:
        """Queue a write for the writer thread; the future resolves once it is durable."""
        self._queue.put(request)
        return request.future

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call `listener(last_committed)` on the writer thread after each durable commit."""
        self._listeners.append(listener)

    def scavenge(self) -> concurrent.futures.Future[ScavengeResult]:
        """Queue a scavenge for the writer thread; the future resolves when it is done."""
        task = _Scavenge()
        self._queue.put(task)
        return task.future

    def _run_scavenge(self, task: _Scavenge) -> None:
        try:
            result = scavenge(self.index, self.log)
        except Exception as exc:
            task.future.set_exception(exc)
        else:
            task.future.set_result(result)
        finally:
            self.writer.forget_states()

    def _run_writer(self) -> None:
        pending: WriteRequest | _Scavenge | None = None
        while True:
            first = pending if pending is not None else self._queue.get()
            pending = None
            if first is None:
                return
            if isinstance(first, _Scavenge):
                self._run_scavenge(first)
                self.checkpointer.committed()
                continue
            group, pending, stop = self._gather(first)
            self._commit_group(group)
            self.checkpointer.committed()
            if stop:
                self._queue.put(None)

    def _gather(self, first: WriteRequest) -> tuple[list[WriteRequest], _Scavenge | None, bool]:
        """The group that `first` opens: the writes queued behind it and, when several writers
        have been seen lately, those arriving within LINGER_SECONDS, up to as many as the
        recent groups held (so concurrent callers share one fsync). Also a scavenge met on the
        way, and whether the stop signal was met."""
        group = [first]
        target = min(self._recent_group, MAX_GROUP)
        deadline = None
        while len(group) < MAX_GROUP:
            try:
                if len(group) < target:
                    if deadline is None:
                        deadline = time.monotonic() + LINGER_SECONDS
                    wait = deadline - time.monotonic()
                    nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                else:
                    nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._recent_group = len(group)
                return group, None, True
            if isinstance(nxt, _Scavenge):
                self._recent_group = len(group)
                return group, nxt, False
            group.append(nxt)
        # The target follows the callers: it grows with a group that drained more than it
        # and shrinks to what came when a wait ran out; a lone caller never waits.
        self._recent_group = len(group)
        return group, None, False

    def _commit_group(self, group: list[WriteRequest]) -> None:
        self.writer.commit(group)

    def _committed(self, position: int) -> None:
        self.last_committed = position
        for listener in self._listeners:
            listener(position)

    def stream_state(self, stream: str) -> StreamState:
        """A stream's committed state."""
        return self.reader.stream_state(stream)

    def read_stream(
        self,
        stream: str,
        start: int,
        backwards: bool,
        limit: int,
        min_revision: int = 0,
        min_created: int = 0,
    ) -> list[Row]:
        """Up to `limit` committed events of a stream from revision `start` (inclusive)."""
        return self.reader.read_stream(
            stream, start, backwards, limit, min_revision, self.last_committed, min_created
        )

    def is_boundary(self, position: int) -> bool:
        """Whether $all can be read from this position: the start, a record (kept or
        scavenged) or the end of the committed log."""
        last = self.last_committed
        if position == 0 or (last and position == self.log.record_end(last)):
            return True
        return position <= last and self.reader.is_position(position)

    def read_stream_after(self, stream: str, after: int, limit: int) -> list[Row]:
        """Committed records of a stream after a revision, tombstone included (subscriptions)."""
        return self.reader.read_stream_after(stream, after, limit, self.last_committed)

    def read_all(
        self, position: int, backwards: bool, limit: int, inclusive: bool = True
    ) -> list[Row]:
        """Up to `limit` committed records of $all from a position."""
        return self.reader.read_all(position, backwards, limit, inclusive, self.last_committed)

    def close(self) -> None:
        """Stop the writer after the queued writes, and close the files."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        stats = os.open(self.data_dir / "stats.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(stats, "w") as f:
            f.write(json.dumps(self.stats))
        # The checkpointer first: the writer's connection, closed last, checkpoints what is left.
        self.checkpointer.close()
        self.index.close()
        self.log.close()
