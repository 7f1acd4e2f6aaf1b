"""The daily_totals reporting view: per currency and UTC day, deposited/withdrawn/reversed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor, sql

from ledger.accounts.daily import DayKey, DayTotals, add_posting, day_key
from ledger.accounts.events import Posting
from projections.feed import Applied


class DailyTotalsProjection:
    """Adds each posting of a batch to its (currency, day) totals: one upsert per key."""

    name = "daily_totals"
    tables = ("daily_totals",)

    def apply(self, cur: Cursor[Any], events: Sequence[Applied], suffix: str) -> None:
        totals: dict[DayKey, DayTotals] = {}
        for _stored, event in events:
            if isinstance(event, Posting):
                key = day_key(event)
                totals[key] = add_posting(totals.get(key, DayTotals()), event)
        if not totals:
            return
        table = sql.Identifier("daily_totals" + suffix)
        query = sql.SQL(
            "INSERT INTO {t} (currency, day, deposited, withdrawn, reversed, count,"
            " transferred_out, transferred_in) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (currency, day) DO UPDATE SET "
            "deposited = {t}.deposited + EXCLUDED.deposited, "
            "withdrawn = {t}.withdrawn + EXCLUDED.withdrawn, "
            "reversed = {t}.reversed + EXCLUDED.reversed, count = {t}.count + EXCLUDED.count, "
            "transferred_out = {t}.transferred_out + EXCLUDED.transferred_out, "
            "transferred_in = {t}.transferred_in + EXCLUDED.transferred_in"
        ).format(t=table)
        cur.executemany(query, [(c, d, *v.columns()) for (c, d), v in totals.items()])


PROJECTION = DailyTotalsProjection()
