"""Checks that every read model equals a fresh fold of the stored events and adds up."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from bench.torture.reading import ReadModels, StreamEvent, TransferRecord
from ledger.accounts.events import (
    AccountClosed,
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
    OverdraftLimitChanged,
    Posting,
    PostingReversed,
)
from projections.feed import transfer_key
from projections.names import PROJECTION_NAMES


def check_read_models(
    streams: Mapping[str, Sequence[StreamEvent]],
    models: ReadModels,
    transfers: Sequence[TransferRecord] = (),
) -> list[str]:
    """Every projection equals a fresh fold of the events; statements contiguous; totals add up.

    `transfers` are the transfer streams' events: the transfers projection tracks each stream."""
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
                        event.transfer_id,
                        event.counterparty,
                    )
                )
                day = event.occurred_at.astimezone(dt.UTC).date()
                totals = daily.setdefault((event.currency, day), [0, 0, 0, 0, 0, 0])
                if event.transfer_id is not None:  # a transfer's leg: out (4) or in (5)
                    column = 4 if event.amount < 0 else 5
                else:
                    column = {MoneyDeposited: 0, MoneyWithdrawn: 1, PostingReversed: 2}[type(event)]
                totals[column] += -event.amount if column in (1, 4) else event.amount
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
    events_of_transfer = Counter(t.transfer_id for t in transfers)
    tracked += [
        ("transfers", transfer_key(transfer_id), count - 1, False)
        for transfer_id, count in events_of_transfer.items()
    ]
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
