"""One applier process per projection, fed by one reader: what `rebuild --per-projection` runs.

The coordinator reads $all once (a Runner whose applier is a `FanOutApplier`) and hands each
batch, pickled once (transfers' events only for the projection that follows them), to every
projection's applier process, resting between full batches while its reader reads (`Pace`).
Each child writes its projection's shadow tables on a PostgreSQL connection of its own, moving
its own checkpoint slot, fenced by the coordinator's lease (it writes nothing once the
coordinator's lock session is gone). A child that fails or dies fails the build
(`ApplierProcessError`); the coordinator dying ends the children (their socket reaches end of
file).

`python -m projections.fanout NAME FD` is a child; it gets the database URL over the socket, never
on its command line.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

import psycopg

from ledger.errors import CheckFailedError
from projections.applier import PROJECTIONS, Applier, BatchResult
from projections.db import connect
from projections.feed import ProjectedEvent, Projection, follows_transfers
from projections.lease import Lease

log = logging.getLogger("projections.fanout")

IN_FLIGHT = 4  # batches queued for a child beyond the one it is applying
STOP_WAIT = 30.0  # seconds a child gets to finish its batch and exit before it is killed

Session = tuple[int, datetime]  # the lease's lock session: (backend pid, backend start)
Row = tuple[str, int, int, bytes, str, bytes, bytes, datetime]


class ApplierProcessError(CheckFailedError):
    """A projection's applier process failed or died: the build stops, the shadow is kept."""


def _rows(events: Sequence[ProjectedEvent]) -> list[Row]:
    """Events as plain tuples: they pickle several times faster than the dataclass."""
    return [
        (
            e.account_id,
            e.revision,
            e.position,
            e.event_id.bytes,
            e.type,
            e.data,
            e.metadata,
            e.recorded_at,
        )
        for e in events
    ]


def _events(rows: Sequence[Row]) -> list[ProjectedEvent]:
    return [
        ProjectedEvent(acc, rev, pos, uuid.UUID(bytes=eid), typ, data, meta, at)
        for acc, rev, pos, eid, typ, data, meta, at in rows
    ]


class _Child:
    """The coordinator's side of one applier process: its queue, sender and receiver."""

    def __init__(self, name: str, database_url: str, done: threading.Condition) -> None:
        self.name = name
        self.done = done
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "projections.fanout", name, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.follows_transfers = follows_transfers(PROJECTIONS[name])
        self.outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=IN_FLIGHT)
        self.acked = -1
        self.failure: str | None = None
        self.closing = False
        self.conn.send(database_url)
        self.sender = threading.Thread(target=self._send, name=f"fanout-send-{name}", daemon=True)
        self.receiver = threading.Thread(target=self._receive, name=f"fanout-{name}", daemon=True)
        self.sender.start()
        self.receiver.start()

    def _send(self) -> None:
        while (payload := self.outbox.get()) is not None:
            try:
                self.conn.send_bytes(payload)
            except OSError:
                return  # the child is gone: the receiver reports how (its message, or exit)

    def _receive(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                if not self.closing:
                    code = _wait(self.proc, STOP_WAIT)
                    self._failed(f"it exited with code {code}")
                return
            if message[0] == "applied":
                with self.done:
                    self.acked = message[1]
                    self.done.notify_all()
            else:
                self._failed(message[1])
                return

    def _failed(self, why: str) -> None:
        with self.done:
            if self.failure is None:
                self.failure = f"{self.name} (pid {self.proc.pid}): {why}"
            self.done.notify_all()

    def put(self, payload: bytes) -> None:
        """Queue a batch; blocks while the child is IN_FLIGHT batches behind, unless it failed."""
        while self.failure is None:
            try:
                self.outbox.put(payload, timeout=0.2)
                return
            except queue.Full:
                continue

    def stop(self) -> None:
        """Ask the child to finish (after its current batch), then reap it."""
        self.closing = True
        while True:  # drop what it has not started: stopping early means the build failed
            try:
                self.outbox.get_nowait()
            except queue.Empty:
                break
        self.outbox.put(None)
        self.sender.join(STOP_WAIT)
        if self.failure is None:
            with contextlib.suppress(OSError):  # already gone
                self.conn.send_bytes(pickle.dumps(None))
        _wait(self.proc, STOP_WAIT)
        self.conn.close()
        self.receiver.join(STOP_WAIT)


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class ApplierPool:
    """One applier process per projection (for their shadow tables), started at once."""

    def __init__(self, database_url: str, names: Sequence[str], batch_size: int) -> None:
        self.batch_size = batch_size  # of the runner's batches, that FanOutApplier paces
        self.done = threading.Condition()
        self.children: list[_Child] = []
        self.sent = -1
        try:
            for name in names:
                self.children.append(_Child(name, database_url, self.done))
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> dict[str, int]:
        """Each projection's applier process id."""
        return {c.name: c.proc.pid for c in self.children}

    def send(self, events: Sequence[ProjectedEvent], upto: int, lease: Lease) -> None:
        """Hand a batch (and the position it takes every checkpoint to) to every child, pickled
        once (twice when it holds transfers' events: only a projection that follows them gets
        those; the others' checkpoints move all the same)."""
        self._raise_failure()
        if lease.session is None:
            raise ApplierProcessError("the rebuild's coordinator holds no lease to fence with")
        fence = (lease.session, lease.slots)
        every = pickle.dumps((_rows(events), upto, *fence), protocol=5)
        accounts = [e for e in events if not e.of_transfer]
        only_accounts = (
            every
            if len(accounts) == len(events)
            else pickle.dumps((_rows(accounts), upto, *fence), protocol=5)
        )
        for child in self.children:
            child.put(every if child.follows_transfers else only_accounts)
        self.sent = max(self.sent, upto)
        self._raise_failure()

    def drain(self) -> None:
        """Wait until every child has committed everything sent; raise if one failed."""
        with self.done:
            self.done.wait_for(
                lambda: (
                    any(c.failure for c in self.children)
                    or all(c.acked >= self.sent for c in self.children)
                )
            )
        self._raise_failure()

    def close(self) -> None:
        """Stop every child (each finishes the batch it is applying) and reap it."""
        for child in self.children:
            child.stop()

    def _raise_failure(self) -> None:
        failed = [c.failure for c in self.children if c.failure]
        if failed:
            raise ApplierProcessError(
                f"the rebuild's applier process of {'; '.join(failed)}. The live tables are"
                " untouched and the shadow tables are kept: run the rebuild again to resume it"
            )

    def applier(
        self,
        conn: psycopg.Connection[Any],
        projections: Sequence[Projection],
        suffix: str,
        lease: Lease,
    ) -> Applier:
        """A Runner's applier (see runner.MakeApplier) that writes through these processes."""
        return FanOutApplier(conn, projections, suffix, self, lease)


class FanOutApplier(Applier):
    """Applies nothing itself: each batch goes to the pool, whose children commit it.

    Handing a batch over takes a moment, so the runner would be back at once, taking each
    event from its reader the moment it is read: one thread switch an event, on the one core
    the reader itself needs. After a full batch it rests instead (see `Pace`), while the
    reader fills the next one."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        projections: Sequence[Projection],
        suffix: str,
        pool: ApplierPool,
        lease: Lease,
        pace: Pace | None = None,
    ) -> None:
        super().__init__(conn, projections, suffix)
        self.pool, self.lease = pool, lease
        self.pace = pace or Pace(pool.batch_size)

    def checkpoints(self) -> dict[str, int]:
        """Each slot's committed position, once the children have committed all they got."""
        self.pool.drain()
        return super().checkpoints()

    def apply_batch(
        self, events: Sequence[ProjectedEvent], upto: int, *, replay: bool = False
    ) -> BatchResult:
        """Queue the batch for every child (committed later: see ApplierPool.drain)."""
        if replay:
            raise ValueError("parked events are replayed in one process, not fanned out")
        self.pool.send(events, upto, self.lease)
        self.pace.batch(len(events))
        return BatchResult()


class Pace:
    """Rests after each full batch for most of the time the last one took to come.

    The time between two full batches is how long the reader took for one (it is behind the
    head of the log, and it is the slower side: the children keep up). Resting REST of it
    leaves the next batch mostly read when the runner collects it. A rest longer than the
    reader needs makes the next interval the rest itself (the batch is ready when it ends),
    so the rest after it is REST of that: it shrinks back at once. A short batch (the head is
    reached) means no rest.
    """

    REST = 0.8  # of the time between the last two full batches
    LONGEST = 1.0  # seconds: never more, whatever was measured

    def __init__(
        self,
        batch_size: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.batch_size, self.clock, self.sleep = batch_size, clock, sleep
        self.last: float | None = None  # when the last full batch was handed over

    def batch(self, size: int) -> None:
        """A batch of `size` events was handed over: rest if it was full."""
        now = self.clock()
        last, self.last = self.last, (now if size >= self.batch_size else None)
        if self.last is not None and last is not None:
            self.sleep(min(self.REST * (now - last), self.LONGEST))


class _FencedBy(Lease):
    """The coordinator's lease, seen from a child: only its fence, for the session named."""

    def __init__(self, database_url: str, slots: Sequence[str], session: Session) -> None:
        super().__init__(database_url, slots)
        self.session = session


def serve(name: str, conn: Connection) -> int:
    """A child: apply each batch received to `name`'s shadow tables until told to stop;
    a failure is sent to the coordinator (its message) before the exit."""
    try:
        return _serve(name, conn)
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return 1


def _serve(name: str, conn: Connection) -> int:
    from projections.feed import SHADOW

    database_url: str = conn.recv()
    db = connect(database_url)
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                log.warning("%s applier: the rebuild's coordinator is gone; exiting", name)
                return 1
            if message is None:
                return 0
            rows, upto, session, slots = message
            fenced = _FencedBy(database_url, slots, session)
            applier = Applier(db, [PROJECTIONS[name]], SHADOW, fence=fenced.fence)
            applier.apply_batch(_events(rows), upto)
            conn.send(("applied", upto))
    finally:
        db.close()


def main(argv: Sequence[str]) -> int:
    """`python -m projections.fanout NAME FD`."""
    # Ctrl-C reaches the whole process group: the coordinator decides; its end of the socket
    # closing (it exited) is what stops a child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    name, fd = argv
    if name not in PROJECTIONS:
        print(f"unknown projection {name!r}", file=sys.stderr)
        return 2
    return serve(name, Connection(int(fd)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
