"""What a run does: its figures, its hot accounts and its fault schedule drawn from the seed."""

from __future__ import annotations

import random
from dataclasses import dataclass

ESDB = "esdblite"
RUNNER = "runner"
CUT = "connections"
FAULT_KINDS = (ESDB, RUNNER, CUT)
FAULT_NAMES = {ESDB: "esdblite kill -9", RUNNER: "runner kill -9", CUT: "client connections cut"}
SHORT_OPS = 4000
LONG_OPS = 24_000


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
