"""Projection status from PostgreSQL alone: checkpoint, head, lag (events and seconds), parked."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import class_row

from projections.names import PROJECTION_NAMES


@dataclass(frozen=True)
class ProjectionStatus:
    """One projection's state as last recorded by its runner."""

    projection: str
    checkpoint: int
    head_position: int
    lag_events: int
    lag_capped: bool  # the lag is at least lag_events (the probe stops counting there)
    lag_seconds: float
    caught_up: bool
    parked: int
    runner_pid: int | None
    updated_at: dt.datetime | None

    def healthy(self, max_lag_events: int) -> bool:
        """Within the lag threshold, nothing parked."""
        return self.lag_events <= max_lag_events and not self.lag_capped and self.parked == 0


def read_status(conn: psycopg.Connection[Any]) -> list[ProjectionStatus]:
    """Every live projection's status; no call to the event store."""
    with conn.cursor(row_factory=class_row(ProjectionStatus)) as cur:
        return cur.execute(
            "SELECT p.name AS projection, COALESCE(c.position, 0) AS checkpoint,"
            " COALESCE(s.head_position, 0) AS head_position,"
            " COALESCE(s.lag_events, 0) AS lag_events, COALESCE(s.lag_capped, false) AS lag_capped,"
            " COALESCE(s.lag_seconds, 0) AS lag_seconds, COALESCE(s.caught_up, false) AS caught_up,"
            " (SELECT count(*) FROM parked_events e WHERE e.projection = p.name) AS parked,"
            " s.runner_pid, s.updated_at"
            " FROM unnest(%s::text[]) AS p(name)"
            " LEFT JOIN projection_checkpoints c ON c.projection = p.name"
            " LEFT JOIN projection_status s ON s.projection = p.name ORDER BY p.name",
            (list(PROJECTION_NAMES),),
        ).fetchall()
