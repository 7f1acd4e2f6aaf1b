"""The write path: decide each write of a group, then index it, log it and fsync once per group."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from esdblite import rules
from esdblite.index import Index, metastream_target
from esdblite.log import HEADER_SIZE, EventLog, Record, encode, frame_size
from esdblite.rules import DELETED, StreamState

log = logging.getLogger("esdblite.store")

MIN_COMMIT_SECONDS = 0.002
STATE_CACHE_LIMIT = 10_000


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
    # The event loop of the caller awaiting the future, if any: the writer then settles the
    # futures of a group on that loop's thread, with one wake-up of the loop for the group.
    loop: asyncio.AbstractEventLoop | None = None


class CrashPoints:
    """Test hooks that kill the process at a named point of the write path (like kill -9)."""

    def __init__(self) -> None:
        self.point = os.environ.get("ESDBLITE_CRASH_AT", "")
        self.after = int(os.environ.get("ESDBLITE_CRASH_AFTER", "0") or 0)
        self.committed = 0

    def armed(self, client_batches: int) -> bool:
        """Whether a group with this many client batches reaches the configured crash."""
        return (
            bool(self.point) and client_batches > 0 and self.committed + client_batches > self.after
        )

    def hit(self, point: str, armed: bool) -> None:
        """Exit at once, without cleanup, when armed for this point."""
        if armed and self.point == point:
            os._exit(86)


Outcome = tuple[WriteRequest, WriteResult | BaseException]


def settle(outcomes: Sequence[Outcome]) -> None:
    """Resolve each request's future with its result or refusal: at once, or, for requests
    awaited on an event loop, on that loop's thread with one call for all of them."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        loop = outcome[0].loop
        if loop is None:
            _resolve([outcome])
        else:
            by_loop.setdefault(loop, []).append(outcome)
    for loop, outcomes_on_loop in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, outcomes_on_loop)
        except RuntimeError:  # the loop is closed: nobody awaits there any more
            _resolve(outcomes_on_loop)


def _resolve(outcomes: Sequence[Outcome]) -> None:
    for req, res in outcomes:
        if req.future.done():
            continue  # the caller gave up (deadline, disconnect); the writer carries on
        if isinstance(res, BaseException):
            req.future.set_exception(res)
        else:
            req.future.set_result(res)


class Writer:
    """Commits groups of writes atomically; runs only on the store's writer thread."""

    def __init__(self, event_log: EventLog, index: Index, on_commit: Callable[[int], None]) -> None:
        self.log = event_log
        self.index = index
        self.on_commit = on_commit
        self.crash = CrashPoints()
        self.stats = {"fsyncs": 0, "acked_batches": 0, "groups": 0, "records": 0}
        self._next_position = HEADER_SIZE
        self._next_position_last = 0
        self._states: dict[str, StreamState] = {}
        self._commit_seconds = 0.0

    def commit(self, group: list[WriteRequest]) -> None:
        """Commit a group with one fsync, call `on_commit`, then resolve each request's future."""
        group_started = time.monotonic()
        results: list[WriteResult | BaseException] = []
        frames: list[bytes] = []
        start_end = self.log.end
        self._next_position = start_end
        client_batches = 0
        try:
            self.index.begin()
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
                    self.index.stage(records)
                    frames.extend(
                        encode(r, end_of_transaction=i == len(records) - 1)
                        for i, r in enumerate(records)
                    )
                    client_batches += req.client
                results.append(result)
            # The group's rows reach SQLite before its log write, so a refused row (a broken
            # index) fails the group before anything of it is in the log.
            self.index.flush()
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
            self.index.commit()
        except Exception as exc:
            log.exception("write failed; the group is rolled back")
            self.index.rollback()
            self._states.clear()
            if self.log.end != start_end:
                os.ftruncate(self.log.fd, start_end)
                self.log.end = start_end
            failure = StoreFailure(str(exc))
            settle([(req, failure) for req in group])
            return
        # A moving average of how long a commit takes, for the admission check above.
        elapsed = time.monotonic() - group_started
        self._commit_seconds = 0.8 * self._commit_seconds + 0.2 * elapsed
        self.crash.committed += client_batches
        self.stats["groups"] += 1
        self.stats["acked_batches"] += client_batches
        self.stats["records"] += len(frames)
        if frames:
            self.on_commit(self._next_position_last)
        settle(list(zip(group, results, strict=True)))

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

    def _state(self, stream: str) -> StreamState:
        state = self._states.get(stream)
        if state is None:
            if len(self._states) >= STATE_CACHE_LIMIT:
                self._states.clear()
            state = self._states[stream] = self.index.stream_state(stream)
        return state

    def forget_states(self) -> None:
        """Drop every cached stream state (after the index changed behind the writer)."""
        self._states.clear()

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
                self._states[stream] = state.advanced(records[-1].revision)
            else:
                target = metastream_target(stream)
                self._forget(stream, "$$" + stream, *([target] if target else []))
        return result, records

    def _decide(self, req: WriteRequest) -> tuple[WriteResult, list[Record]]:
        state = self._state(req.stream)
        ids = [e.event_id for e in req.events]
        if req.kind != "append":
            ids = [uuid.uuid4().bytes]
        stream = req.stream
        outcome = rules.check_commit(
            state,
            req.expected,
            ids,
            lambda event_id: self.index.revision_of_id(stream, event_id),
            lambda revision: self.index.id_at_revision(stream, revision),
        )
        match outcome:
            case rules.Deleted():
                raise StreamDeleted()
            case rules.WrongExpected(current=current):
                raise WrongExpectedVersion(current)
            case rules.Idempotent(revision=revision):
                return WriteResult(revision, self.index.position_of(req.stream, revision)), []
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
            position = self.index.position_of(req.stream, last) if last >= 0 else 0
            return WriteResult(last, position), []
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
