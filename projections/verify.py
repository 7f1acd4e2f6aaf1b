"""Invariant checks on the read models, at rest, against themselves and the write model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

# (balance, posting revisions) of an account folded from its stream up to a position, or None.
WriteModelFold = Callable[[str, int | None], tuple[int, list[int]] | None]


@dataclass(frozen=True)
class Violation:
    """One broken invariant."""

    check: str
    account_id: str | None
    detail: str


def verify(
    conn: psycopg.Connection[Any],
    fold: WriteModelFold | None,
    *,
    suffix: str = "",
    upto: int | None = None,
) -> list[Violation]:
    """Check every invariant; an empty list means the read models are sound."""
    t = {
        "b": sql.Identifier("account_balances" + suffix),
        "s": sql.Identifier("account_statements" + suffix),
    }
    found: list[Violation] = []
    for account_id, balance, last in conn.execute(
        sql.SQL(
            "SELECT b.account_id, b.balance, s.balance_after FROM {b} b LEFT JOIN LATERAL"
            " (SELECT balance_after FROM {s} WHERE account_id = b.account_id"
            "  ORDER BY revision DESC LIMIT 1) s ON true"
            " WHERE b.balance IS DISTINCT FROM COALESCE(s.balance_after, 0)"
        ).format(**t)
    ):
        found.append(
            Violation(
                "balance-vs-statement",
                account_id,
                f"balance {balance} but the last statement line says {last}",
            )
        )
    for account_id, revision, amount, after, previous in conn.execute(
        sql.SQL(
            "SELECT account_id, revision, amount, balance_after, prev FROM ("
            " SELECT account_id, revision, amount, balance_after, COALESCE(lag(balance_after)"
            "  OVER (PARTITION BY account_id ORDER BY revision), 0) AS prev FROM {s}) x"
            " WHERE balance_after <> prev + amount"
        ).format(**t)
    ):
        found.append(
            Violation(
                "statement-chain",
                account_id,
                f"revision {revision}: {previous} + {amount} != balance_after {after}",
            )
        )
    for (account_id,) in conn.execute(
        sql.SQL(
            "SELECT DISTINCT s.account_id FROM {s} s LEFT JOIN {b} b USING (account_id)"
            " WHERE b.account_id IS NULL"
        ).format(**t)
    ):
        found.append(Violation("orphan-statement", account_id, "statement lines, no account"))
    for currency, balances, postings in conn.execute(
        sql.SQL(
            "SELECT b.currency, sum(b.balance), COALESCE(sum(p.total), 0) FROM {b} b"
            " LEFT JOIN (SELECT account_id, sum(amount) AS total FROM {s} GROUP BY account_id) p"
            " USING (account_id) GROUP BY b.currency"
            " HAVING sum(b.balance) <> COALESCE(sum(p.total), 0)"
        ).format(**t)
    ):
        found.append(
            Violation(
                "currency-totals",
                None,
                f"{currency}: balances sum to {balances}, postings to {postings}",
            )
        )
    if fold is not None:
        found.extend(_against_write_model(conn, fold, t, upto))
    return found


def _against_write_model(
    conn: psycopg.Connection[Any],
    fold: WriteModelFold,
    t: dict[str, sql.Identifier],
    upto: int | None,
) -> list[Violation]:
    found: list[Violation] = []
    accounts = conn.execute(
        sql.SQL("SELECT account_id, balance FROM {b} ORDER BY account_id").format(**t)
    ).fetchall()
    for account_id, balance in accounts:
        folded = fold(account_id, upto)
        if folded is None:
            found.append(Violation("write-model", account_id, "no such stream in the store"))
            continue
        expected, posting_revisions = folded
        if balance != expected:
            found.append(
                Violation(
                    "write-model",
                    account_id,
                    f"read model says {balance}, the stream folds to {expected}",
                )
            )
        projected = [
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT revision FROM {s} WHERE account_id = %s ORDER BY revision").format(
                    **t
                ),
                (account_id,),
            )
        ]
        if projected != posting_revisions:
            missing = sorted(set(posting_revisions) - set(projected))
            extra = sorted(set(projected) - set(posting_revisions))
            found.append(
                Violation(
                    "statement-revisions",
                    account_id,
                    f"missing revisions {missing[:5]}, unexpected {extra[:5]}",
                )
            )
    return found
