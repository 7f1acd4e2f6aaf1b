"""The bank clients, each in its own process, and the log of every operation they send."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import random
import time
import zlib
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from bench.torture.schedule import HOT_ACCOUNTS, AccountSpec, Config
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
from ledger.service import Ledger, TransferOutcome

RETRY_LIMIT = 40  # attempts per command whose outcome stays unknown
TRANSFER_SHARE = 0.12  # of new commands: transfers between the hot accounts


@dataclass(frozen=True)
class ClientPlan:
    """What one client process needs to know."""

    index: int
    seed: int
    uri: str
    total_ops: int
    log_path: str
    accounts: tuple[AccountSpec, ...] = HOT_ACCOUNTS


def client_main(plan: ClientPlan, counter: Synchronized[int], stop: Event) -> None:
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

    def __init__(self, plan: ClientPlan, counter: Synchronized[int], stop: Event) -> None:
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
        if self.rng.random() < TRANSFER_SHARE:
            return self._transfer(spec)
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

    def _transfer(self, spec: AccountSpec) -> tuple[dict[str, Any], dict[str, Any]]:
        """A transfer to another account of the currency; now and then to one of another
        currency, which must be refused."""
        paired = [
            a
            for a in self.plan.accounts
            if any(b is not a and b.currency == a.currency for b in self.plan.accounts)
        ]
        if paired and self.rng.random() < 0.9:
            spec = self.rng.choice(paired)
        others = [a for a in self.plan.accounts if a is not spec]
        same = [a for a in others if a.currency == spec.currency]
        hostile = not same or self.rng.random() < 0.05
        target = self.rng.choice(others if hostile else same)
        amount, minor = self._amount(spec, 5000)
        command = {
            "kind": "transfer",
            "account": spec.account_id,
            "to": target.account_id,
            "amount": amount,
            "minor": minor,
            "tx": "xfer-" + self._tx(),
            "description": self.rng.choice(["", "rent", "café ☕"]),
        }
        return command, ({"hostile": True} if target.currency != spec.currency else {})

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

    def send(self, command: Mapping[str, Any]) -> Outcome | TransferOutcome:
        kind, account = command["kind"], command["account"]
        if kind == "transfer":
            return self.ledger.transfer(
                account, command["to"], command["amount"], command["tx"], command["description"]
            )
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
            if isinstance(outcome, TransferOutcome):
                record.update(
                    result="replayed" if outcome.replayed else "ok",
                    state=outcome.state.status.value,
                    position=outcome.commit_position,
                )
                if flags.get("hostile"):
                    record["violation"] = "a transfer between two currencies was accepted"
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


def open_accounts(uri: str) -> None:
    """Open the hot accounts before any client starts."""
    store = AccountEventStore.connect(uri)
    try:
        ledger = Ledger(CommandHandler(store), clock=_now, actor="torture:setup")
        for spec in HOT_ACCOUNTS:
            ledger.open_account(spec.account_id, spec.owner, spec.currency, spec.limit)
    finally:
        store.close()


def start_clients(
    config: Config, uri: str, work: Path
) -> tuple[Synchronized[int], Event, list[BaseProcess]]:
    """Spawn the client processes: the shared operation counter, the stop flag, the processes."""
    context = multiprocessing.get_context("spawn")
    counter: Synchronized[int] = context.Value("q", 0)
    stop = context.Event()
    clients: list[BaseProcess] = []
    for index in range(config.clients):
        plan = ClientPlan(index, config.seed, uri, config.ops, str(work / f"ops-c{index}.jsonl"))
        process = context.Process(
            target=client_main, args=(plan, counter, stop), name=f"torture-client-{index}"
        )
        process.start()
        clients.append(process)
    return counter, stop, clients


def stop_clients(stop: Event, clients: Sequence[BaseProcess]) -> None:
    """Tell the clients to stop, then wait for them (killing one that does not stop)."""
    stop.set()
    for process in clients:
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()


def client_exits(clients: Sequence[BaseProcess]) -> list[str]:
    """A violation for each client process that did not exit cleanly."""
    return [f"client: {p.name} exited with code {p.exitcode}" for p in clients if p.exitcode != 0]
