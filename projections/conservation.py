"""Money in flight, from the read models: per currency, balances, in transit and external money,
and the transfers stuck in transit (verify turns them into violations)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class InFlight:
    """One currency's money: on accounts, in transit, and brought in from outside.

    Conserved when balances + in_transit == external; transfers' legs in daily totals
    (out - in) must be the money in transit too."""

    currency: str
    balances: int = 0
    in_transit: int = 0
    external: int = 0
    legs_in_transit: int = 0


# Money is in transit from the debit's leg until the credit's or the refund's, whatever the
# transfer's stream says (a debit that raced a rejection is in transit until refunded).
IN_TRANSIT = sql.SQL("debited_at IS NOT NULL AND credited_at IS NULL AND refunded_at IS NULL")


def money_in_flight(conn: psycopg.Connection[Any], suffix: str = "") -> dict[str, InFlight]:
    """Each currency's InFlight from account_balances, transfers and daily_totals."""
    t = {
        name: sql.Identifier(name + suffix)
        for name in ("account_balances", "transfers", "daily_totals")
    }
    found: dict[str, dict[str, int]] = {}
    queries = {
        "balances": sql.SQL("SELECT currency, sum(balance) FROM {} GROUP BY 1").format(
            t["account_balances"]
        ),
        "in_transit": sql.SQL("SELECT currency, sum(amount) FROM {} WHERE {} GROUP BY 1").format(
            t["transfers"], IN_TRANSIT
        ),
        "external": sql.SQL(
            "SELECT currency, sum(deposited - withdrawn + reversed) FROM {} GROUP BY 1"
        ).format(t["daily_totals"]),
        "legs_in_transit": sql.SQL(
            "SELECT currency, sum(transferred_out - transferred_in) FROM {} GROUP BY 1"
        ).format(t["daily_totals"]),
    }
    for field, query in queries.items():
        for currency, total in conn.execute(query):
            if currency is not None:
                found.setdefault(currency, {})[field] = int(total or 0)
    return {c: InFlight(c, **values) for c, values in sorted(found.items())}


def stuck_transfers(
    conn: psycopg.Connection[Any], before: dt.datetime, suffix: str = ""
) -> list[tuple[str, str, str, int, str, dt.datetime]]:
    """(transfer id, from, to, amount, currency, last change) of each transfer whose money has
    been in transit since before `before` (a transfer only requested is the write model's to
    report: nothing of it is in the balances)."""
    return conn.execute(
        sql.SQL(
            "SELECT transfer_id, from_account, to_account, amount, currency, updated_at FROM {}"
            " WHERE {} AND updated_at < %s"
            " ORDER BY updated_at"
        ).format(sql.Identifier("transfers" + suffix), IN_TRANSIT),
        (before,),
    ).fetchall()
