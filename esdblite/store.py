"""The event store: the durable log, its SQLite index, the single group-committing writer, reads."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from esdblite import rules
from esdblite.log import HEADER_SIZE, EventLog, Record, encode, frame_size
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
"""

COLUMNS = "position, stream, revision, event_id, type, is_json, created, metadata, data"
SEED_STREAM = "$$$scavenges"
MIN_COMMIT_SECONDS = 0.002
SEED_DATA = b'{"$maxAge":2592000}'


class WriteError(Exception):
    """Base of the writer's refusals."""


class WrongExpectedVersion(WriteError):
    """The expected revision does not match the stream."""

    def __init__(self, current: int) -> None:
        super().__init__(f"current revision {current}")
        self.current = current


class StreamDeleted(WriteError):
    """The stream is deleted."""


class DeadlineExpired(WriteError):
    """The caller's deadline passed before the commit."""


class StoreFailure(WriteError):
    """Storage failed; nothing of the group was acknowledged."""


@dataclass(frozen=True, slots=True)
class ProposedEvent:
    """An event as a client proposes it."""

    event_id: bytes
    type: str
    is_json: bool
    metadata: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A committed (or idempotently repeated) write: the last revision and position."""

    revision: int  # -1: the stream has no events
    position: int  # 0: no position


@dataclass
class WriteRequest:
    """One atomic unit for the writer: an append, a soft delete or a tombstone."""

    kind: str  # "append" | "delete" | "tombstone"
    stream: str
    expected: int
    events: Sequence[ProposedEvent] = ()
    deadline: float | None = None  # time.monotonic()
    client: bool = True
    future: concurrent.futures.Future[WriteResult] = field(
        default_factory=concurrent.futures.Future
    )


class CrashPoints:
    """Test hooks that kill the process at a named point of the write path (like kill -9)."""

    def __init__(self) -> None:
        self.point = os.environ.get("ESDBLITE_CRASH_AT", "")
        self.after = int(os.environ.get("ESDBLITE_CRASH_AFTER", "0") or 0)
        self.committed = 0

    def armed(self, client_batches: int) -> bool:
        return (
            bool(self.point) and client_batches > 0 and self.committed + client_batches > self.after
        )

    def hit(self, point: str, armed: bool) -> None:
        if armed and self.point == point:
            os._exit(86)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the index database with the pragmas every connection needs."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
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
    return StreamState(last, tombstoned, truncate_before(metadata), metadata, meta_row is not None)


def truncate_before(metadata: bytes | None) -> int:
    """The `$tb` of a metadata document, 0 when absent or unreadable."""
    if not metadata:
        return 0
    try:
        tb = json.loads(metadata).get("$tb", 0)
    except (ValueError, AttributeError):
        return 0
    return tb if isinstance(tb, int) and tb >= 0 else 0


def metastream_target(stream: str) -> str | None:
    """The stream a metastream `$$name` describes."""
    return stream[2:] if stream.startswith("$$") else None


class Store:
    """The durable store. Writes go through one writer thread; reads use their own connections."""

    def __init__(self, data_dir: Path, *, fsync: bool = True) -> None:
        self.data_dir = data_dir
        self.fsync = fsync
        self.index_path = data_dir / "index.sqlite"
        self.log = EventLog(data_dir / "events.log", fsync=fsync)
        self.db = connect(self.index_path)
        self.db.executescript(SCHEMA)
        self.last_committed = 0
        self.crash = CrashPoints()
        self._next_position = HEADER_SIZE
        self._next_position_last = 0
        self._states: dict[str, StreamState] = {}
        self._commit_seconds = 0.0
        self.stats = {"fsyncs": 0, "acked_batches": 0, "groups": 0, "records": 0}
        self._queue: queue.SimpleQueue[WriteRequest | None] = queue.SimpleQueue()
        self._local = threading.local()
        self._listeners: list[Callable[[int], None]] = []
        self._recover()
        self._writer = threading.Thread(
            target=self._run_writer, name="esdblite-writer", daemon=True
        )
        self._writer.start()
        if self.last_committed == 0:
            self._seed()

    # ----- start-up

    def _recover(self) -> None:
        row = self.db.execute("SELECT max(position) FROM events").fetchone()
        indexed_end = min(self.log.record_end(row[0]) if row[0] else HEADER_SIZE, self.log.end)
        start = (
            self.log.last_transaction_start(indexed_end)
            if indexed_end > HEADER_SIZE
            else HEADER_SIZE
        )
        replayed = 0
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM events WHERE position >= ?", (start,))
        for txn in self.log.scan(start):
            self._insert(txn)
            replayed += len(txn)
        self.db.execute("COMMIT")
        row = self.db.execute("SELECT max(position) FROM events").fetchone()
        self.last_committed = row[0] or 0
        if replayed:
            log.info("recovered %d records from the log tail (from position %d)", replayed, start)

    def _seed(self) -> None:
        # Clients that subscribe without a filter expect the first record to be a system event.
        event = ProposedEvent(uuid.uuid4().bytes, "$metadata", True, b"", SEED_DATA)
        self.write(WriteRequest("append", SEED_STREAM, rules.ANY, [event], client=False)).result()

    # ----- the writer

    def write(self, request: WriteRequest) -> concurrent.futures.Future[WriteResult]:
        """Queue a write for the writer thread; the future resolves once it is durable."""
        self._queue.put(request)
        return request.future

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call `listener(last_committed)` on the writer thread after each durable commit."""
        self._listeners.append(listener)

    def _run_writer(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < 512:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                group.append(nxt)
            self._commit_group(group)

    def _commit_group(self, group: list[WriteRequest]) -> None:
        group_started = time.monotonic()
        results: list[WriteResult | BaseException] = []
        frames: list[bytes] = []
        start_end = self.log.end
        self._next_position = start_end
        client_batches = 0
        try:
            self.db.execute("BEGIN")
            # Admission: a write whose deadline falls before the commit could finish is refused
            # now, rather than committed after the caller has been told it timed out.
            cutoff = time.monotonic() + max(2 * self._commit_seconds, MIN_COMMIT_SECONDS)
            for req in group:
                if req.deadline is not None and req.deadline <= cutoff:
                    results.append(DeadlineExpired())
                    continue
                try:
                    result, records = self._prepare(req)
                except WriteError as exc:
                    results.append(exc)
                    continue
                if records:
                    self._insert(records)
                    frames.extend(
                        encode(r, end_of_transaction=i == len(records) - 1)
                        for i, r in enumerate(records)
                    )
                    client_batches += req.client
                results.append(result)
            if frames:
                armed = self.crash.armed(client_batches)
                blob = b"".join(frames)
                if armed and self.crash.point == "mid_batch":
                    self.log.write(blob[: max(1, len(blob) // 2)])
                    self.crash.hit("mid_batch", armed)
                self.log.write(blob)
                self.crash.hit("before_fsync", armed)
                self.log.sync()
                self.stats["fsyncs"] += 1
                self.crash.hit("after_fsync", armed)
            self.db.execute("COMMIT")
        except Exception as exc:
            log.exception("write failed; the group is rolled back")
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self._states.clear()
            if self.log.end != start_end:
                os.ftruncate(self.log.fd, start_end)
                self.log.end = start_end
            failure = StoreFailure(str(exc))
            for req in group:
                if not req.future.done():
                    req.future.set_exception(failure)
            return
        # A moving average of how long a commit takes, for the admission check above.
        elapsed = time.monotonic() - group_started
        self._commit_seconds = 0.8 * self._commit_seconds + 0.2 * elapsed
        self.crash.committed += client_batches
        self.stats["groups"] += 1
        self.stats["acked_batches"] += client_batches
        self.stats["records"] += len(frames)
        if frames:
            self.last_committed = self._next_position_last
            for listener in self._listeners:
                listener(self.last_committed)
        for req, res in zip(group, results, strict=True):
            if req.future.done():
                continue  # the caller gave up (deadline, disconnect); the writer carries on
            if isinstance(res, BaseException):
                req.future.set_exception(res)
            else:
                req.future.set_result(res)

    def _insert(self, records: Sequence[Record]) -> None:
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

    def _record(self, stream: str, revision: int, event: ProposedEvent, created: int) -> Record:
        record = Record(
            self._next_position,
            stream,
            revision,
            event.event_id,
            event.type,
            event.is_json,
            created,
            event.metadata,
            event.data,
        )
        self._next_position_last = self._next_position
        self._next_position += frame_size(record)
        return record

    def _lookups(
        self, stream: str
    ) -> tuple[Callable[[bytes], int | None], Callable[[int], bytes | None]]:
        def revision_of_id(event_id: bytes) -> int | None:
            row = self.db.execute(
                "SELECT revision FROM events WHERE stream = ? AND event_id = ? AND revision < ?",
                (stream, event_id, DELETED),
            ).fetchone()
            return row[0] if row else None

        def id_at_revision(revision: int) -> bytes | None:
            row = self.db.execute(
                "SELECT event_id FROM events WHERE stream = ? AND revision = ?", (stream, revision)
            ).fetchone()
            return row[0] if row else None

        return revision_of_id, id_at_revision

    def _position_of(self, stream: str, revision: int) -> int:
        row = self.db.execute(
            "SELECT position FROM events WHERE stream = ? AND revision = ?", (stream, revision)
        ).fetchone()
        return row[0] if row else 0

    def _state(self, stream: str) -> StreamState:
        state = self._states.get(stream)
        if state is None:
            if len(self._states) >= 10_000:
                self._states.clear()
            state = self._states[stream] = stream_state(self.db, stream)
        return state

    def _forget(self, *streams: str) -> None:
        for stream in streams:
            self._states.pop(stream, None)

    def _prepare(self, req: WriteRequest) -> tuple[WriteResult, list[Record]]:
        result, records = self._decide(req)
        if records:
            stream = req.stream
            plain = all(r.stream == stream for r in records) and not stream.startswith("$$")
            state = self._states.get(stream)
            if plain and req.kind == "append" and state is not None:
                self._states[stream] = replace(state, last_revision=records[-1].revision)
            else:
                target = metastream_target(stream)
                self._forget(stream, "$$" + stream, *([target] if target else []))
        return result, records

    def _decide(self, req: WriteRequest) -> tuple[WriteResult, list[Record]]:
        state = self._state(req.stream)
        ids = [e.event_id for e in req.events]
        if req.kind != "append":
            ids = [uuid.uuid4().bytes]
        outcome = rules.check_commit(state, req.expected, ids, *self._lookups(req.stream))
        match outcome:
            case rules.Deleted():
                raise StreamDeleted()
            case rules.WrongExpected(current=current):
                raise WrongExpectedVersion(current)
            case rules.Idempotent(revision=revision):
                return WriteResult(revision, self._position_of(req.stream, revision)), []
        created = time.time_ns() // 100
        if req.kind == "delete":
            return self._soft_delete(req.stream, state, created)
        if req.kind == "tombstone":
            record = self._record(
                req.stream,
                DELETED,
                ProposedEvent(ids[0], "$streamDeleted", False, b"", b""),
                created,
            )
            return WriteResult(DELETED, record.position), [record]
        records = [
            self._record(req.stream, state.last_revision + 1 + i, e, created)
            for i, e in enumerate(req.events)
        ]
        if not records:
            last = state.last_revision
            return WriteResult(last, self._position_of(req.stream, last) if last >= 0 else 0), []
        result = WriteResult(records[-1].revision, records[-1].position)
        assert isinstance(outcome, rules.Ok)
        if outcome.undelete:
            records.append(
                self._metadata_record(req.stream, state, {"$tb": state.last_revision + 1}, created)
            )
        target = metastream_target(req.stream)
        if target is not None:
            target_state = self._state(target)
            if target_state.soft_deleted and target_state.last_revision >= 0:
                written = req.events[-1].data
                records.append(
                    self._metadata_record(
                        target,
                        target_state,
                        {"$tb": target_state.last_revision + 1},
                        created,
                        base=written,
                        meta_revision=records[-1].revision + 1,
                    )
                )
        return result, records

    def _metadata_record(
        self,
        stream: str,
        state: StreamState,
        changes: dict[str, int],
        created: int,
        *,
        base: bytes | None = None,
        meta_revision: int | None = None,
    ) -> Record:
        try:
            meta = json.loads(base if base is not None else state.metadata or b"{}")
            if not isinstance(meta, dict):
                meta = {}
        except ValueError:
            meta = {}
        meta.update(changes)
        data = json.dumps(meta, separators=(",", ":")).encode()
        if meta_revision is None:
            meta_revision = self._state("$$" + stream).last_revision + 1
        event = ProposedEvent(uuid.uuid4().bytes, "$metadata", True, b"", data)
        return self._record("$$" + stream, meta_revision, event, created)

    def _soft_delete(
        self, stream: str, state: StreamState, created: int
    ) -> tuple[WriteResult, list[Record]]:
        meta_state = self._state("$$" + stream)
        if state.last_revision < 0 and not meta_state.last_revision >= 0:
            raise WrongExpectedVersion(-1)
        event = ProposedEvent(uuid.uuid4().bytes, "$metadata", True, b"", b'{"$tb":%d}' % DELETED)
        record = self._record("$$" + stream, meta_state.last_revision + 1, event, created)
        return WriteResult(record.revision, record.position), [record]

    # ----- reads (called from executor threads, each with its own connection)

    def reader(self) -> sqlite3.Connection:
        """This thread's read-only connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.index_path, readonly=True)
            self._local.conn = conn
        return conn

    def stream_state(self, stream: str) -> StreamState:
        """A stream's committed state."""
        return stream_state(self.reader(), stream)

    def read_stream(
        self, stream: str, start: int, backwards: bool, limit: int, min_revision: int = 0
    ) -> list[tuple[object, ...]]:
        """Up to `limit` committed events of a stream from revision `start` (inclusive)."""
        if backwards:
            sql = (
                f"SELECT {COLUMNS} FROM events WHERE stream = ? AND revision <= ? "
                "AND revision >= ? AND position <= ? ORDER BY revision DESC LIMIT ?"
            )
            args: tuple[object, ...] = (stream, min(start, DELETED - 1), min_revision)
        else:
            sql = (
                f"SELECT {COLUMNS} FROM events WHERE stream = ? AND revision >= ? "
                "AND revision < ? AND position <= ? ORDER BY revision LIMIT ?"
            )
            args = (stream, max(start, min_revision), DELETED)
        return self.reader().execute(sql, (*args, self.last_committed, limit)).fetchall()

    def read_stream_after(self, stream: str, after: int, limit: int) -> list[tuple[object, ...]]:
        """Committed records of a stream after a revision, tombstone included (subscriptions)."""
        return (
            self.reader()
            .execute(
                f"SELECT {COLUMNS} FROM events WHERE stream = ? AND revision > ? "
                "AND position <= ? ORDER BY revision LIMIT ?",
                (stream, after, self.last_committed, limit),
            )
            .fetchall()
        )

    def read_all(
        self, position: int, backwards: bool, limit: int, inclusive: bool = True
    ) -> list[tuple[object, ...]]:
        """Up to `limit` committed records of $all from a position."""
        upto = self.last_committed
        if backwards:
            return (
                self.reader()
                .execute(
                    f"SELECT {COLUMNS} FROM events WHERE position < ? AND position <= ? "
                    "ORDER BY position DESC LIMIT ?",
                    (position, upto, limit),
                )
                .fetchall()
            )
        op = ">=" if inclusive else ">"
        return (
            self.reader()
            .execute(
                f"SELECT {COLUMNS} FROM events WHERE position {op} ? AND position <= ? "
                "ORDER BY position LIMIT ?",
                (position, upto, limit),
            )
            .fetchall()
        )

    def close(self) -> None:
        """Stop the writer after the queued writes, and close the files."""
        self._queue.put(None)
        self._writer.join(timeout=30)
        (self.data_dir / "stats.json").write_text(json.dumps(self.stats))
        self.db.close()
        self.log.close()
