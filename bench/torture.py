"""Torture run: concurrent bank clients while esdblite and the projection runner are kill -9'd.

`python -m bench.torture` runs the short mode (the one tests/reliability runs); `--long` a long
one; `--ops N --clients N --seed S` set the figures; `--replay DIR/run.json` repeats a failed
run with its configuration and fault schedule. It prints the operations run, the faults
injected per kind and the violations found, and exits 1 when there is any violation.

Clients are separate processes (multiprocessing, spawn), each with its own AccountEventStore,
CommandHandler and Ledger. They post deposits, withdrawals and reversals on a few hot accounts,
change overdraft limits, retry commands whose outcome they could not learn, and re-send
acknowledged commands (same transaction id, new timestamp). Faults come from a schedule drawn
from the seed and fire when the shared operation counter reaches them: esdblite (on a durable
data dir, restarted on the same port) and the runner (`ledger projections run`) are killed
with SIGKILL, and the clients' connections, which pass through a proxy, are cut so that
replies in flight are lost. Afterwards every account stream, every command the clients sent
and every read model is checked, and `ledger verify` is run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import DeadlineExceeded

from esdblite.process import ServerProcess, ServerStartError
from ledger.accounts.events import (
    AccountClosed,
    AccountEvent,
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
    OverdraftLimitChanged,
    Posting,
    PostingReversed,
    deserialise_event,
    schema_version_from_metadata,
)
from ledger.errors import (
    BusinessRuleError,
    ConcurrencyConflictError,
    InvalidInputError,
    LedgerError,
    ServiceUnavailableError,
    TransactionConflictError,
)
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler, Outcome
from ledger.money import format_minor_units
from ledger.service import Ledger
from ledger.streams import ACCOUNT_STREAM_PREFIX
from ledger.writemodel import write_model_fold
from projections.pgserver import EmbeddedPostgres
from projections.verify import verify

ESDB = "esdblite"
RUNNER = "runner"
CUT = "connections"
FAULT_KINDS = (ESDB, RUNNER, CUT)
FAULT_NAMES = {ESDB: "esdblite kill -9", RUNNER: "runner kill -9", CUT: "client connections cut"}
PROJECTION_NAMES = ("balances", "statements", "daily_totals")
SHORT_OPS = 4000
LONG_OPS = 24_000
CATCH_UP_TIMEOUT = 120.0
RETRY_LIMIT = 40  # attempts per command whose outcome stays unknown
STALL_S = 20.0  # no operation started for this long, with every service up, is a violation
PROBE_EVERY_S = 2.0  # how often the harness checks that esdblite still completes appends
PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class AccountSpec:
    """A hot account: opened before the clients start, with an overdraft limit."""

    account_id: str
    owner: str
    currency: str
    limit: str
    scale: int  # minor units of one amount step, so that amounts are alike in every currency
    limits: tuple[str, ...]  # overdraft limits the clients switch between


HOT_ACCOUNTS = (
    AccountSpec("hot-eur-a", "Ada O'Torture", "EUR", "100.00", 100, ("100.00", "40.00", "250.00")),
    AccountSpec("hot-eur-b", "Bo [bold]Zero[/]", "EUR", "0", 100, ("0", "10.00")),
    AccountSpec("hot-jpy", "千代", "JPY", "5000", 100, ("5000", "0", "12000")),
    AccountSpec("hot-bhd", "Dana", "BHD", "20.000", 1000, ("20.000", "5.500")),
)


@dataclass(frozen=True)
class Fault:
    """Once `at_op` operations have started: SIGKILL a service (esdblite or the runner), or
    cut every client connection (replies in flight are lost); `down_s` later, recover."""

    at_op: int
    kind: str
    down_s: float  # how long it stays dead before the restart


@dataclass(frozen=True)
class Config:
    """One torture run."""

    ops: int = SHORT_OPS
    clients: int = 8
    seed: int = 20240501
    kills_per_kind: int = 2
    schedule: tuple[Fault, ...] | None = None  # None: drawn from the seed

    @classmethod
    def long(cls, seed: int = 20240501, ops: int = LONG_OPS, clients: int = 8) -> Config:
        """A long run: at least one kill of each service per 3,000 operations."""
        return cls(ops=ops, clients=clients, seed=seed, kills_per_kind=max(4, ops // 3000))

    def faults(self) -> list[Fault]:
        """The fault schedule of this run."""
        if self.schedule is not None:
            return sorted(self.schedule, key=lambda f: (f.at_op, f.kind))
        return fault_schedule(self.seed, self.ops, self.kills_per_kind)


def fault_schedule(seed: int, ops: int, kills_per_kind: int) -> list[Fault]:
    """Kills of each service spread over the middle of the run, drawn from the seed."""
    rng = random.Random(f"faults/{seed}")
    low, high = int(ops * 0.06), int(ops * 0.85)
    width = (high - low) / kills_per_kind
    faults = []
    for kind in FAULT_KINDS:
        for k in range(kills_per_kind):
            at = low + int(width * (k + rng.uniform(0.1, 0.9)))
            down = {ESDB: rng.uniform(0.2, 1.2), RUNNER: rng.uniform(0.0, 0.8)}.get(
                kind, rng.uniform(0.1, 0.5)
            )
            faults.append(Fault(at, kind, round(down, 3)))
    return sorted(faults, key=lambda f: (f.at_op, f.kind))


# ----- the clients (each in its own process)


@dataclass(frozen=True)
class ClientPlan:
    """What one client process needs to know."""

    index: int
    seed: int
    uri: str
    total_ops: int
    log_path: str
    accounts: tuple[AccountSpec, ...] = HOT_ACCOUNTS


def client_main(plan: ClientPlan, counter: Any, stop: Any) -> None:
    """Entry point of a client process: run commands until the operation budget is spent."""
    client = _Client(plan, counter, stop)
    try:
        client.run()
    finally:
        client.close()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Client:
    """One bank client: new commands, retries of unknown outcomes, duplicate deliveries."""

    def __init__(self, plan: ClientPlan, counter: Any, stop: Any) -> None:
        self.plan = plan
        self.counter = counter
        self.stop = stop
        self.rng = random.Random(f"client/{plan.seed}/{plan.index}")
        self.store = AccountEventStore.connect(plan.uri)
        self.ledger = Ledger(CommandHandler(self.store), clock=_now, actor=f"torture:c{plan.index}")
        self.accounts = {a.account_id: a for a in plan.accounts}
        self.seq = 0
        self.pending: deque[dict[str, Any]] = deque()  # unknown outcomes still to retry
        self.tries: Counter[str] = Counter()
        self.acked: list[dict[str, Any]] = []  # acknowledged postings, newest last
        self.reversible: dict[str, dict[str, Any]] = {}  # acked deposits/withdrawals
        self.reversed: list[dict[str, Any]] = []  # postings this client reversed
        self.log = open(plan.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def close(self) -> None:
        self.log.close()
        self.store.close()

    def claim(self) -> int | None:
        """The next global operation number, or None when the budget is spent."""
        if self.stop.is_set():
            return None
        with self.counter.get_lock():
            op = int(self.counter.value)
            if op >= self.plan.total_ops:
                return None
            self.counter.value = op + 1
        return op

    def run(self) -> None:
        while (op := self.claim()) is not None:
            command, flags = self.next_command(op)
            self.attempt(op, command, flags)

    def _tx(self) -> str:
        self.seq += 1
        return f"c{self.plan.index}-{self.seq}"

    def _amount(self, spec: AccountSpec, top: int) -> tuple[str, int]:
        minor = self.rng.randint(1, top * spec.scale // 100)
        return format_minor_units(minor, spec.currency), minor

    def next_command(self, op: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Pick what to send: a retry, a duplicate, a deliberate conflict or a new command."""
        if self.pending and self.rng.random() < 0.6:
            return self.pending.popleft(), {"retry": True}
        spec = self.rng.choice(self.plan.accounts)
        account = spec.account_id
        r = self.rng.random()
        description = self.rng.choice(["", f"op {op}", "café ☕ «rent»", "'); drop table x; --"])
        if r < 0.40:
            amount, minor = self._amount(spec, 6000)
            return self._posting("deposit", account, amount, minor, description), {}
        if r < 0.76:
            amount, minor = self._amount(spec, 7000)
            return self._posting("withdraw", account, amount, -minor, description), {}
        if r < 0.86 and self.reversible:
            target = self.reversible[self.rng.choice(sorted(self.reversible))]
            return self._reversal(target["account"], target["tx"]), {}
        if r < 0.89:
            return self._hostile_reversal(account), {"hostile": True}
        if r < 0.92:
            return {"kind": "limit", "account": account, "limit": self.rng.choice(spec.limits)}, {}
        if r < 0.97 and self.acked:
            return dict(self.rng.choice(self.acked[-100:])), {"duplicate": True}
        postings = [c for c in self.acked[-100:] if c["kind"] in ("deposit", "withdraw")]
        if postings:
            original = self.rng.choice(postings)
            changed = {**original, "description": original["description"] + " (changed)"}
            return changed, {"conflicting": True}
        amount, minor = self._amount(spec, 6000)
        return self._posting("deposit", account, amount, minor, description), {}

    def _posting(
        self, kind: str, account: str, amount: str, minor: int, description: str
    ) -> dict[str, Any]:
        return {
            "kind": kind,
            "account": account,
            "amount": amount,
            "minor": minor,
            "tx": self._tx(),
            "description": description,
        }

    def _reversal(self, account: str, target: str) -> dict[str, Any]:
        return {
            "kind": "reverse",
            "account": account,
            "reverses": target,
            "tx": self._tx(),
            "description": "",
        }

    def _hostile_reversal(self, account: str) -> dict[str, Any]:
        """A reversal the ledger must refuse: unknown, already reversed, or of a reversal."""
        choices: list[tuple[str, str]] = [(account, f"nope-{self.plan.index}-{self.seq}")]
        if self.reversed:
            done = self.rng.choice(self.reversed)
            choices.append((done["account"], done["reverses"]))
            choices.append((done["account"], done["tx"]))
        chosen_account, target = self.rng.choice(choices)
        return self._reversal(chosen_account, target)

    def send(self, command: Mapping[str, Any]) -> Outcome:
        kind, account = command["kind"], command["account"]
        if kind == "deposit":
            return self.ledger.deposit(
                account, command["amount"], command["tx"], command["description"]
            )
        if kind == "withdraw":
            return self.ledger.withdraw(
                account, command["amount"], command["tx"], command["description"]
            )
        if kind == "reverse":
            return self.ledger.reverse(
                account, command["reverses"], command["tx"], command["description"]
            )
        return self.ledger.set_overdraft_limit(account, command["limit"])

    def attempt(self, op: int, command: dict[str, Any], flags: dict[str, Any]) -> None:
        record: dict[str, Any] = {
            "op": op,
            "client": self.plan.index,
            "at": time.time(),
            "cmd": command,
            **flags,
        }
        key = command.get("tx") or f"limit-{op}"
        self.tries[key] += 1
        record["attempt"] = self.tries[key]
        try:
            outcome = self.send(command)
        except BusinessRuleError as exc:
            record.update(result="refused", error=f"{type(exc).__name__}: {exc}")
            if flags.get("conflicting") and not isinstance(exc, TransactionConflictError):
                record["violation"] = f"a re-used transaction id was refused with {exc!r}"
        except (ServiceUnavailableError, ConcurrencyConflictError) as exc:
            # Unknown to the client (or, for a conflict, safe to retry): maybe send it again.
            unknown = isinstance(exc, ServiceUnavailableError)
            record.update(
                result="unknown" if unknown else "conflict", error=f"{type(exc).__name__}: {exc}"
            )
            if not flags.get("duplicate") and not flags.get("conflicting"):
                self._maybe_retry(command)
            if unknown:
                time.sleep(self.rng.uniform(0.02, 0.15))
        except Exception as exc:
            kind = "invalid" if isinstance(exc, InvalidInputError) else "unexpected"
            record.update(result=kind, error=f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
            if not isinstance(exc, LedgerError):
                # Not a ledger error: the API let a raw failure through; the outcome is unknown.
                self._maybe_retry(command)
                time.sleep(0.05)
        else:
            record.update(
                result="replayed" if outcome.replayed else "ok",
                revision=outcome.revision,
                position=outcome.commit_position,
                balance=outcome.balance,
            )
            self._acknowledged(command, flags, outcome, record)
        self.log.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.log.flush()

    def _maybe_retry(self, command: dict[str, Any]) -> None:
        key = command.get("tx")
        if key is None:
            return
        # One in five unknown commands is abandoned, so that "at most once" is exercised too.
        abandoned = zlib.crc32(key.encode()) % 5 == 0
        if not abandoned and self.tries[key] < RETRY_LIMIT:
            self.pending.append(command)

    def _acknowledged(
        self,
        command: dict[str, Any],
        flags: dict[str, Any],
        outcome: Outcome,
        record: dict[str, Any],
    ) -> None:
        if command["kind"] == "limit":
            return
        if flags.get("conflicting"):
            record["violation"] = "a re-used transaction id with other content was accepted"
            return
        if flags.get("duplicate"):
            expected = (command["revision"], command["balance"])
            if not outcome.replayed or (outcome.revision, outcome.balance) != expected:
                record["violation"] = (
                    f"a re-sent acknowledged command answered revision {outcome.revision}, "
                    f"balance {outcome.balance}, replayed={outcome.replayed}; the first answer "
                    f"was revision {expected[0]}, balance {expected[1]}"
                )
            return
        done = {**command, "revision": outcome.revision, "balance": outcome.balance}
        self.acked.append(done)
        if command["kind"] in ("deposit", "withdraw"):
            self.reversible[command["tx"]] = done
        elif command["kind"] == "reverse":
            target = self.reversible.pop(command["reverses"], None)
            if target is not None:
                self.reversed.append(done)


# ----- the services and the fault injector


@dataclass
class FaultRecord:
    """A fault as it happened."""

    kind: str
    planned_at_op: int
    at_op: int
    down_s: float
    killed_at: float
    restarted_at: float | None = None
    restart_error: str | None = None


class CuttableProxy:
    """A TCP proxy in front of esdblite for the clients: a fault resets every connection.

    Requests already sent may still commit while their replies are lost, which is how a
    client ends up not knowing the outcome of a command that was in fact written.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.refuse_until = 0.0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="torture-proxy").start()

    @property
    def uri(self) -> str:
        return f"esdb://127.0.0.1:{self.port}?Tls=false"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.refuse_until:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 2)
            except OSError:
                _reset(client)
                continue
            for s in (client, upstream):
                # As gRPC does: small frames must not wait for Nagle's algorithm.
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        with self.lock:
            self.open -= {source, sink}

    def cut(self, refuse_s: float) -> None:
        """Reset every connection now and refuse new ones for a while."""
        self.refuse_until = time.monotonic() + refuse_s
        with self.lock:
            doomed, self.open = self.open, set()
        for s in doomed:
            _reset(s)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.cut(0)


def _reset(s: socket.socket) -> None:
    """Drop a connection at once: nothing buffered is delivered any more."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # shutdown() wakes the pump thread blocked in recv(); close() alone would not.
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()


class Prober:
    """Appends to a probe stream directly (not through the proxy) every few seconds: an
    append that is accepted but never answered means esdblite stopped committing writes."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.stuck = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="torture-prober")
        self.thread.start()

    def _run(self) -> None:
        client = EventStoreDBClient(self.services.eventstore_uri)
        try:
            n = 0
            while not self.stopping.wait(PROBE_EVERY_S):
                epoch = self.services.esdb_epoch
                n += 1
                try:
                    client.append_to_stream(
                        "torture-probe",
                        current_version=StreamState.ANY,
                        events=[NewEvent(type="Probe", data=b"{}")],
                        timeout=PROBE_TIMEOUT_S,
                    )
                except DeadlineExceeded:
                    # Only a server that was up all along counts (not one killed meanwhile).
                    if epoch == self.services.esdb_epoch and not self.stopping.is_set():
                        self.stuck.set()
                except Exception:
                    continue  # unavailable (a fault): nothing to conclude
        finally:
            client.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(PROBE_TIMEOUT_S + 5)


class Services:
    """PostgreSQL (kept up); esdblite on a durable data dir and the runner, both killable; a
    proxy between the clients and esdblite whose connections can be cut."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.pg = EmbeddedPostgres(work / "pg" / "data", owner_dir=work / "pg")
        self.esdb = ServerProcess(work / "esdb", log_file=work / "esdblite.log")
        self.proxy: CuttableProxy | None = None
        self.esdb_epoch = 0  # bumped whenever esdblite is killed or started
        self.runner: subprocess.Popen[bytes] | None = None
        self.database_url = ""
        self.problems: list[str] = []

    def start(self) -> None:
        (self.work / "pg").mkdir(parents=True, exist_ok=True)
        self.pg.start()
        with psycopg.connect(self.pg.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE torture")
        self.database_url = self.pg.url("torture")
        self.esdb.start()
        assert self.esdb.bound_port is not None
        self.proxy = CuttableProxy(self.esdb.bound_port)
        self.start_runner()

    @property
    def eventstore_uri(self) -> str:
        return self.esdb.uri

    @property
    def client_uri(self) -> str:
        """Where the clients connect: through the proxy."""
        assert self.proxy is not None
        return self.proxy.uri

    def cli_env(self) -> dict[str, str]:
        """The environment of a `ledger` process that uses these services."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env.update(
            LEDGER_EVENTSTORE_URI=self.eventstore_uri,
            LEDGER_DATABASE_URL=self.database_url,
            LEDGER_HOME=str(self.work / "home"),
        )
        return env

    def start_runner(self) -> None:
        with open(self.work / "runner.log", "ab") as log:
            self.runner = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "projections", "run"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.cli_env(),
                start_new_session=True,
            )

    def kill(self, kind: str, down_s: float = 0.0) -> None:
        """SIGKILL a service (its whole process group), or cut the clients' connections."""
        if kind == CUT:
            assert self.proxy is not None
            self.proxy.cut(down_s)
            return
        if kind == ESDB:
            self.esdb_epoch += 1
            self.esdb.kill()
            return
        assert self.runner is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.runner.pid, signal.SIGKILL)
        self.runner.wait()

    def restart(self, kind: str) -> None:
        """Start a killed service again (esdblite on the same data dir and port)."""
        if kind == CUT:
            return  # the proxy accepts connections again by itself
        if kind == RUNNER:
            self.start_runner()
            return
        self.esdb_epoch += 1
        for attempt in range(10):
            try:
                self.esdb.start()
                return
            except ServerStartError:
                if attempt == 9:
                    raise
                time.sleep(0.5)

    def watch(self, down: set[str]) -> None:
        """Notice a service that died although no fault killed it (then restart it)."""
        if ESDB not in down and self.esdb.proc is not None and self.esdb.proc.poll() is not None:
            self.problems.append(f"esdblite exited by itself with code {self.esdb.proc.returncode}")
            self.esdb.kill()
            self.restart(ESDB)
        if RUNNER not in down and self.runner is not None and self.runner.poll() is not None:
            tail = _tail(self.work / "runner.log")
            self.problems.append(
                f"the projection runner exited by itself with code {self.runner.returncode}; "
                f"last log lines: {tail}"
            )
            self.start_runner()

    def stop(self) -> None:
        if self.runner is not None and self.runner.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.runner.pid, signal.SIGTERM)
            try:
                self.runner.wait(15)
            except subprocess.TimeoutExpired:
                self.kill(RUNNER)
        if self.proxy is not None:
            self.proxy.close()
        self.esdb.stop()
        self.pg.stop()


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def inject_faults(
    services: Services,
    schedule: Sequence[Fault],
    counter: Any,
    clients: Sequence[Any],
    deadline: float,
    progress: bool = False,
) -> list[FaultRecord]:
    """Fire each fault when the operation counter reaches it, until every client has finished."""
    loop = _FaultLoop(services, schedule, counter, clients, progress)
    prober = Prober(services)
    try:
        while loop.step(prober):
            if time.monotonic() > deadline:
                services.problems.append("the clients did not finish before the run's deadline")
                break
            time.sleep(0.005)
    finally:
        prober.stop()
    return loop.done


class _FaultLoop:
    """The fault injector's state between two looks at the operation counter."""

    def __init__(
        self,
        services: Services,
        schedule: Sequence[Fault],
        counter: Any,
        clients: Sequence[Any],
        progress: bool,
    ) -> None:
        self.services = services
        self.due = deque(schedule)
        self.down: dict[str, tuple[float, FaultRecord]] = {}  # kind -> (recovery, record)
        self.done: list[FaultRecord] = []
        self.counter = counter
        self.clients = clients
        self.progress = progress
        self.last_ops, self.moved_at = -1, time.monotonic()
        self.next_report = time.monotonic() + 5

    def step(self, prober: Prober) -> bool:
        """One look: watchdogs, recoveries, faults now due; False once everything is done."""
        now, ops = time.monotonic(), int(self.counter.value)
        self._watchdogs(prober, now, ops)
        for kind, (recover_at, record) in list(self.down.items()):
            if now >= recover_at:
                try:
                    self.services.restart(kind)
                except Exception as exc:
                    record.restart_error = f"{type(exc).__name__}: {exc}"
                    raise
                record.restarted_at = time.time()
                del self.down[kind]
        # A fault waits while its service is still down from the previous one.
        while self.due and self.due[0].at_op <= ops and self.due[0].kind not in self.down:
            fault = self.due.popleft()
            self.services.kill(fault.kind, fault.down_s)
            record = FaultRecord(fault.kind, fault.at_op, ops, fault.down_s, time.time())
            self.done.append(record)
            self.down[fault.kind] = (time.monotonic() + fault.down_s, record)
        self.services.watch(set(self.down))
        if self.progress and now >= self.next_report:
            kinds = dict(Counter(r.kind for r in self.done))
            print(f"  {ops:,} operations, faults {kinds}", file=sys.stderr, flush=True)
            self.next_report = now + 5
        alive = any(c.is_alive() for c in self.clients)
        return alive or bool(self.due) or bool(self.down)

    def _watchdogs(self, prober: Prober, now: float, ops: int) -> None:
        """A server that stopped completing writes, or clients that stopped moving at all."""
        problem = None
        if prober.stuck.is_set() and ESDB not in self.down:
            prober.stuck.clear()
            problem = (
                f"stuck: at operation {ops} esdblite was up but did not complete an append "
                f"within {PROBE_TIMEOUT_S:g}s (its writer stopped?); esdblite was restarted"
            )
        if ops != self.last_ops:
            self.last_ops, self.moved_at = ops, now
        elif (
            not self.down
            and now - self.moved_at > STALL_S
            and any(c.is_alive() for c in self.clients)
        ):
            problem = (
                f"stall: no operation started for {STALL_S:g}s at operation {ops} while "
                "every service was up; esdblite was restarted"
            )
        if problem is not None:
            self.services.problems.append(problem)
            self.services.kill(ESDB)
            self.services.restart(ESDB)
            self.moved_at = now


# ----- reading what the run left behind


@dataclass(frozen=True)
class StreamEvent:
    """An account event as stored: its stream revision and its $all commit position."""

    account_id: str
    revision: int
    position: int
    event: AccountEvent


Streams = dict[str, list[StreamEvent]]


def read_streams(uri: str) -> Streams:
    """Every account stream, read from $all (so that no stream can be overlooked)."""
    client = EventStoreDBClient(uri)
    streams: Streams = defaultdict(list)
    try:
        for recorded in client.read_all(
            filter_include=[ACCOUNT_STREAM_PREFIX + ".*"], filter_by_stream_name=True
        ):
            account_id = recorded.stream_name[len(ACCOUNT_STREAM_PREFIX) :]
            version = schema_version_from_metadata(recorded.metadata)
            event = deserialise_event(recorded.type, recorded.data, version)
            streams[account_id].append(
                StreamEvent(account_id, recorded.stream_position, recorded.commit_position, event)
            )
    finally:
        client.close()
    return dict(streams)


@dataclass
class ReadModels:
    """The rows of the read models, as plain tuples."""

    balances: list[tuple[Any, ...]] = field(default_factory=list)
    statements: list[tuple[Any, ...]] = field(default_factory=list)
    daily: list[tuple[Any, ...]] = field(default_factory=list)
    tracked: list[tuple[Any, ...]] = field(default_factory=list)
    parked: int = 0


def read_models(conn: psycopg.Connection[Any]) -> ReadModels:
    """Everything the projections wrote."""

    def rows(query: str) -> list[tuple[Any, ...]]:
        return list(conn.execute(query.encode()).fetchall())

    return ReadModels(
        balances=rows(
            "SELECT account_id, owner, currency, balance, overdraft_limit, status, last_revision,"
            " last_position FROM account_balances ORDER BY account_id"
        ),
        statements=rows(
            "SELECT account_id, revision, position, transaction_id, kind, amount, balance_after,"
            " description, occurred_at FROM account_statements ORDER BY account_id, revision"
        ),
        daily=rows(
            "SELECT currency, day, deposited, withdrawn, reversed, count FROM daily_totals"
            " ORDER BY currency, day"
        ),
        tracked=rows(
            "SELECT projection, account_id, last_revision, parked FROM projection_accounts"
            " ORDER BY projection, account_id"
        ),
        parked=int(rows("SELECT count(*) FROM parked_events")[0][0]),
    )


# ----- the checks (pure functions over what was read, so that tests can plant violations)


def check_streams(streams: Mapping[str, Sequence[StreamEvent]]) -> list[str]:
    """Each stream on its own: contiguous, chained, never below minus the overdraft limit."""
    found: list[str] = []
    seen_tx: dict[str, str] = {}
    for account_id, events in sorted(streams.items()):
        revisions = [e.revision for e in events]
        if revisions != list(range(len(events))):
            found.append(f"stream: {account_id} revisions are not 0..{len(events) - 1}")
        positions = [e.position for e in events]
        if positions != sorted(set(positions)):
            found.append(f"stream: {account_id} commit positions do not increase")
        balance, limit, currency = 0, 0, None
        postings: dict[str, Posting] = {}
        reversed_by: dict[str, str] = {}
        for e in events:
            event = e.event
            where = f"{account_id}@{e.revision}"
            if e.revision == 0 and not isinstance(event, AccountOpened):
                found.append(f"stream: {where} does not start with AccountOpened")
            match event:
                case AccountOpened():
                    if e.revision != 0:
                        found.append(f"stream: {where} opens the account again")
                    limit, currency = event.overdraft_limit, event.currency
                case OverdraftLimitChanged():
                    limit = event.limit
                    if balance < -limit:
                        found.append(
                            f"overdraft: {where} sets the limit to {limit} under balance {balance}"
                        )
                case Posting():
                    found += _check_posting(where, event, balance, limit, currency)
                    found += _check_reversal(where, event, postings, reversed_by)
                    if event.transaction_id in seen_tx:
                        found.append(
                            f"duplicate: transaction {event.transaction_id} is posted at "
                            f"{seen_tx[event.transaction_id]} and again at {where}"
                        )
                    seen_tx[event.transaction_id] = where
                    postings[event.transaction_id] = event
                    balance = event.balance_after
                case AccountClosed():
                    pass
    return found


def _check_posting(
    where: str, event: Posting, balance: int, limit: int, currency: str | None
) -> list[str]:
    found = []
    if event.currency != currency:
        found.append(f"stream: {where} posts {event.currency} on a {currency} account")
    if event.balance_after != balance + event.amount:
        found.append(
            f"chain: {where} balance_after {event.balance_after} != {balance} + {event.amount}"
        )
    if event.balance_after < -limit:
        found.append(
            f"overdraft: {where} ({event.transaction_id}) takes the balance to "
            f"{event.balance_after}, below minus the limit {limit}"
        )
    return found


def _check_reversal(
    where: str, event: Posting, postings: Mapping[str, Posting], reversed_by: dict[str, str]
) -> list[str]:
    if not isinstance(event, PostingReversed):
        return []
    target = postings.get(event.reverses)
    if target is None:
        return [f"reversal: {where} reverses {event.reverses}, which is not earlier in the stream"]
    found = []
    if isinstance(target, PostingReversed):
        found.append(f"reversal: {where} reverses the reversal {event.reverses}")
    if event.amount != -target.amount:
        found.append(f"reversal: {where} amount {event.amount} != -{target.amount}")
    if event.reverses in reversed_by:
        found.append(
            f"reversal: {event.reverses} is reversed twice ({reversed_by[event.reverses]}, "
            f"{event.transaction_id})"
        )
    reversed_by[event.reverses] = event.transaction_id
    return found


def check_commands(
    streams: Mapping[str, Sequence[StreamEvent]], records: Sequence[Mapping[str, Any]]
) -> list[str]:
    """What clients were told against what is stored: acked once, unknown at most once."""
    stored: dict[str, list[StreamEvent]] = defaultdict(list)
    for events in streams.values():
        for e in events:
            if isinstance(e.event, Posting):
                stored[e.event.transaction_id].append(e)
    found = [f"client: op {r['op']}: {r['violation']}" for r in records if r.get("violation")]
    found += [
        f"client: op {r['op']} got an {r['result']} error: {r.get('error')}"
        for r in records
        if r["result"] in ("invalid", "unexpected")
    ]
    attempts: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        tx = r["cmd"].get("tx")
        if tx is not None and not r.get("conflicting") and not r.get("duplicate"):
            attempts[tx].append(r)
    for tx, tries in sorted(attempts.items()):
        results = {r["result"] for r in tries}
        copies = stored.get(tx, [])
        if results & {"ok", "replayed"}:
            if len(copies) != 1:
                found.append(f"acked: {tx} was acknowledged but is stored {len(copies)} times")
                continue
            found += _check_acked(tx, tries, copies[0])
        elif results & {"unknown", "unexpected"}:
            if len(copies) > 1:
                found.append(f"unknown: {tx} had an unknown outcome and is stored {len(copies)}x")
            elif copies:
                found += _check_content(tx, tries[0]["cmd"], copies[0])
        elif copies:
            found.append(f"refused: {tx} was refused on every attempt but is stored")
    sent = set(attempts)
    for tx, copies in sorted(stored.items()):
        if tx not in sent:
            found.append(f"phantom: {tx} is stored at {copies[0].account_id} but nobody sent it")
    return found


def unknown_outcomes(
    streams: Mapping[str, Sequence[StreamEvent]], records: Sequence[Mapping[str, Any]]
) -> Counter[str]:
    """How the commands whose outcome a client did not learn at first turned out."""
    stored = {
        e.event.transaction_id
        for events in streams.values()
        for e in events
        if isinstance(e.event, Posting)
    }
    results: dict[str, list[str]] = defaultdict(list)
    for r in records:
        tx = r["cmd"].get("tx")
        if tx is not None and not r.get("conflicting") and not r.get("duplicate"):
            results[tx].append(r["result"])
    figures: Counter[str] = Counter()
    for tx, seen in results.items():
        if "unknown" not in seen:
            continue
        if "ok" in seen:
            figures["retried and written by the retry"] += 1
        elif "replayed" in seen:
            figures["retried and found already written"] += 1
        elif "refused" in seen:
            figures["retried and refused"] += 1
        else:
            figures["never learned, " + ("stored" if tx in stored else "not stored")] += 1
    return figures


def _check_content(tx: str, command: Mapping[str, Any], stored: StreamEvent) -> list[str]:
    event = stored.event
    assert isinstance(event, Posting)
    kind = {"deposit": MoneyDeposited, "withdraw": MoneyWithdrawn, "reverse": PostingReversed}
    problems = []
    if stored.account_id != command["account"]:
        problems.append(f"stored on {stored.account_id}, sent to {command['account']}")
    if not isinstance(event, kind[command["kind"]]):
        problems.append(f"stored as {event.type}, sent as {command['kind']}")
    if "minor" in command and event.amount != command["minor"]:
        problems.append(f"stored amount {event.amount}, sent {command['minor']}")
    if isinstance(event, PostingReversed) and event.reverses != command.get("reverses"):
        problems.append(f"reverses {event.reverses}, sent {command.get('reverses')}")
    if event.description != command["description"]:
        problems.append(f"description {event.description!r}, sent {command['description']!r}")
    return [f"content: {tx} {p}" for p in problems]


def _check_acked(tx: str, tries: Sequence[Mapping[str, Any]], stored: StreamEvent) -> list[str]:
    found = _check_content(tx, tries[0]["cmd"], stored)
    event = stored.event
    assert isinstance(event, Posting)
    for r in tries:
        if r["result"] not in ("ok", "replayed"):
            continue
        told = (r["revision"], r["position"], r["balance"])
        actual = (stored.revision, stored.position, event.balance_after)
        if told != actual:
            found.append(
                f"acked: {tx} (op {r['op']}) was answered (revision, position, balance) {told}, "
                f"the store has {actual}"
            )
    return found


def check_read_models(
    streams: Mapping[str, Sequence[StreamEvent]], models: ReadModels
) -> list[str]:
    """Every projection equals a fresh fold of the events; statements contiguous; totals add up."""
    found: list[str] = []
    expected_balances, expected_statements = [], []
    daily: dict[tuple[str, dt.date], list[int]] = {}
    tracked = []
    for account_id, events in sorted(streams.items()):
        opened = next(e.event for e in events if isinstance(e.event, AccountOpened))
        assert isinstance(opened, AccountOpened)
        balance, limit, status = 0, opened.overdraft_limit, "open"
        for e in events:
            event = e.event
            if isinstance(event, Posting):
                balance = event.balance_after
                expected_statements.append(
                    (
                        account_id,
                        e.revision,
                        e.position,
                        event.transaction_id,
                        str(event.kind),
                        event.amount,
                        event.balance_after,
                        event.description,
                        event.occurred_at,
                    )
                )
                day = event.occurred_at.astimezone(dt.UTC).date()
                totals = daily.setdefault((event.currency, day), [0, 0, 0, 0])
                column = {MoneyDeposited: 0, MoneyWithdrawn: 1, PostingReversed: 2}[type(event)]
                totals[column] += -event.amount if column == 1 else event.amount
                totals[3] += 1
            elif isinstance(event, OverdraftLimitChanged):
                limit = event.limit
            elif isinstance(event, AccountClosed):
                status = "closed"
        last = events[-1]
        expected_balances.append(
            (
                account_id,
                opened.owner,
                opened.currency,
                balance,
                limit,
                status,
                last.revision,
                last.position,
            )
        )
        tracked += [(p, account_id, last.revision, False) for p in PROJECTION_NAMES]
    found += _diff("account_balances", expected_balances, models.balances)
    found += _diff("account_statements", expected_statements, models.statements)
    expected_daily = [(c, d, *v) for (c, d), v in sorted(daily.items())]
    found += _diff("daily_totals", expected_daily, models.daily)
    found += _diff("projection_accounts", sorted(tracked), models.tracked)
    if models.parked:
        found.append(f"parked: {models.parked} events are parked")
    found += _statement_chains(models.statements)
    found += _currency_totals(streams, models)
    return found


def _diff(
    table: str, expected: Sequence[tuple[Any, ...]], actual: Sequence[tuple[Any, ...]]
) -> list[str]:
    want, got = set(expected), set(actual)
    if want == got and len(expected) == len(actual):
        return []
    missing, extra = sorted(want - got, key=repr), sorted(got - want, key=repr)
    return [
        f"projection: {table} differs from the fold: {len(missing)} rows missing "
        f"(first {missing[:2]}), {len(extra)} unexpected (first {extra[:2]}), "
        f"{len(actual)} rows for {len(expected)} expected"
    ]


def _statement_chains(statements: Sequence[tuple[Any, ...]]) -> list[str]:
    found = []
    by_account: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in statements:
        by_account[row[0]].append(row)
    for account_id, rows in sorted(by_account.items()):
        running = 0
        for row in sorted(rows, key=lambda r: r[1]):
            if row[6] != running + row[5]:
                found.append(
                    f"statement: {account_id}@{row[1]} balance_after {row[6]} != "
                    f"{running} + {row[5]} (a line is missing or doubled)"
                )
            running = row[6]
    return found


def _currency_totals(streams: Mapping[str, Sequence[StreamEvent]], models: ReadModels) -> list[str]:
    currency_of = {row[0]: row[2] for row in models.balances}
    balances: Counter[str] = Counter()
    for row in models.balances:
        balances[row[2]] += row[3]
    statements: Counter[str] = Counter()
    for row in models.statements:
        statements[currency_of.get(row[0], "?")] += row[5]
    events: Counter[str] = Counter()
    for stream in streams.values():
        for e in stream:
            if isinstance(e.event, Posting):
                events[e.event.currency] += e.event.amount
    found = []
    for currency in sorted(set(balances) | set(statements) | set(events)):
        figures = (balances[currency], statements[currency], events[currency])
        if len(set(figures)) != 1:
            found.append(
                f"totals: {currency} balances sum to {figures[0]}, statement amounts to "
                f"{figures[1]}, stored postings to {figures[2]}"
            )
    return found


# ----- the run


@dataclass
class Report:
    """What a torture run did and found."""

    config: Config
    operations: int = 0
    results: Counter[str] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    fault_log: list[FaultRecord] = field(default_factory=list)
    events: int = 0
    unknown: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    artifacts: Path | None = None

    def summary(self) -> str:
        kinds = ", ".join(f"{FAULT_NAMES[k]} x{self.faults[k]}" for k in FAULT_KINDS)
        results = ", ".join(f"{k} {v}" for k, v in sorted(self.results.items()))
        lines = [
            f"torture run (seed {self.config.seed}, {self.config.clients} clients): "
            f"{self.operations:,} operations in {self.seconds:.1f}s",
            f"  outcomes: {results}",
            f"  commands: {', '.join(f'{k} {v}' for k, v in sorted(self.commands.items()))}",
            f"  events stored: {self.events:,}",
            f"  commands with an unknown outcome: "
            f"{', '.join(f'{k} {v}' for k, v in sorted(self.unknown.items())) or 'none'}",
            f"  faults injected: {kinds}",
            f"  violations found: {len(self.violations)}",
        ]
        lines += [f"    - {v}" for v in self.violations[:20]]
        if self.artifacts:
            lines.append(f"  fault schedule and operation log: {self.artifacts}")
        return "\n".join(lines)


def run(config: Config, *, artifacts_root: Path | None = None, progress: bool = False) -> Report:
    """Run the clients under the fault schedule, then check everything; never raises on a find."""
    work = Path(tempfile.mkdtemp(prefix="torture-"))
    try:
        return _run(config, work, artifacts_root, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(config: Config, work: Path, artifacts_root: Path | None, progress: bool) -> Report:
    started = time.monotonic()
    report = Report(config)
    schedule = config.faults()
    records: list[dict[str, Any]] = []
    services = Services(work)
    try:
        services.start()
        _open_accounts(services.eventstore_uri)
        counter, stop, clients = _start_clients(config, services.client_uri, work)
        deadline = time.monotonic() + max(240.0, config.ops / 15)
        try:
            report.fault_log = inject_faults(
                services, schedule, counter, clients, deadline, progress
            )
        finally:
            _stop_clients(stop, clients)
        report.operations = int(counter.value)
        for path in sorted(work.glob("ops-c*.jsonl")):
            records += _read_jsonl(path)
        report.faults = Counter(f.kind for f in report.fault_log)
        planned = Counter(f.kind for f in schedule)
        if report.faults != planned:
            report.violations.append(
                f"harness: faults injected {dict(report.faults)}, scheduled {dict(planned)}"
            )
        report.violations += services.problems
        report.violations += _client_exits(clients)
        report.violations += check_everything(services, records, report)
    except Exception as exc:
        report.violations.append(f"harness: the run failed: {type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            services.stop()
    report.results = Counter(r["result"] for r in records)
    report.commands = Counter(_command_kind(r) for r in records)
    report.seconds = time.monotonic() - started
    if report.violations:
        report.artifacts = _write_artifacts(config, schedule, report, records, work, artifacts_root)
    return report


def _command_kind(record: Mapping[str, Any]) -> str:
    for flag in ("duplicate", "conflicting", "retry", "hostile"):
        if record.get(flag):
            return f"{flag} {record['cmd']['kind']}"
    return str(record["cmd"]["kind"])


def _open_accounts(uri: str) -> None:
    store = AccountEventStore.connect(uri)
    try:
        ledger = Ledger(CommandHandler(store), clock=_now, actor="torture:setup")
        for spec in HOT_ACCOUNTS:
            ledger.open_account(spec.account_id, spec.owner, spec.currency, spec.limit)
    finally:
        store.close()


def _start_clients(config: Config, uri: str, work: Path) -> tuple[Any, Any, list[Any]]:
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    stop = context.Event()
    clients = []
    for index in range(config.clients):
        plan = ClientPlan(index, config.seed, uri, config.ops, str(work / f"ops-c{index}.jsonl"))
        process = context.Process(
            target=client_main, args=(plan, counter, stop), name=f"torture-client-{index}"
        )
        process.start()
        clients.append(process)
    return counter, stop, clients


def _stop_clients(stop: Any, clients: Sequence[Any]) -> None:
    stop.set()
    for process in clients:
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()


def _client_exits(clients: Sequence[Any]) -> list[str]:
    return [f"client: {p.name} exited with code {p.exitcode}" for p in clients if p.exitcode != 0]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


def check_everything(
    services: Services, records: Sequence[Mapping[str, Any]], report: Report
) -> list[str]:
    """Bring both services back, let the runner catch up, then run every check."""
    if services.esdb.proc is None or services.esdb.proc.poll() is not None:
        services.restart(ESDB)
    if services.runner is None or services.runner.poll() is not None:
        services.start_runner()
    streams = read_streams(services.eventstore_uri)
    report.events = sum(len(s) for s in streams.values())
    report.unknown = unknown_outcomes(streams, records)
    found = check_streams(streams) + check_commands(streams, records)
    head = max((e.position for s in streams.values() for e in s), default=0)
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        if not _caught_up(conn, head):
            return [
                *found,
                f"catch-up: the projections did not reach position {head} within "
                f"{CATCH_UP_TIMEOUT:g}s; runner log: {_tail(services.work / 'runner.log')}",
            ]
        found += check_read_models(streams, read_models(conn))
        store = AccountEventStore.connect(services.eventstore_uri)
        try:
            found += [f"verify(): {v}" for v in verify(conn, write_model_fold(store))]
        finally:
            store.close()
    return found + _cli_verify(services)


def _caught_up(conn: psycopg.Connection[Any], head: int) -> bool:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.errors.UndefinedTable):
            row = conn.execute(
                "SELECT count(*) FROM projection_checkpoints WHERE projection = ANY(%s)"
                " AND position >= %s",
                (list(PROJECTION_NAMES), head),
            ).fetchone()
            if row is not None and row[0] == len(PROJECTION_NAMES):
                return True
        time.sleep(0.1)
    return False


def ledger_command() -> list[str]:
    """The installed `ledger` entry point next to this interpreter, else `python -m cli.main`."""
    installed = Path(sys.executable).with_name("ledger")
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "cli.main"]


def _cli_verify(services: Services) -> list[str]:
    result = subprocess.run(
        [*ledger_command(), "verify", "--json"],
        env=services.cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        return [
            f"ledger verify: exit {result.returncode}: {result.stdout.strip()[:600]} "
            f"{result.stderr.strip()[:600]}"
        ]
    return []


def _write_artifacts(
    config: Config,
    schedule: Sequence[Fault],
    report: Report,
    records: Sequence[Mapping[str, Any]],
    work: Path,
    root: Path | None,
) -> Path:
    base = root or Path(os.environ.get("TORTURE_ARTIFACTS") or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix=f"torture-seed{config.seed}-", dir=base))
    run_doc = {
        "ops": config.ops,
        "clients": config.clients,
        "seed": config.seed,
        "kills_per_kind": config.kills_per_kind,
        "schedule": [asdict(f) for f in schedule],
        "replay": f"python -m bench.torture --replay {target / 'run.json'}",
    }
    (target / "run.json").write_text(json.dumps(run_doc, indent=2) + "\n")
    (target / "faults.json").write_text(
        json.dumps([asdict(f) for f in report.fault_log], indent=2) + "\n"
    )
    ordered = sorted(records, key=lambda r: r["op"])
    (target / "operations.json").write_text(
        json.dumps(ordered, ensure_ascii=False, indent=1) + "\n"
    )
    (target / "violations.json").write_text(json.dumps(report.violations, indent=2) + "\n")
    for log in ("runner.log", "esdblite.log", "pg/postgres.log"):
        with contextlib.suppress(OSError):
            shutil.copy(work / log, target / Path(log).name)
    return target


def load_replay(path: Path) -> Config:
    """The configuration and fault schedule of an earlier run (its run.json)."""
    doc = json.loads(path.read_text())
    return Config(
        ops=doc["ops"],
        clients=doc["clients"],
        seed=doc["seed"],
        kills_per_kind=doc["kills_per_kind"],
        schedule=tuple(Fault(**f) for f in doc["schedule"]),
    )


@contextlib.contextmanager
def _quiet_sigint() -> Iterator[None]:
    """Let Ctrl-C stop the run (the finally blocks clean up the services)."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.torture", description=__doc__)
    parser.add_argument("--long", action="store_true", help=f"{LONG_OPS:,} operations, more kills")
    parser.add_argument("--ops", type=int, help="operations to run (default: short/long mode)")
    parser.add_argument("--clients", type=int, default=8, help="client processes (default 8)")
    parser.add_argument("--seed", type=int, default=20240501, help="seed of ops and faults")
    parser.add_argument("--kills", type=int, help="kills of each service (default: by mode)")
    parser.add_argument("--replay", type=Path, help="run.json of an earlier failed run")
    parser.add_argument("--artifacts", type=Path, help="where to write a failed run's files")
    args = parser.parse_args(argv)
    if args.replay:
        config = load_replay(args.replay)
    elif args.long:
        config = Config.long(args.seed, args.ops or LONG_OPS, args.clients)
    else:
        config = Config(ops=args.ops or SHORT_OPS, clients=args.clients, seed=args.seed)
    if args.kills and not args.replay:
        config = Config(config.ops, config.clients, config.seed, args.kills)
    print(
        f"torture: {config.ops:,} operations, {config.clients} clients, seed {config.seed}, "
        f"{len(config.faults())} scheduled kills",
        file=sys.stderr,
        flush=True,
    )
    with _quiet_sigint():
        report = run(config, artifacts_root=args.artifacts, progress=True)
    print(report.summary())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
