"""The fault injector: kills and cuts as the operation counter reaches them, and watchdogs."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized

from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import DeadlineExceeded

from bench.torture.schedule import ESDB, Fault, FaultRecord
from bench.torture.services import Services

STALL_S = 20.0  # no operation started for this long, with every service up, is a violation
PROBE_EVERY_S = 2.0  # how often the harness checks that esdblite still completes appends
PROBE_TIMEOUT_S = 10.0


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


def inject_faults(
    services: Services,
    schedule: Sequence[Fault],
    counter: Synchronized[int],
    clients: Sequence[BaseProcess],
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
        counter: Synchronized[int],
        clients: Sequence[BaseProcess],
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
