"""The runner lease: one active runner per projection slot, held as PostgreSQL advisory locks
on a dedicated connection, with a fence that refuses a write after the lease is lost."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ledger.errors import LedgerError
from projections.applier import runner_key
from projections.db import connect
from projections.heartbeat import HEARTBEAT_EVERY, RUNNER_STATE_SQL, STALE_AFTER, Heartbeat

log = logging.getLogger("projections.lease")

WAIT_SLICE_S = 0.5  # a standby blocks on the lock this long at a time, then looks at `stop`
# Over TCP the server only ends a dead holder's session when the socket says so: keepalive
# probes after 1 s idle, every 1 s, 3 unanswered end it; unacknowledged data ends it after 3 s.
# So a silent holder's locks are released within about 4 s (a killed process's socket closes
# at once, and a Unix socket's too: those are released immediately).
KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 1,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 3000,
}
SERVER_KEEPALIVE = (
    "SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1;"
    " SET tcp_keepalives_count = 3; SET tcp_user_timeout = 3000"
)

# A hung holder (SIGSTOP, a stalled VM) keeps its sockets open and its kernel answers keepalives,
# so its session never ends by itself. A standby ends the lock session of a holder that looks
# hung from both sides: its heartbeat is stale (the rule status uses) and its lock session has
# sent nothing for as long (an active runner checks it every second). Fencing makes this safe:
# the old holder writes nothing once its lock session is gone.
HOLDERS = sql.SQL(
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND ((l.classid::bigint << 32) | l.objid::bigint) = ANY(%(keys)s)"
)
"""The sessions holding some slots' runner locks (`keys`), as `a` (activity) and `l` (lock)."""
HUNG_SILENCE_S = 3.0  # at least this long silent (an active holder's lock session speaks each 1 s)
WORK_SESSION = "ledger runner of lock session "  # + the lock session's backend pid
END_HUNG_HOLDER = sql.SQL(
    "WITH hung AS (SELECT a.pid {holders} AND a.pid <> pg_backend_pid()"
    " AND EXISTS (SELECT 1 FROM projection_runners r"
    " WHERE r.projection = ANY(%(slots)s) AND {state} = 'stale'"
    " AND a.state_change < now()"
    " - make_interval(secs => greatest(r.interval_s * {stale}, {silent}))))"
    " SELECT s.pid, pg_terminate_backend(s.pid) FROM pg_stat_activity s, hung h"
    " WHERE s.pid = h.pid OR s.application_name = {work} || h.pid"
).format(
    holders=HOLDERS,
    state=sql.SQL(RUNNER_STATE_SQL),
    stale=sql.Literal(STALE_AFTER),
    silent=sql.Literal(HUNG_SILENCE_S),
    work=sql.Literal(WORK_SESSION),
)
# A batch transaction left open by a holder cut off or hung mid-batch would keep the checkpoint
# rows locked from the runner that took over (measured: a cut holder's work session waited for
# its client for minutes, mid-statement). So a runner that takes the lease sets, for the rest of
# its work session: the server's keepalives (a cut session ends within ~4 s, as the lock session
# does), a bound on sitting idle inside a transaction, and an application_name naming its lock
# session, by which a standby ending a hung holder finds the work session too.
IDLE_IN_BATCH_MS = 5000
GUARD_WORK_SESSION = (
    "SELECT set_config('idle_in_transaction_session_timeout', %(idle)s, false),"
    " set_config('application_name', %(name)s, false),"
    " set_config('tcp_keepalives_idle', '1', false),"
    " set_config('tcp_keepalives_interval', '1', false),"
    " set_config('tcp_keepalives_count', '3', false),"
    " set_config('tcp_user_timeout', '3000', false)"
)
FENCE = sql.SQL(
    "SELECT count(*) {holders} AND l.pid = %(pid)s AND a.backend_start = %(started)s"
).format(holders=HOLDERS)


class LeaseLostError(LedgerError):
    """This runner no longer holds its projections' lock: another runner may be active."""


def lease_url(database_url: str) -> str:
    """The database URL with TCP keepalives on (ignored on a Unix socket, where none is needed)."""
    params = conninfo_to_dict(database_url)
    host = str(params.get("host") or "")
    if not host or host.startswith("/"):
        return database_url
    return make_conninfo(database_url, **{k: v for k, v in KEEPALIVE.items() if k not in params})


class Lease:
    """Exclusive hold of some slots' runner locks: all of them, or none."""

    def __init__(
        self, database_url: str, slots: Sequence[str], *, wait_slice: float = WAIT_SLICE_S
    ) -> None:
        self.database_url = database_url
        self.slots = sorted(slots)
        self.wait_slice = wait_slice
        self.conn: psycopg.Connection[Any] | None = None
        self.session: tuple[int, Any] | None = None  # (pid, backend_start) of the lock session

    def open(self) -> None:
        """Open the dedicated lock connection (server-side keepalives set on TCP)."""
        self.close()
        conn = connect(lease_url(self.database_url))
        conn.execute(SERVER_KEEPALIVE)
        row = conn.execute(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).fetchone()
        assert row is not None
        self.conn, self.session = conn, (int(row[0]), row[1])

    def try_acquire(self, *, wait: float = 0.0) -> bool:
        """Take every slot's lock or none; wait up to `wait` seconds on the first one held
        elsewhere (a blocked wait is granted the moment its holder's session ends)."""
        conn = self._conn()
        taken: list[str] = []
        for name in self.slots:
            if self._take(conn, name, wait if not taken else 0.0):
                taken.append(name)
                continue
            for held in taken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (runner_key(held),))
            return False
        return True

    def _take(self, conn: psycopg.Connection[Any], name: str, wait: float) -> bool:
        key = runner_key(name)
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if row and row[0]:
            return True
        if wait <= 0:
            return False
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{wait * 1000:.0f}",))
                conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            return True
        except psycopg.errors.LockNotAvailable:
            return False

    def acquire(self, stop: threading.Event, *, on_wait: Callable[[], None] | None = None) -> bool:
        """Block until every slot is held (True) or `stop` is set (False); `on_wait()` is
        called between waits (a standby's heartbeat), and a hung holder is ended."""
        while not stop.is_set():
            if self.try_acquire(wait=self.wait_slice):
                return True
            if on_wait is not None:
                on_wait()
            self.end_hung_holder()
        return False

    def end_hung_holder(self) -> list[int]:
        """End the lock session of a holder of these slots whose heartbeat is stale and whose
        lock session has been silent as long (a hung process); the backend pids ended."""
        conn = self._conn()
        try:
            rows = conn.execute(
                END_HUNG_HOLDER,
                {"keys": [runner_key(s) for s in self.slots], "slots": self.slots},
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            return []  # not migrated yet: no runner has registered a heartbeat
        ended = [int(pid) for pid, done in rows if done]
        if ended:
            log.warning(
                "ended the lock session of a hung runner of %s (backend %s): its heartbeat is"
                " stale; taking over",
                ", ".join(self.slots),
                ", ".join(map(str, ended)),
            )
        return ended

    def take(
        self,
        stop: threading.Event,
        heartbeat: Heartbeat | None,
        conn: psycopg.Connection[Any],
    ) -> bool:
        """Hold every slot, standing by (and saying so) while another runner holds them;
        False when `stop` was set first."""
        slots = ", ".join(self.slots)
        if not self.try_acquire():
            log.info("standby for %s: another runner is active", slots)
            if heartbeat:
                heartbeat.standby(conn)

            def beat() -> None:
                if heartbeat and heartbeat.due():
                    heartbeat.beat(conn)

            if not self.acquire(stop, on_wait=beat):
                if heartbeat:
                    heartbeat.stopped(conn)
                return False
        self.guard(conn)
        log.info("active for %s", slots)
        return True

    def guard(self, conn: psycopg.Connection[Any]) -> None:
        """Make the holder's work session end, as its lock session would, when its client is
        cut off (server keepalives) or hangs inside a transaction, and name it after the lock
        session (see GUARD_WORK_SESSION)."""
        assert self.session is not None
        conn.execute(
            GUARD_WORK_SESSION,
            {"idle": str(IDLE_IN_BATCH_MS), "name": f"{WORK_SESSION}{self.session[0]}"},
        )

    def alive(self) -> bool:
        """Whether the lock session still answers (a closed one has released the locks)."""
        if self.conn is None or self.conn.closed:
            return False
        try:
            self.conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def fence(self, cur: psycopg.Cursor[Any]) -> None:
        """Raise LeaseLostError unless the lock session still holds every slot, checked in the
        caller's transaction (after it has locked the checkpoint rows it writes)."""
        if self.session is None:
            raise LeaseLostError("this runner never held the projections' lock")
        pid, started = self.session
        row = cur.execute(
            FENCE,
            {
                "pid": pid,
                "started": started,
                "keys": [runner_key(s) for s in self.slots],
            },
        ).fetchone()
        if not row or row[0] != len(self.slots):
            raise LeaseLostError(
                f"lost the lock of {', '.join(self.slots)}: another runner may be active;"
                " nothing of this batch was written"
            )

    def release(self) -> None:
        """Give the slots up (closing the session releases them all)."""
        self.close()

    def close(self) -> None:
        """Close the lock connection."""
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn, self.session = None, None

    def _conn(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            self.open()
        assert self.conn is not None
        return self.conn


def lead(
    database_url: str,
    slot: str,
    stop: threading.Event,
    work: Callable[[threading.Event], None],
    *,
    every: float = HEARTBEAT_EVERY,
) -> None:
    """Run `work(active)` whenever this process holds `slot`'s lease, standing by otherwise,
    until `stop`; `active` is set when `stop` is or the lease is lost (the transfer process
    manager's loop: its steps are idempotent, so a late step after a loss is only wasted)."""
    lease, heartbeat = Lease(database_url, [slot]), Heartbeat([slot], every)
    while not stop.is_set():
        conn = connect(database_url)
        try:
            if not lease.take(stop, heartbeat, conn):
                return
            heartbeat.register(conn)
            ended = threading.Event()
            worker = threading.Thread(target=work, args=(ended,), name=f"{slot}-work", daemon=True)
            worker.start()
            while worker.is_alive() and not stop.wait(min(every, 1.0)):
                if not lease.alive():
                    log.warning("lost the lock of %s; standing by again", slot)
                    break
                heartbeat.beat(conn)
            ended.set()
            worker.join()
            if stop.is_set():
                heartbeat.stopped(conn)
        except (psycopg.OperationalError, LedgerError) as exc:
            log.warning("%s: database unavailable (%s); retrying", slot, exc)
            stop.wait(1.0)
        finally:
            lease.release()
            conn.close()
