"""Event stores for the handler's tests: in memory, and on the shared esdblite as contract tests.

A module imports `make_store` (with a redundant alias, which marks the import as used) to run
its tests once per store; the suite's `store`, `make_ledger` and `ledger` fixtures then use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from ledger.accounts.commands import CommandMeta
from ledger.accounts.events import AccountEvent
from ledger.eventstore import AccountEventStore
from ledger.memory_store import InMemoryEventStore
from ledger.store import EventStore, StoredEvent

# esdblite with pipelined appends (the default) and with one call per append.
STORES = ["memory", "esdblite", "esdblite-unary"]


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[], EventStore]]:
    """A factory of stores, each another 'process' of one store: the same in-memory store, or
    its own connection to the shared esdblite (closed after)."""
    if request.param == "memory":
        shared = InMemoryEventStore()
        yield lambda: shared
        return
    uri: str = request.getfixturevalue("esdb_uri")
    made: list[AccountEventStore] = []

    def connect() -> AccountEventStore:
        store = AccountEventStore.connect(uri, pipelined=request.param == "esdblite")
        made.append(store)
        return store

    try:
        yield connect
    finally:
        for store in made:
            store.close()


class DelegatingStore:
    """An EventStore that forwards every call to another; subclasses override what they watch."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def read(self, account_id: str, *, from_revision: int = 0) -> list[StoredEvent]:
        return self.store.read(account_id, from_revision=from_revision)

    def read_one(self, account_id: str, *, revision: int) -> StoredEvent | None:
        return self.store.read_one(account_id, revision=revision)

    def current_revision(self, account_id: str) -> int:
        return self.store.current_revision(account_id)

    def read_all(self, *, from_position: int = 0) -> Iterator[tuple[str, StoredEvent]]:
        return self.store.read_all(from_position=from_position)

    def append(
        self,
        account_id: str,
        *,
        expected_revision: int,
        events: Sequence[AccountEvent],
        meta: CommandMeta,
    ) -> int:
        return self.store.append(
            account_id, expected_revision=expected_revision, events=events, meta=meta
        )

    def read_snapshot(self, account_id: str) -> bytes | None:
        return self.store.read_snapshot(account_id)

    def write_snapshot(self, account_id: str, data: bytes) -> None:
        self.store.write_snapshot(account_id, data)

    def commit_position(self) -> int:
        return self.store.commit_position()
