"""The scavenge: reclaim the space of events no stream read can show any more.

It removes an event only when the stream's retention hides it from every stream read (below the
floor of `$tb`/`$maxCount`, older than `$maxAge`, an older event of a metastream, or any event of a
tombstoned stream), and never the last event of a stream. Removed records stay in the log as
padding frames of the same length, so every surviving record keeps its $all position, and the
positions of removed ones stay valid starting points for $all reads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from esdblite.index import Index, stream_state
from esdblite.log import EventLog
from esdblite.retention import created_cutoff, floor
from esdblite.rules import DELETED

log = logging.getLogger("esdblite.scavenge")


@dataclass(frozen=True)
class ScavengeResult:
    """What a scavenge removed."""

    records: int
    log_bytes: int  # bytes of the log given back to the file system


def removable(index: Index, now: float | None = None) -> list[int]:
    """Positions of the records a scavenge may remove, ascending."""
    db = index.db
    metastreams = [
        row[0]
        for row in db.execute(
            "SELECT DISTINCT stream FROM events WHERE stream >= '$$' AND stream < '$%'"
        )
    ]
    tombstoned = [
        row[0] for row in db.execute("SELECT stream FROM events WHERE revision = ?", (DELETED,))
    ]
    targets = {m[2:] for m in metastreams} | set(tombstoned)
    positions: list[int] = []
    for stream in sorted(targets | set(metastreams)):
        state = stream_state(db, stream)
        if state.last_revision < 0:
            continue
        # The last event always stays: it carries the stream's version.
        below = (
            state.last_revision
            if state.tombstoned
            else min(floor(stream, state), state.last_revision)
        )
        oldest = created_cutoff(state, now)
        rows = db.execute(
            "SELECT position FROM events WHERE stream = ? AND revision < ? "
            "AND (revision < ? OR created < ?)",
            (stream, state.last_revision, below, oldest),
        )
        positions.extend(row[0] for row in rows)
    positions.sort()
    return positions


def scavenge(index: Index, event_log: EventLog, now: float | None = None) -> ScavengeResult:
    """Remove what no stream read shows; run only where nothing else writes (the writer thread
    of a node, or an offline store)."""
    began = time.monotonic()
    positions = removable(index, now)
    if not positions:
        return ScavengeResult(0, 0)
    frames = [(p, *event_log.frame_info(p)) for p in positions]
    # The index forgets the records first: readers never see a record whose frame is padding.
    index.begin()
    try:
        index.db.executemany("DELETE FROM events WHERE position = ?", [(p,) for p in positions])
        index.insert_scavenged(positions)
        index.commit()
    except BaseException:
        index.rollback()
        raise
    reclaimed = event_log.pad(frames)
    index.db.execute("PRAGMA incremental_vacuum")
    index.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    log.info(
        "scavenge removed %d records, %d bytes of the log reclaimed, in %.2f s",
        len(positions),
        reclaimed,
        time.monotonic() - began,
    )
    return ScavengeResult(len(positions), reclaimed)
