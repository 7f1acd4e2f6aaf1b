"""A projection runner that dies like kill -9 inside a batch, for the crash-recovery tests.

Run it in a child process: `python -m tests.projections.crashing_runner DATABASE_URL ESDB_URI
BATCH_SIZE CRASH_AT`. It catches up like `Runner.run(until_caught_up=True)`, except that it
exits with CRASHED while the transaction of its CRASH_AT-th batch is still open.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from psycopg import Cursor

from projections.applier import PROJECTIONS
from projections.feed import Applied, Projection
from projections.names import PROJECTION_NAMES
from projections.runner import Runner

CRASHED = 86  # the exit status of a runner that died in its batch


class DyingProjection:
    """Wraps a projection; exits the process right after its `crash_at`-th write."""

    def __init__(self, projection: Projection, crash_at: int) -> None:
        self.projection = projection
        self.crash_at = crash_at
        self.writes = 0

    @property
    def name(self) -> str:
        """The wrapped projection's name."""
        return self.projection.name

    @property
    def tables(self) -> tuple[str, ...]:
        """The wrapped projection's tables."""
        return self.projection.tables

    def apply(self, cur: Cursor[Any], events: Sequence[Applied], suffix: str) -> None:
        """Write like the wrapped projection; at the `crash_at`-th write, die before the commit."""
        self.projection.apply(cur, events, suffix)
        self.writes += 1
        if self.writes == self.crash_at:
            os._exit(CRASHED)


def die_in_batch(crash_at: int) -> None:
    """Make the runners this process creates die inside their `crash_at`-th batch with events.

    The last projection of a batch is wrapped, so every projection has written its rows and
    only the commit (with the checkpoints) is missing when the process exits.
    """
    last = PROJECTION_NAMES[-1]
    PROJECTIONS[last] = DyingProjection(PROJECTIONS[last], crash_at)


def main(argv: Sequence[str]) -> None:
    """Catch up once with a runner that dies in the given batch."""
    database_url, eventstore_uri, batch_size, crash_at = argv
    die_in_batch(int(crash_at))
    Runner(database_url, eventstore_uri, batch_size=int(batch_size)).run(until_caught_up=True)


if __name__ == "__main__":
    main(sys.argv[1:])
