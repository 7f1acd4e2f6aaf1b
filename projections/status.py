"""Projection status: checkpoint, head, lag (events and seconds), parked, and whether a runner is
alive (its heartbeat); from PostgreSQL, and from the event store only for a runner not alive."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from projections.heartbeat import RUNNER_STATE_SQL, STALE_AFTER, RunnerState
from projections.names import PROJECTION_NAMES, TRANSFERS_SLOT

if TYPE_CHECKING:
    from projections.runner import Lag

log = logging.getLogger("projections.status")

LagCounter = Callable[[int, "dt.datetime | None"], "Lag | None"]
"""Counts the account events after a checkpoint (given when it last moved); None if it cannot."""

PASSED = "c.position >= s.head_position"
STANDBYS = (
    "ARRAY(SELECT i.host || '/' || i.pid FROM runner_instances i WHERE p.name = ANY(i.slots)"
    " AND i.role = 'standby' AND i.stopped_at IS NULL"
    f" AND i.heartbeat_at >= now() - make_interval(secs => i.interval_s * {STALE_AFTER})"
    " ORDER BY i.started_at, i.pid)"
)
"""The live runners standing by for projection `p.name` (host/pid), oldest first."""
ALL_SLOTS = (*PROJECTION_NAMES, TRANSFERS_SLOT)
"""What `projections status` shows: the projections and the transfer process manager's slot."""
PROBE_TIMEOUT = 2.0  # seconds a count in the event store may take before it is given up


@dataclass(frozen=True)
class ProjectionStatus:
    """One projection's state: its runner's last record, and whether that runner is alive."""

    projection: str
    checkpoint: int
    head_position: int
    lag_events: int
    lag_capped: bool  # the lag is at least lag_events (the probe stops counting there)
    lag_seconds: float
    caught_up: bool  # never true unless the runner is running
    parked: int
    runner_pid: int | None
    updated_at: dt.datetime | None
    runner: RunnerState  # running, stale (no heartbeat for 3 intervals) or stopped
    runner_host: str | None
    heartbeat_at: dt.datetime | None
    heartbeat_age_s: float | None  # by the database's clock, as every heartbeat is
    checkpoint_at: dt.datetime | None
    # False: the runner is not alive and its lag could not be counted again, so lag_events is
    # what it last recorded (a lower bound).
    lag_current: bool
    # host/pid of each live runner standing by for this projection
    standbys: list[str] = dataclasses.field(default_factory=list)

    @property
    def alive(self) -> bool:
        """Whether a runner is projecting (its heartbeat is fresh and it has not stopped)."""
        return self.runner == "running"

    @property
    def behind(self) -> bool:
        """Whether a reader should be told: events not applied yet, or no runner alive."""
        return bool(self.lag_events or self.lag_capped or not self.alive)

    def problems(self, max_lag_events: int) -> list[str]:
        """What makes this projection unhealthy (empty: healthy)."""
        found = [] if self.alive else [f"runner {self.runner}"]
        if self.lag_events > max_lag_events or self.lag_capped:
            found.append(f"lag {self.lag_events}{'+' if self.lag_capped else ''} events")
        if self.parked:
            found.append(f"{self.parked} parked")
        return found

    def healthy(self, max_lag_events: int) -> bool:
        """A live runner, within the lag threshold, nothing parked."""
        return not self.problems(max_lag_events)


def read_status(
    conn: psycopg.Connection[Any],
    projections: Sequence[str] = PROJECTION_NAMES,
    *,
    count: LagCounter | None = None,
) -> list[ProjectionStatus]:
    """The projections' status in one query; with `count`, the lag of a projection whose runner
    is not alive is counted again (its last record says nothing of later writes)."""
    with conn.cursor(row_factory=class_row(ProjectionStatus)) as cur:
        found = cur.execute(
            sql.SQL(
                "SELECT p.name AS projection, COALESCE(c.position, 0) AS checkpoint,"
                " COALESCE(s.head_position, 0) AS head_position,"
                # A checkpoint past the head the runner last saw has applied all it counted then.
                " CASE WHEN {passed} THEN 0 ELSE COALESCE(s.lag_events, 0) END AS lag_events,"
                " COALESCE(s.lag_capped AND NOT {passed}, false) AS lag_capped,"
                " CASE WHEN {passed} THEN 0 ELSE COALESCE(s.lag_seconds, 0) END AS lag_seconds,"
                " COALESCE(s.caught_up, false) AND {state} = 'running' AS caught_up,"
                " (SELECT count(*) FROM parked_events e WHERE e.projection = p.name) AS parked,"
                " COALESCE(r.pid, s.runner_pid) AS runner_pid, s.updated_at,"
                " {state} AS runner, r.host AS runner_host, r.heartbeat_at,"
                " EXTRACT(EPOCH FROM now() - r.heartbeat_at)::float8 AS heartbeat_age_s,"
                " c.updated_at AS checkpoint_at, {state} = 'running' AS lag_current,"
                " {standbys} AS standbys"
                " FROM unnest(%s::text[]) AS p(name)"
                " LEFT JOIN projection_checkpoints c ON c.projection = p.name"
                " LEFT JOIN projection_status s ON s.projection = p.name"
                " LEFT JOIN projection_runners r ON r.projection = p.name"
                " ORDER BY p.name = %s, p.name"
            ).format(
                passed=sql.SQL(PASSED),
                state=sql.SQL(RUNNER_STATE_SQL),
                standbys=sql.SQL(STANDBYS),
            ),
            (list(projections), TRANSFERS_SLOT),
        ).fetchall()
    # The process manager's slot shows once a manager has run (a runner may run without one).
    found = [
        s
        for s in found
        if s.projection != TRANSFERS_SLOT or s.checkpoint_at or s.heartbeat_at or s.runner_pid
    ]
    if count is None:
        return found
    counted: dict[int, Lag | None] = {}
    for i, status in enumerate(found):
        # No runner records the process manager's lag: it is always counted.
        if status.alive and status.projection != TRANSFERS_SLOT:
            continue
        if status.checkpoint not in counted:
            counted[status.checkpoint] = count(status.checkpoint, status.checkpoint_at)
        lag = counted[status.checkpoint]
        if lag is not None:
            found[i] = dataclasses.replace(
                status,
                head_position=lag.head_position,
                lag_events=lag.events,
                lag_capped=lag.capped,
                lag_seconds=lag.seconds,
                lag_current=True,
                # Counted now, so a live manager with nothing after its checkpoint is caught up.
                caught_up=status.caught_up
                or (status.alive and status.projection == TRANSFERS_SLOT and not lag.events),
            )
    return found


def count_in_event_store(uri: str, checkpoint: int, since: dt.datetime | None) -> Lag | None:
    """The account events after a checkpoint, counted in the event store (None if it does not
    answer in time); `since` is when the projection last moved."""
    from esdbclient import EventStoreDBClient

    from projections.runner import probe_lag

    try:
        client = EventStoreDBClient(uri)
    except Exception as exc:  # a bad or unreachable URI only means the lag stays uncounted
        log.debug("could not count the lag in the event store: %s", exc)
        return None
    # The call's deadline is not always kept when the server has just gone away (gRPC can
    # wait on a dead subchannel); closing the channel ends every call on it, so bound it so.
    watchdog = threading.Timer(PROBE_TIMEOUT, client.close)
    watchdog.start()
    try:
        return probe_lag(client, checkpoint, since, timeout=PROBE_TIMEOUT)
    except Exception as exc:  # any failure only means the lag stays uncounted
        log.debug("could not count the lag in the event store: %s", exc)
        return None
    finally:
        watchdog.cancel()
        watchdog.join()
        client.close()
