"""Checks of the stored streams and of what clients were told; pure, so tests plant violations."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from bench.torture.reading import StreamEvent
from ledger.accounts.events import (
    AccountClosed,
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
    OverdraftLimitChanged,
    Posting,
    PostingReversed,
)


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
    # A transfer's legs carry derived transaction ids: bench.torture.transfer_checks checks them.
    stored: dict[str, list[StreamEvent]] = defaultdict(list)
    for events in streams.values():
        for e in events:
            if isinstance(e.event, Posting) and e.event.transfer_id is None:
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
        if r["cmd"]["kind"] == "transfer":
            continue
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
        if r["cmd"]["kind"] == "transfer":  # finished by the process manager: see its checks
            continue
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
