"""A store that is down makes every command fail with ServiceUnavailableError (exit code 3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from esdblite.process import ServerProcess
from ledger.errors import ServiceUnavailableError
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from tests.support.clock import Clock


@pytest.fixture
def doomed_server() -> Iterator[ServerProcess]:
    """A private in-memory esdblite the test kills (always stopped at the end)."""
    server = ServerProcess().start()
    try:
        yield server
    finally:
        server.stop()


def test_commands_and_reads_fail_as_unavailable_when_the_store_is_down(
    doomed_server: ServerProcess, account_id: str
) -> None:
    uri = doomed_server.uri
    stores = [AccountEventStore.connect(uri) for _ in range(2)]
    try:
        # One ledger has the account cached, so its command fails in the append, not the read.
        cached = Ledger(CommandHandler(stores[0]), clock=Clock(), actor="test:down")
        uncached = Ledger(CommandHandler(stores[1], cache_size=0), clock=Clock(), actor="test:down")
        cached.open_account(account_id, "Una", "EUR")
        assert cached.handler.stats.commands == 1

        doomed_server.kill()

        for action in (
            lambda: cached.deposit(account_id, "1.00", "t1"),
            lambda: uncached.deposit(account_id, "1.00", "t1"),
            lambda: uncached.account(account_id),
            lambda: stores[1].commit_position(),
        ):
            with pytest.raises(ServiceUnavailableError):
                action()
        assert cached.handler.stats.cache_hits == 1
    finally:
        for store in stores:
            store.close()
