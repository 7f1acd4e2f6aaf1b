"""Factories of account event stores and Ledgers on an event store, each on its own connection."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from tests.support.clock import Clock


@pytest.fixture
def make_store(esdb_uri: str) -> Iterator[Callable[..., AccountEventStore]]:
    """A factory of stores (one connection each: another 'process'), closed after the test.

    `make_store()` connects to the shared event store, `make_store(uri)` to another one.
    """
    made: list[AccountEventStore] = []

    def make(uri: str | None = None) -> AccountEventStore:
        store = AccountEventStore.connect(uri or esdb_uri)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            store.close()


@pytest.fixture
def make_ledger(
    make_store: Callable[..., AccountEventStore], clock: Clock
) -> Callable[..., Ledger]:
    """A factory of Ledgers, each on its own connection; keyword options go to CommandHandler.

    `make_ledger()` writes to the shared event store, `make_ledger(uri)` to another one; both
    read the test's `clock` unless given another.
    """

    def make(
        uri: str | None = None, *, clock: Callable[[], datetime] = clock, **options: Any
    ) -> Ledger:
        store = make_store() if uri is None else make_store(uri)
        return Ledger(CommandHandler(store, **options), clock=clock, actor="test")

    return make
