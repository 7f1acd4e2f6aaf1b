"""The daily_totals reporting view: per currency and UTC day, deposited/withdrawn/reversed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from psycopg import Cursor, sql

from ledger.accounts.events import MoneyDeposited, MoneyWithdrawn, Posting, PostingReversed
from projections.feed import Applied


class DailyTotalsProjection:
    """Adds each posting of a batch to its (currency, day) totals: one upsert per key."""

    name = "daily_totals"
    tables = ("daily_totals",)

    def apply(self, cur: Cursor[Any], events: Sequence[Applied], suffix: str) -> None:
        totals: dict[tuple[str, dt.date], list[int]] = {}
        for _stored, event in events:
            if not isinstance(event, Posting):
                continue
            day = event.occurred_at.astimezone(dt.UTC).date()
            t = totals.setdefault((event.currency, day), [0, 0, 0, 0])
            if isinstance(event, MoneyDeposited):
                t[0] += event.amount
            elif isinstance(event, MoneyWithdrawn):
                t[1] += -event.amount
            elif isinstance(event, PostingReversed):
                t[2] += event.amount
            t[3] += 1
        if not totals:
            return
        table = sql.Identifier("daily_totals" + suffix)
        query = sql.SQL(
            "INSERT INTO {t} (currency, day, deposited, withdrawn, reversed, count) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (currency, day) DO UPDATE SET "
            "deposited = {t}.deposited + EXCLUDED.deposited, "
            "withdrawn = {t}.withdrawn + EXCLUDED.withdrawn, "
            "reversed = {t}.reversed + EXCLUDED.reversed, count = {t}.count + EXCLUDED.count"
        ).format(t=table)
        cur.executemany(query, [(c, d, *v) for (c, d), v in totals.items()])


PROJECTION = DailyTotalsProjection()
