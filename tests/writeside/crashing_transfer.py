"""A child process that runs a transfer (or the process manager) and kills itself with SIGKILL
right after its Nth write: the test-side seam for crashes between every pair of steps.

    python -m tests.writeside.crashing_transfer URI transfer FROM TO AMOUNT ID N
    python -m tests.writeside.crashing_transfer URI manager FROM_POSITION N
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from ledger.transfer_manager import TransferManager


class KillAfter:
    """Forwards to the store; SIGKILLs this process right after its Nth append of any stream."""

    def __init__(self, store: AccountEventStore, writes: int) -> None:
        self.store = store
        self.left = writes

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def _written(self, position: int) -> int:
        self.left -= 1
        if self.left <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return position

    def append(self, *args: Any, **kwargs: Any) -> int:
        return self._written(self.store.append(*args, **kwargs))

    def append_transfer(self, *args: Any, **kwargs: Any) -> int:
        return self._written(self.store.append_transfer(*args, **kwargs))


class Start:
    def __init__(self, position: int) -> None:
        self.position = position

    def load(self) -> int:
        return self.position

    def save(self, position: int) -> None:
        self.position = position


def main(argv: list[str]) -> None:
    uri, mode, *rest = argv
    store: Any = KillAfter(AccountEventStore.connect(uri), int(rest[-1]))
    clock = lambda: datetime.now(UTC)  # noqa: E731
    ledger = Ledger(CommandHandler(store, cache_size=0), clock=clock, actor="test:crash")
    if mode == "transfer":
        source, target, amount, transfer_id, _ = rest
        ledger.transfer(source, target, amount, transfer_id)
    else:
        manager = TransferManager(
            ledger.transfers, store, Start(int(rest[0])), clock=clock, grace=timedelta(0)
        )
        manager.catch_up()


if __name__ == "__main__":
    main(sys.argv[1:])
