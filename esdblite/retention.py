"""Stream metadata that bounds what a stream read shows: `$tb`, `$maxCount`, `$maxAge`.

One rule for reads and for the scavenge: an event is visible to a stream read when its revision
is at least the stream's floor and it is younger than `$maxAge`; a scavenge removes only events
that fail that test, and never the last event of a stream (it carries the stream's version).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from esdblite.rules import StreamState

TICKS_PER_SECOND = 10_000_000  # `created` is in 100-ns ticks since the Unix epoch


@dataclass(frozen=True, slots=True)
class Retention:
    """The retention settings of one metadata document."""

    truncate_before: int = 0
    max_count: int | None = None
    max_age: int | None = None  # seconds


def _positive(value: object) -> int | None:
    # bool is an int in Python; EventStoreDB's metadata reader wants a JSON number.
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def retention(metadata: bytes | None) -> Retention:
    """The retention of a metadata document; absent or unreadable keys impose nothing."""
    if not metadata:
        return Retention()
    try:
        doc = json.loads(metadata)
    except ValueError:
        return Retention()
    if not isinstance(doc, dict):
        return Retention()
    tb = doc.get("$tb", 0)
    return Retention(
        truncate_before=tb if isinstance(tb, int) and not isinstance(tb, bool) and tb >= 0 else 0,
        max_count=_positive(doc.get("$maxCount")),
        max_age=_positive(doc.get("$maxAge")),
    )


def is_metastream(stream: str) -> bool:
    """Metastreams (`$$name`) behave as if their `$maxCount` were 1."""
    return stream.startswith("$$")


def floor(stream: str, state: StreamState) -> int:
    """The lowest revision a read of the stream shows (`$tb` and `$maxCount`)."""
    if is_metastream(stream):
        return max(state.last_revision, 0)
    kept = retention(state.metadata)
    lowest = kept.truncate_before
    if kept.max_count is not None:
        lowest = max(lowest, state.last_revision - kept.max_count + 1)
    return lowest


def created_cutoff(state: StreamState, now: float | None = None) -> int:
    """The oldest `created` (ticks) a read of the stream shows (`$maxAge`); 0 when unbounded."""
    max_age = retention(state.metadata).max_age
    if max_age is None:
        return 0
    clock = time.time() if now is None else now
    return int((clock - max_age) * TICKS_PER_SECOND)
