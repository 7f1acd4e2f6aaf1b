"""Checks of a run's transfers: money in flight at every $all position, and what clients were
told against each transfer's stream and legs. Pure, so that tests plant violations."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from bench.torture.reading import StreamEvent, TransferRecord
from ledger.accounts.events import Posting, PostingKind
from ledger.transfers.decider import (
    TransferState,
    TransferStatus,
    evolve_transfer,
    initial_transfer_state,
)

OUT, IN, REFUND = PostingKind.TRANSFER_OUT, PostingKind.TRANSFER_IN, PostingKind.TRANSFER_REFUND
S = TransferStatus
# The legs a transfer may have posted while its stream says it is in a state: a step's posting
# comes before its record, so a state allows the next leg too.
ALLOWED: dict[TransferStatus, tuple[frozenset[PostingKind], ...]] = {
    S.NEW: (frozenset(),),
    S.REQUESTED: (frozenset(), frozenset({OUT})),
    S.DEBITED: (frozenset({OUT}), frozenset({OUT, IN})),
    S.CREDITED: (frozenset({OUT, IN}),),
    S.CREDIT_REFUSED: (frozenset({OUT}), frozenset({OUT, REFUND})),
    S.COMPLETED: (frozenset({OUT, IN}),),
    S.FAILED: (frozenset({OUT, REFUND}),),
    S.REJECTED: (frozenset(), frozenset({OUT}), frozenset({OUT, REFUND})),
}
SHOWN = 5


def check_money_in_flight(
    streams: Mapping[str, Sequence[StreamEvent]], transfers: Sequence[TransferRecord]
) -> list[str]:
    """Walk every account and transfer event in $all order; after each one, per currency,
    balances + money in transit == deposits - withdrawals (+ reversals), and every transfer's
    legs are the ones its recorded state allows, each once, of the requested amount."""
    merged: list[tuple[int, StreamEvent | TransferRecord]] = [
        (e.position, e) for s in streams.values() for e in s
    ]
    merged += [(t.position, t) for t in transfers]
    merged.sort(key=lambda item: item[0])
    balances: dict[str, int] = {}
    currency_of: dict[str, str] = {}
    external: Counter[str] = Counter()
    transit: Counter[str] = Counter()
    states: dict[str, TransferState] = defaultdict(lambda: initial_transfer_state)
    legs: dict[str, Counter[PostingKind]] = defaultdict(Counter)
    amounts: dict[str, set[int]] = defaultdict(set)
    found: list[str] = []
    for position, item in merged:
        if isinstance(item, TransferRecord):
            tid = item.transfer_id
            states[tid] = evolve_transfer(states[tid], item.event)
            if states[tid].amount:
                amounts[tid].add(states[tid].amount)
            found += _legs_allowed(position, tid, states[tid], legs[tid], amounts[tid])
            continue
        event = item.event
        if not isinstance(event, Posting):
            continue
        c = event.currency
        currency_of[item.account_id] = c
        balances[item.account_id] = event.balance_after
        if event.transfer_id is None:
            external[c] += event.amount
        else:
            tid = event.transfer_id
            legs[tid][PostingKind(getattr(event, "kind", ""))] += 1
            amounts[tid].add(abs(event.amount))
            transit[c] -= event.amount
            found += _legs_allowed(position, tid, states[tid], legs[tid], amounts[tid])
        on_accounts = sum(b for a, b in balances.items() if currency_of[a] == c)
        if on_accounts + transit[c] != external[c]:
            found.append(
                f"in flight: at position {position} {c} balances {on_accounts} + in transit "
                f"{transit[c]} != external {external[c]}"
            )
    return _capped(found)


def _legs_allowed(
    position: int,
    tid: str,
    state: TransferState,
    posted: Counter[PostingKind],
    amounts: set[int],
) -> list[str]:
    found = []
    if any(n > 1 for n in posted.values()):
        found.append(f"transfer: {tid} has a leg posted twice at position {position}: {posted}")
    if frozenset(posted) not in ALLOWED[state.status]:
        found.append(
            f"transfer: {tid} is {state.status.value} at position {position} with the legs "
            f"{sorted(posted)}"
        )
    if len(amounts) > 1:
        found.append(f"transfer: {tid} moves the amounts {sorted(amounts)}")
    return found


def check_transfers(
    transfers: Sequence[TransferRecord], records: Sequence[Mapping[str, Any]]
) -> list[str]:
    """At rest: every transfer final; what clients were told is what its stream says; every
    transfer was sent by a client."""
    states: dict[str, TransferState] = defaultdict(lambda: initial_transfer_state)
    for t in transfers:
        states[t.transfer_id] = evolve_transfer(states[t.transfer_id], t.event)
    sent: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        if r["cmd"]["kind"] == "transfer":
            sent[r["cmd"]["tx"]].append(r)
    found = [
        f"at rest: transfer {tid} is still {s.status.value}"
        for tid, s in sorted(states.items())
        if not s.final
    ]
    found += [f"phantom: transfer {tid} was never sent" for tid in sorted(set(states) - set(sent))]
    for tid, tries in sorted(sent.items()):
        command, state = tries[0]["cmd"], states.get(tid)
        told = {r.get("state") for r in tries if r["result"] in ("ok", "replayed")}
        if state is None:
            if told:
                found.append(f"acked: transfer {tid} was answered {told} but has no stream")
            continue
        if (state.from_account, state.to_account, state.amount) != (
            command["account"],
            command["to"],
            command["minor"],
        ):
            found.append(f"content: transfer {tid} is stored as {state}, sent as {command}")
        if told - {state.status.value, "debited", "credit_refused"}:
            found.append(f"acked: transfer {tid} was answered {told}, is {state.status.value}")
        refused = all(r["result"] == "refused" for r in tries)
        if refused and state.status is TransferStatus.COMPLETED:
            found.append(f"refused: transfer {tid} was refused on every attempt but completed")
    return _capped(found)


def _capped(found: list[str]) -> list[str]:
    if len(found) <= SHOWN:
        return found
    return [*found[:SHOWN], f"(and {len(found) - SHOWN} more of the same checks)"]
