"""The read-model corruptions verify must catch: each table, each way (wrong, missing, extra).

The same history is written by the pure decider (a Feed) or by the real Ledger on esdblite, so
that projections.verify and `ledger verify` face the same cases with the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tests.support.clock import T0

DAY = f"EUR {T0.date().isoformat()}"


class Writer(Protocol):
    """What writes the history: tests.support.feed.Feed, or an adapter of ledger.service.Ledger."""

    def open(self, account_id: str, currency: str = ..., limit: str = ...) -> object: ...
    def deposit(self, account_id: str, amount: str, tx: str) -> object: ...
    def withdraw(self, account_id: str, amount: str, tx: str) -> object: ...
    def reverse(self, account_id: str, reverses: str, tx: str) -> object: ...


def write_history(writer: Writer, victim: str, other: str) -> None:
    """The victim: 5.00 in, 7.00 out (overdraft), 1.50 in, the 7.00 reversed: 6.50 EUR at
    revision 4. The other account: 3.00 in. Every posting on T0's day."""
    writer.open(victim, limit="10.00")
    writer.deposit(victim, "5.00", "tx-1")
    writer.withdraw(victim, "7.00", "tx-2")
    writer.deposit(victim, "1.50", "tx-3")
    writer.reverse(victim, "tx-2", "tx-4")
    writer.open(other)
    writer.deposit(other, "3.00", "tx-1")


@dataclass(frozen=True)
class Corruption:
    """SQL that breaks one table one way, and the one violation it must cause."""

    name: str
    sql: str  # %(victim)s and %(ghost)s: the victim account and an account that never existed
    table: str
    check: str
    subject: str  # "victim", "ghost", or a daily total's "<currency> <day>"
    says: str  # part of the violation's detail

    def subject_of(self, victim: str, ghost: str) -> str:
        """The account id or day the violation names."""
        return {"victim": victim, "ghost": ghost}.get(self.subject, self.subject)


CASES = [
    Corruption(
        "balance-wrong",
        "UPDATE account_balances SET balance = balance - 600 WHERE account_id = %(victim)s",
        "account_balances",
        "wrong value",
        "victim",
        "balance 0.50 EUR, the write model has 6.50 EUR: off by -6.00 EUR",
    ),
    Corruption(
        "balance-missing",
        "DELETE FROM account_balances WHERE account_id = %(victim)s",
        "account_balances",
        "missing row",
        "victim",
        "no row, but the store's stream folds to 6.50 EUR (revision 4)",
    ),
    Corruption(
        "balance-extra",
        "INSERT INTO account_balances (account_id, owner, currency, balance, overdraft_limit,"
        " status, last_revision, last_position, updated_at)"
        " VALUES (%(ghost)s, 'Ghost', 'EUR', 5200, 0, 'open', 1, 1, now())",
        "account_balances",
        "extra row",
        "ghost",
        "balance 52.00 EUR, but the store has no event of the account",
    ),
    Corruption(
        "statement-wrong-amount",
        "UPDATE account_statements SET amount = amount - 100"
        " WHERE account_id = %(victim)s AND revision = 2",
        "account_statements",
        "wrong value",
        "victim",
        "revision 2: amount -8.00 EUR, the write model has -7.00 EUR: off by -1.00 EUR",
    ),
    Corruption(
        "statement-wrong-running-balance",
        "UPDATE account_statements SET balance_after = balance_after + 1"
        " WHERE account_id = %(victim)s AND revision = 3",
        "account_statements",
        "wrong value",
        "victim",
        "revision 3: balance after -0.49 EUR, the write model has -0.50 EUR: off by 0.01 EUR",
    ),
    Corruption(
        "statement-missing",
        "DELETE FROM account_statements WHERE account_id = %(victim)s AND revision = 2",
        "account_statements",
        "missing row",
        "victim",
        "revision 2 (-7.00 EUR): postings in the store",
    ),
    Corruption(
        "statement-extra",
        "INSERT INTO account_statements SELECT account_id, 9, position + 1, gen_random_uuid(),"
        " 'tx-9', kind, amount, balance_after + amount, description, occurred_at"
        " FROM account_statements WHERE account_id = %(victim)s AND revision = 1",
        "account_statements",
        "extra row",
        "victim",
        "revision 9 (5.00 EUR): rows with no posting in the store",
    ),
    Corruption(
        "statement-reversal-unlinked",
        "UPDATE account_statements SET reversed_by = NULL"
        " WHERE account_id = %(victim)s AND revision = 2",
        "account_statements",
        "wrong value",
        "victim",
        "revision 2: reversed by None, the write model has 'tx-4'",
    ),
    Corruption(
        "statement-reversed-by-a-stranger",
        "UPDATE account_statements SET reversed_by = 'tx-4'"
        " WHERE account_id = %(victim)s AND revision = 1",
        "account_statements",
        "wrong value",
        "victim",
        "revision 1: reversed by 'tx-4', the write model has None",
    ),
    Corruption(
        "statement-reversal-of-the-wrong-posting",
        "UPDATE account_statements SET reverses = 'tx-1'"
        " WHERE account_id = %(victim)s AND revision = 4",
        "account_statements",
        "wrong value",
        "victim",
        "revision 4: reverses 'tx-1', the write model has 'tx-2'",
    ),
    Corruption(
        "daily-wrong",
        "UPDATE daily_totals SET withdrawn = withdrawn + 100",
        "daily_totals",
        "wrong value",
        DAY,
        "withdrawn 8.00 EUR, the write model has 7.00 EUR: off by 1.00 EUR",
    ),
    Corruption(
        "daily-missing",
        "DELETE FROM daily_totals",
        "daily_totals",
        "missing row",
        DAY,
        "no row, but the store has 5 postings that day (deposited 9.50 EUR)",
    ),
    Corruption(
        "daily-extra",
        "INSERT INTO daily_totals (currency, day, deposited, withdrawn, reversed, count)"
        " VALUES ('USD', '2024-05-03', 5200, 0, 0, 1)",
        "daily_totals",
        "extra row",
        "USD 2024-05-03",
        "deposited 52.00 USD in 1 postings, but the store has no posting that day",
    ),
]
