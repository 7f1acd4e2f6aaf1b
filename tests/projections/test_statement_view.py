"""The statement rule on its own (no database): opening, closing and lines of a period."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from projections.statement_view import BalanceRow, PostingRow, Statement, build_statement

D1, D2, D3, D4 = (dt.date(2024, 5, d) for d in (1, 2, 3, 4))


def posting(revision: int, day: dt.date, amount: int, balance_after: int) -> PostingRow:
    at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    kind = "deposit" if amount > 0 else "withdrawal"
    return PostingRow(
        "acc", revision, revision * 100, f"tx-{revision}", kind, amount, balance_after, "", at
    )


@dataclass
class Given:
    """given(postings).when(period).then(opening, closing, revisions)."""

    postings: list[PostingRow]
    start: dt.date | None = None
    end: dt.date | None = None
    limit: int | None = None

    def when(
        self, *, start: dt.date | None = None, end: dt.date | None = None, limit: int | None = None
    ) -> Given:
        self.start, self.end, self.limit = start, end, limit
        return self

    def statement(self) -> Statement:
        balance = self.postings[-1].balance_after if self.postings else 0
        account = BalanceRow(
            "acc", "Owner", "EUR", balance, 0, "open", 0, 0, dt.datetime.now(dt.UTC)
        )
        return build_statement(
            account, self.postings, start=self.start, end=self.end, limit=self.limit
        )

    def then(self, opening: int, closing: int, revisions: list[int]) -> None:
        st = self.statement()
        assert (st.opening_balance, st.closing_balance) == (opening, closing)
        assert [p.revision for p in st.postings] == revisions
        assert opening + sum(p.amount for p in st.postings) == closing


def given(*postings: PostingRow) -> Given:
    return Given(list(postings))


# Balances after each revision: 1:1000 2:1500 (D1) 3:1200 (D2) 4:3200 5:2200 (D3) 6:2300 (D4).
HISTORY = (
    posting(1, D1, 1000, 1000),
    posting(2, D1, 500, 1500),
    posting(3, D2, -300, 1200),
    posting(4, D3, 2000, 3200),
    posting(5, D3, -1000, 2200),
    posting(6, D4, 100, 2300),
)


def test_without_a_period_the_statement_is_every_posting_from_zero_to_the_balance() -> None:
    given(*HISTORY).when().then(opening=0, closing=2300, revisions=[1, 2, 3, 4, 5, 6])


def test_a_period_opens_at_the_balance_after_the_last_posting_before_it() -> None:
    given(*HISTORY).when(start=D2, end=D3).then(opening=1500, closing=2200, revisions=[3, 4, 5])


def test_postings_after_the_period_are_ignored() -> None:
    given(*HISTORY).when(end=D2).then(opening=0, closing=1200, revisions=[1, 2, 3])


def test_an_open_ended_period_closes_at_the_account_balance() -> None:
    given(*HISTORY).when(start=D3).then(opening=1200, closing=2300, revisions=[4, 5, 6])


def test_a_limit_cutting_the_period_opens_just_before_its_first_line() -> None:
    given(*HISTORY).when(start=D1, end=D3, limit=3).then(
        opening=1500, closing=2200, revisions=[3, 4, 5]
    )


def test_a_limit_larger_than_the_period_keeps_the_period_opening() -> None:
    given(*HISTORY).when(start=D2, end=D3, limit=10).then(
        opening=1500, closing=2200, revisions=[3, 4, 5]
    )


def test_a_limit_equal_to_the_period_opens_before_its_first_line_which_is_the_same() -> None:
    given(*HISTORY).when(start=D2, end=D3, limit=3).then(
        opening=1500, closing=2200, revisions=[3, 4, 5]
    )


def test_a_quiet_period_is_empty_and_flat_at_the_balance_before_it() -> None:
    later = D4 + dt.timedelta(days=10)
    given(*HISTORY).when(start=later, end=later).then(opening=2300, closing=2300, revisions=[])


def test_a_quiet_period_between_postings_is_flat_at_the_balance_of_its_eve() -> None:
    gap = (posting(1, D1, 1000, 1000), posting(2, D4, 500, 1500))
    given(*gap).when(start=D2, end=D3).then(opening=1000, closing=1000, revisions=[])


def test_a_period_before_the_first_posting_is_empty_at_zero() -> None:
    before = D1 - dt.timedelta(days=1)
    given(*HISTORY).when(start=before, end=before).then(opening=0, closing=0, revisions=[])


def test_an_account_without_postings_has_an_empty_statement_at_zero() -> None:
    given().when(start=D1, end=D4).then(opening=0, closing=0, revisions=[])


def test_only_the_last_posting_before_the_period_is_needed_for_its_opening() -> None:
    given(HISTORY[1], *HISTORY[2:5]).when(start=D2, end=D3).then(
        opening=1500, closing=2200, revisions=[3, 4, 5]
    )


def test_a_limit_counts_the_postings_of_the_period_it_left_out() -> None:
    assert given(*HISTORY).when(start=D1, end=D3, limit=3).statement().omitted == 2
    assert given(*HISTORY).when(start=D2, end=D3, limit=3).statement().omitted == 0
    assert given(*HISTORY).when(limit=1).statement().omitted == 5
    assert given(*HISTORY).when().statement().omitted == 0


def test_postings_a_query_did_not_fetch_are_counted_as_left_out() -> None:
    account = BalanceRow("acc", "Owner", "EUR", 2300, 0, "open", 6, 0, dt.datetime.now(dt.UTC))
    st = build_statement(account, HISTORY[-2:], limit=2, earlier=4)
    assert (st.omitted, st.opening_balance, [p.revision for p in st.postings]) == (4, 3200, [5, 6])
