"""Account streams built by hand (with positions), to plant violations for the torture checks."""

from __future__ import annotations

from datetime import timedelta

from bench.torture import StreamEvent
from ledger.accounts.events import (
    AccountEvent,
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
    OverdraftLimitChanged,
    PostingReversed,
)
from tests.support.clock import T0


class StreamBuilder:
    """Builds account streams by hand (with positions), to plant violations for the checks."""

    def __init__(self) -> None:
        self.streams: dict[str, list[StreamEvent]] = {}
        self.position = 100
        self.when = T0

    def add(self, account_id: str, event: AccountEvent) -> StreamEvent:
        stream = self.streams.setdefault(account_id, [])
        self.position += 100
        self.when += timedelta(seconds=1)
        stored = StreamEvent(account_id, len(stream), self.position, event)
        stream.append(stored)
        return stored

    def balance(self, account_id: str) -> int:
        for stored in reversed(self.streams.get(account_id, [])):
            after = getattr(stored.event, "balance_after", None)
            if after is not None:
                return int(after)
        return 0

    def open(self, account_id: str, limit: int = 0, currency: str = "EUR") -> StreamEvent:
        return self.add(
            account_id,
            AccountOpened(
                account_id=account_id,
                owner="Owner",
                currency=currency,
                overdraft_limit=limit,
                occurred_at=self.when,
            ),
        )

    def deposit(
        self, account_id: str, tx: str, amount: int, *, after: int | None = None
    ) -> StreamEvent:
        return self.add(
            account_id,
            MoneyDeposited(
                account_id=account_id,
                transaction_id=tx,
                amount=amount,
                currency=self._currency(account_id),
                description="",
                balance_after=self.balance(account_id) + amount if after is None else after,
                occurred_at=self.when,
            ),
        )

    def withdraw(self, account_id: str, tx: str, amount: int) -> StreamEvent:
        return self.add(
            account_id,
            MoneyWithdrawn(
                account_id=account_id,
                transaction_id=tx,
                amount=-amount,
                currency=self._currency(account_id),
                description="",
                balance_after=self.balance(account_id) - amount,
                occurred_at=self.when,
            ),
        )

    def reverse(self, account_id: str, tx: str, target: str, amount: int) -> StreamEvent:
        return self.add(
            account_id,
            PostingReversed(
                account_id=account_id,
                transaction_id=tx,
                reverses=target,
                amount=amount,
                currency=self._currency(account_id),
                description="",
                balance_after=self.balance(account_id) + amount,
                occurred_at=self.when,
            ),
        )

    def change_limit(self, account_id: str, limit: int, previous: int) -> StreamEvent:
        return self.add(
            account_id,
            OverdraftLimitChanged(
                account_id=account_id, limit=limit, previous_limit=previous, occurred_at=self.when
            ),
        )

    def _currency(self, account_id: str) -> str:
        opened = self.streams[account_id][0].event
        assert isinstance(opened, AccountOpened)
        return opened.currency
