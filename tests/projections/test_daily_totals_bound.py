"""Daily totals cannot overflow: a day's sum of postings at the largest amount exceeds int8."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from ledger.accounts.events import MoneyDeposited
from ledger.money import MAX_MINOR_UNITS
from projections.daily_totals import PROJECTION
from projections.feed import Applied, ProjectedEvent
from tests.support.clock import T0

INT8_MAX = 2**63 - 1
BATCH = 5_000  # two batches of postings of MAX_MINOR_UNITS: 10^19, beyond int8


def _batch(first: int) -> list[Applied]:
    return [
        (
            ProjectedEvent(f"acc-{first + n}", 1, first + n, uuid.uuid4(), "", b"", b"", T0),
            MoneyDeposited(
                account_id=f"acc-{first + n}",
                transaction_id="t1",
                amount=MAX_MINOR_UNITS,
                currency="EUR",
                description="",
                balance_after=MAX_MINOR_UNITS,
                occurred_at=T0,
            ),
        )
        for n in range(BATCH)
    ]


def test_a_day_of_the_largest_postings_sums_beyond_int8_without_overflow(
    db: psycopg.Connection[Any],
) -> None:
    assert 2 * BATCH * MAX_MINOR_UNITS > INT8_MAX
    for first in (0, BATCH):
        with db.transaction(), db.cursor() as cur:
            PROJECTION.apply(cur, _batch(first), "")

    row = db.execute(
        "SELECT deposited, count FROM daily_totals WHERE currency = 'EUR' AND day = %s",
        (T0.date(),),
    ).fetchone()
    assert row is not None
    assert (row[0], row[1]) == (2 * BATCH * MAX_MINOR_UNITS, 2 * BATCH)
