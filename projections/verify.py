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
    accounts: list[str] | None = None,
) -> list[Violation]:
    """Check every invariant; an empty list means the read models are sound.

    `accounts` limits the (costly) comparison with the write model to those accounts.
    """
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
        found.extend(_against_write_model(conn, fold, t, upto, accounts))
    return found


def _against_write_model(
    conn: psycopg.Connection[Any],
    fold: WriteModelFold,
    t: dict[str, sql.Identifier],
    upto: int | None,
    only: list[str] | None,
) -> list[Violation]:
    found: list[Violation] = []
    rows = conn.execute(
        sql.SQL(
            "SELECT account_id, balance FROM {b}"
            " WHERE %(all)s OR account_id = ANY(%(only)s) ORDER BY account_id"
        ).format(**t),
        {"all": only is None, "only": only or []},
    ).fetchall()
    for account_id, balance in rows:
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


def verify_rebuilt(
    conn: psycopg.Connection[Any],
    fold: WriteModelFold,
    names: list[str],
    suffix: str,
    upto: int,
    accounts: list[str] | None = None,
) -> list[Violation]:
    """Verify a rebuild's tables (`suffix`) at a position: each projection on its own terms."""
    if "balances" in names and "statements" in names:
        return verify(conn, fold, suffix=suffix, upto=upto, accounts=accounts)
    found: list[Violation] = []
    s = sql.Identifier("account_statements" + suffix)
    b = sql.Identifier("account_balances" + suffix)
    live_b = sql.Identifier("account_balances")
    every_account = accounts is None
    if accounts is None:
        source = b if "balances" in names else live_b
        accounts = [r[0] for r in conn.execute(sql.SQL("SELECT account_id FROM {}").format(source))]
    folds = {a: fold(a, upto) for a in accounts}
    if "balances" in names:
        for account_id, balance in conn.execute(
            sql.SQL("SELECT account_id, balance FROM {} WHERE account_id = ANY(%s)").format(b),
            (accounts,),
        ):
            folded = folds.get(account_id)
            if folded is None or folded[0] != balance:
                found.append(
                    Violation("write-model", account_id, f"balance {balance}, fold {folded}")
                )
    if "statements" in names:
        for account_id in accounts:
            rows = conn.execute(
                sql.SQL(
                    "SELECT revision, amount, balance_after FROM {} WHERE account_id = %s"
                    " ORDER BY revision"
                ).format(s),
                (account_id,),
            ).fetchall()
            folded = folds.get(account_id)
            running = 0
            for revision, amount, after in rows:
                if after != running + amount:
                    found.append(Violation("statement-chain", account_id, f"revision {revision}"))
                running = after
            if folded is not None and ([r[0] for r in rows], running) != (folded[1], folded[0]):
                found.append(
                    Violation("statement-revisions", account_id, "differs from the stream")
                )
    # Daily totals are kept per currency and day, not per account: they can only be compared
    # with the balances when every account is checked, not a few that moved.
    if "daily_totals" in names and every_account:
        expected: dict[str, int] = {}
        for account_id, currency in conn.execute(
            "SELECT account_id, currency FROM account_balances WHERE account_id = ANY(%s)",
            (accounts,),
        ):
            folded = folds.get(account_id)
            expected[currency] = expected.get(currency, 0) + (folded[0] if folded else 0)
        totals = conn.execute(
            sql.SQL(
                "SELECT currency, sum(deposited - withdrawn + reversed) FROM {} GROUP BY currency"
            ).format(sql.Identifier("daily_totals" + suffix))
        ).fetchall()
        got = {c: int(v) for c, v in totals}
        for currency in set(got) | set(expected):
            if got.get(currency, 0) != expected.get(currency, 0):
                found.append(
                    Violation(
                        "daily-totals",
                        None,
                        f"{currency}: days sum to {got.get(currency, 0)}, "
                        f"balances fold to {expected.get(currency, 0)}",
                    )
                )
    return found
