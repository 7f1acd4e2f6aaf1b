"""Runner failover: two runners with deposits flowing, the active one killed (kill -9, over the
Unix socket and over TCP), cut off from PostgreSQL (its TCP connections' packets dropped by `tc`,
the process alive) or stopped (SIGSTOP); the seconds until the standby holds the lock, and until a
deposit written after the event is applied; every posting checked once after every trial.

`python -m bench.failover_bench [--full]` runs it alone and prints the figures.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

from bench.harness import Run
from bench.workload import fixed_clock, new_account_id
from esdblite.process import ServerProcess
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from ledger.writemodel import write_model_fold
from projections.applier import runner_key
from projections.db import connect, migrate
from projections.names import PROJECTION_NAMES
from projections.pgserver import EmbeddedPostgres, free_port
from projections.verify import verify

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 5.0  # the target: a standby active within 5 s
GIVE_UP_S = 30.0  # a takeover (or a deposit applied) not seen by then is recorded as never
RUNNER_MAIN = (
    "import sys; from projections.runner import Runner; "
    "Runner(sys.argv[1], sys.argv[2], batch_ms=20.0, heartbeat_every=0.3).run()"
)


class Writer:
    """Deposits round-robin on a thread, pausable so that a trial's postings can be checked."""

    def __init__(self, ledger: Ledger, ids: list[str]) -> None:
        self.ledger, self.ids = ledger, ids
        self.written = 0
        self.last_position = 0
        self.running = threading.Event()
        self.idle = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="bench-writer")
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            if not self.running.wait(0.1):
                self.idle.set()
                continue
            self.idle.clear()
            acc = self.ids[self.written % len(self.ids)]
            outcome = self.ledger.deposit(acc, "1.00", f"tx-{self.written}")
            self.written += 1
            self.last_position = outcome.commit_position or self.last_position
            time.sleep(0.005)

    def resume(self) -> None:
        self.running.set()

    def pause(self) -> None:
        self.running.clear()
        self.idle.clear()
        if not self.idle.wait(GIVE_UP_S):
            raise RuntimeError("the writer did not pause")

    def close(self) -> None:
        self.stop.set()
        self.running.set()
        self.thread.join(GIVE_UP_S)


def poll(condition: Callable[[], Any], timeout: float, every: float = 0.02) -> Any:
    """The condition's first truthy value within `timeout` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(every)


def active_pid(db: psycopg.Connection[Any]) -> int | None:
    """The runner pid registered as active for every projection, if they agree."""
    pids = {
        r[0]
        for r in db.execute(
            "SELECT pid FROM projection_runners WHERE projection = ANY(%s) AND stopped_at IS NULL",
            (list(PROJECTION_NAMES),),
        )
    }
    return pids.pop() if len(pids) == 1 else None


def lock_holder(db: psycopg.Connection[Any]) -> int | None:
    """The backend pid of the session holding every projection's runner lock, if one does."""
    pids = {
        r[0]
        for r in db.execute(
            "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = ANY(%s)",
            ([runner_key(name) for name in PROJECTION_NAMES],),
        )
    }
    return pids.pop() if len(pids) == 1 else None


def applied(db: psycopg.Connection[Any], position: int) -> bool:
    row = db.execute(
        "SELECT count(*) FROM projection_checkpoints WHERE projection = ANY(%s) AND position >= %s",
        (list(PROJECTION_NAMES), position),
    ).fetchone()
    return bool(row and row[0] == len(PROJECTION_NAMES))


def postings_wrong(
    db: psycopg.Connection[Any], store: AccountEventStore, ids: list[str], written: int
) -> list[str]:
    """What is not applied exactly once (empty when every posting is there once)."""
    wrong: list[str] = []
    fold = write_model_fold(store)
    books = fold(store.commit_position())
    for acc in ids:
        rows = db.execute(
            "SELECT revision FROM account_statements WHERE account_id = %s ORDER BY revision",
            (acc,),
        ).fetchall()
        if [r[0] for r in rows] != sorted(books.postings[acc]):
            wrong.append(f"{acc}: statement revisions differ from the write model")
    count = db.execute(
        "SELECT count(*) FROM account_statements WHERE account_id = ANY(%s)", (ids,)
    ).fetchone()
    totals = db.execute("SELECT sum(count) FROM daily_totals").fetchone()
    if count != (written,) or totals != (written,):
        wrong.append(f"{written} postings written; statements {count}, daily totals {totals}")
    wrong.extend(str(problem) for problem in verify(db, fold))
    return wrong


def cut_unavailable() -> str | None:
    """Why a network cut cannot be made here (None: it can)."""
    if os.geteuid() != 0:
        return "not root: tc needs CAP_NET_ADMIN"
    missing = [tool for tool in ("tc", "ip") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found"
    try:
        with dropping([0], 0):  # port 0 carries no traffic: a probe of what tc can do here
            pass
    except RuntimeError as exc:
        return str(exc)
    return None


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


@contextmanager
def dropping(ports: list[int], server_port: int) -> Iterator[None]:
    """Drop every packet of the given client ports' connections to `server_port` on lo, both
    ways, until the block ends (nothing else on lo is touched).

    This kernel has no `gact` action (`action drop` fails: "Failed to load TC action module");
    a u32 filter on lo's clsact egress hook redirecting the matched packets to an ifb device of
    our own that stays down drops them (mirred to a down device discards the packet).
    """
    sink = f"lcut{os.getpid() % 100000}"
    prio = str(40000 + os.getpid() % 10000)
    made_clsact = False
    # A SIGTERM (timeout, the lead's Ctrl-C of a parent) must not leave the cut in place.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        made = _run("ip", "link", "add", "name", sink, "type", "ifb")
        if made.returncode:
            raise RuntimeError(f"ip link add {sink} type ifb: {made.stderr.strip()}")
        if "clsact" not in _run("tc", "qdisc", "show", "dev", "lo").stdout:
            added = _run("tc", "qdisc", "add", "dev", "lo", "clsact")
            if added.returncode:
                raise RuntimeError(f"tc qdisc add dev lo clsact: {added.stderr.strip()}")
            made_clsact = True
        for port in ports:
            for src, dst in ((port, server_port), (server_port, port)):
                done = _run(
                    "tc", "filter", "add", "dev", "lo", "ingress", "prio", prio, "protocol",
                    "ip", "u32", "match", "ip", "sport", str(src), "0xffff", "match", "ip",
                    "dport", str(dst), "0xffff", "action", "mirred", "egress", "redirect",
                    "dev", sink,
                )  # fmt: skip
                if done.returncode:
                    raise RuntimeError(f"tc filter add: {done.stderr.strip()}")
        yield
    finally:
        _run("tc", "filter", "del", "dev", "lo", "ingress", "prio", prio)
        if made_clsact and not _run("tc", "filter", "show", "dev", "lo", "ingress").stdout.strip():
            _run("tc", "qdisc", "del", "dev", "lo", "clsact")
        _run("ip", "link", "del", sink)
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def client_ports(pid: int, server_port: int) -> list[int]:
    """The local ports of a process's TCP connections to 127.0.0.1:server_port."""
    return sorted(
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == server_port and c.status == psutil.CONN_ESTABLISHED
    )


class Trials:
    """Two runners on one database with deposits flowing, and the events done to the active one."""

    def __init__(self, tmp: Path, database_url: str, observer_url: str, uri: str) -> None:
        self.tmp, self.database_url, self.uri = tmp, database_url, uri
        self.db = connect(observer_url)
        migrate(self.db)
        self.store = AccountEventStore.connect(uri)
        ledger = Ledger(CommandHandler(self.store), clock=fixed_clock, actor="bench:failover")
        self.ids = [new_account_id() for _ in range(4)]
        for acc in self.ids:
            ledger.open_account(acc, "Bench", "EUR")
        self.writer = Writer(ledger, self.ids)
        self.runners: list[subprocess.Popen[bytes]] = []
        self.log = (tmp / "runners.log").open("ab")
        for _ in range(2):
            self.start_runner()

    def start_runner(self) -> None:
        self.runners.append(
            subprocess.Popen(
                [sys.executable, "-c", RUNNER_MAIN, self.database_url, self.uri],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=self.log,
            )
        )

    def alive(self) -> set[int]:
        return {p.pid for p in self.runners if p.poll() is None}

    def trial(self, kind: str, server_port: int) -> tuple[float | None, float | None, list[str]]:
        """One event done to the active runner: (s until a standby is active, s until a deposit
        written after it is applied, what is not applied exactly once afterwards)."""
        self.writer.resume()
        victim = poll(lambda: (pid := active_pid(self.db)) in self.alive() and pid, GIVE_UP_S)
        if victim is None:
            raise RuntimeError("no active runner")
        seen = self.writer.written
        poll(lambda: self.writer.written > seen + 5, GIVE_UP_S)
        holder = poll(lambda: lock_holder(self.db), GIVE_UP_S)
        with self._event(kind, victim, server_port) as began:
            written = self.writer.written
            # Held by another session (the standby's): the victim's session is gone.
            takeover = poll(lambda: lock_holder(self.db) not in (None, holder), GIVE_UP_S)
            active_s = time.monotonic() - began if takeover else None
            poll(lambda: self.writer.written > written, GIVE_UP_S)
            position = self.writer.last_position
            done = poll(lambda: applied(self.db, position), GIVE_UP_S)
            applied_s = time.monotonic() - began if done else None
            if not (takeover and done):
                self._show_sessions(kind)
        self.writer.pause()
        poll(lambda: applied(self.db, self.writer.last_position), 4 * GIVE_UP_S)
        wrong = postings_wrong(self.db, self.store, self.ids, self.writer.written)
        if len(self.alive()) < 2:
            self.start_runner()
        return active_s, applied_s, wrong

    def _show_sessions(self, kind: str) -> None:
        """What each session of the database is doing (when a trial did not recover)."""
        rows = self.db.execute(
            "SELECT pid, client_port, state, wait_event, now() - state_change,"
            " left(query, 60) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        print(f"  {kind}: no recovery within {GIVE_UP_S:.0f} s; sessions:", file=sys.stderr)
        for row in rows:
            print(f"    {row}", file=sys.stderr)

    @contextmanager
    def _event(self, kind: str, victim: int, server_port: int) -> Iterator[float]:
        proc = next(p for p in self.runners if p.pid == victim)
        if kind == "kill":
            os.kill(victim, signal.SIGKILL)
            began = time.monotonic()
            proc.wait()
            yield began
        elif kind == "cut":
            ports = client_ports(victim, server_port)
            with dropping(ports, server_port):
                yield time.monotonic()
        else:  # "stop": a hung process, its sockets open and answered by the kernel
            os.kill(victim, signal.SIGSTOP)
            try:
                yield time.monotonic()
            finally:
                os.kill(victim, signal.SIGCONT)

    def close(self) -> None:
        self.writer.close()
        for proc in self.runners:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.wait()
        self.log.close()
        self.store.close()
        self.db.close()


def record(
    results: Run, kind: str, outcomes: list[tuple[float | None, float | None]], note: str
) -> None:
    """Median and max takeover, trials under the target, and the time to a later deposit."""
    trials = len(outcomes)
    takeovers = [a for a, _ in outcomes if a is not None]
    applies = [p for _, p in outcomes if p is not None]
    never = f"; {trials - len(takeovers)} of {trials} never within {GIVE_UP_S:.0f} s"
    results.record(
        f"failover_{kind}_trials_under_5s",
        sum(a < TARGET_S for a in takeovers),
        f"of {trials} trials, {note}",
    )
    if takeovers:
        results.record(
            f"failover_{kind}_takeover_s_median",
            statistics.median(takeovers),
            note + (never if len(takeovers) < trials else ""),
        )
        results.record(f"failover_{kind}_takeover_s_max", max(takeovers), note)
    if applies:
        results.record(
            f"failover_{kind}_applied_s_median",
            statistics.median(applies),
            f"until a deposit written after it is applied, {note}",
        )
        results.record(f"failover_{kind}_applied_s_max", max(applies), note)
    shown = ", ".join(
        f"{'never' if a is None else f'{a:.2f}'} ({'never' if p is None else f'{p:.2f}'})"
        for a, p in outcomes
    )
    print(f"  {kind}: takeover s (deposit applied s): {shown}", file=sys.stderr, flush=True)


KINDS: list[tuple[str, str, str, str]] = [
    # (figure name, transport, event, what it is)
    ("kill_unix", "unix", "kill", "kill -9 of the active runner, PostgreSQL over its Unix socket"),
    ("kill_tcp", "tcp", "kill", "kill -9 of the active runner, PostgreSQL over TCP 127.0.0.1"),
    (
        "cut_tcp",
        "tcp",
        "cut",
        "the active runner's PostgreSQL connections cut (packets dropped"
        " both ways by tc), the process alive",
    ),
    (
        "sigstop_tcp",
        "tcp",
        "stop",
        "SIGSTOP of the active runner (hung; its kernel still answers), over TCP",
    ),
]


def run(results: Run, full: bool, *, trials: int = 10, stop_trials: int = 3) -> None:
    """Every kind of failure `trials` times (SIGSTOP `stop_trials` times), two runners each."""
    del full  # the same trials in both modes: failover is about seconds, not sizes
    cut_missing = cut_unavailable()
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as name:
        tmp = Path(name)
        tmp.chmod(0o711)  # ours: PostgreSQL's user (as root) may pass through to pg/
        postgres = EmbeddedPostgres(tmp / "pg" / "data", owner_dir=tmp / "pg", tcp_port=free_port())
        try:
            postgres.start()
            for figure, transport, event, note in KINDS:
                if event == "cut" and cut_missing:
                    results.record(f"failover_{figure}_skipped", 1, f"skipped: {cut_missing}")
                    continue
                with connect(postgres.url()) as admin:
                    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(figure)))
                url = postgres.tcp_url(figure) if transport == "tcp" else postgres.url(figure)
                # A store of its own: the checks count every posting in $all.
                server = ServerProcess(tmp / f"esdb-{figure}").start()
                bench = Trials(tmp, url, postgres.url(figure), server.uri)
                outcomes: list[tuple[float | None, float | None]] = []
                wrong: list[str] = []
                try:
                    for _ in range(stop_trials if event == "stop" else trials):
                        active_s, applied_s, problems = bench.trial(event, postgres.port)
                        outcomes.append((active_s, applied_s))
                        wrong.extend(problems)
                finally:
                    bench.close()
                    server.stop()
                record(results, figure, outcomes, note)
                for problem in wrong[:3]:
                    print(f"  {figure}: NOT applied exactly once: {problem}", file=sys.stderr)
                results.record(
                    f"failover_{figure}_postings_wrong",
                    len(wrong),
                    "; ".join(wrong[:3]) or "every posting applied once after every trial",
                )
        finally:
            postgres.stop()


if __name__ == "__main__":
    figures = Run(mode="full" if "--full" in sys.argv else "quick")
    run(figures, figures.mode == "full")
