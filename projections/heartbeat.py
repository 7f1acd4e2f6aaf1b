"""The runner's heartbeat: who runs a projection, when it last beat, whether it stopped in order."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import psycopg
from psycopg import sql

HEARTBEAT_EVERY = 2.0  # seconds between beats, idle or not
STALE_AFTER = 3  # a heartbeat older than this many intervals means the runner is not alive

RunnerState = Literal["running", "stale", "stopped"]

RUNNER_STATE_SQL = (
    "CASE WHEN r.projection IS NULL OR r.stopped_at IS NOT NULL THEN 'stopped'"
    f" WHEN r.heartbeat_at < now() - make_interval(secs => r.interval_s * {STALE_AFTER})"
    " THEN 'stale' ELSE 'running' END"
)
"""A projection's runner state from its `projection_runners` row `r` (the one definition)."""

FORGET_AFTER = "1 hour"  # instance rows of runners gone this long are deleted at a registration


class Heartbeat:
    """One runner's rows in projection_runners: registered, beaten, marked stopped."""

    def __init__(self, slots: Sequence[str], every: float = HEARTBEAT_EVERY) -> None:
        self.slots = list(slots)
        self.every = every
        self.runner_id = uuid.uuid4()
        self.next_due = 0.0

    def standby(self, conn: psycopg.Connection[Any]) -> None:
        """Say that this runner stands by for the slots (another one holds their locks)."""
        self._instance(conn, "standby")
        self.next_due = time.monotonic() + self.every

    def register(self, conn: psycopg.Connection[Any]) -> None:
        """Claim the slots (the caller holds their advisory locks) and beat once."""
        with conn.transaction():
            self._instance(conn, "active")
            conn.cursor().executemany(
                "INSERT INTO projection_runners (projection, runner_id, host, pid, started_at,"
                " heartbeat_at, interval_s) VALUES (%s, %s, %s, %s, now(), now(), %s)"
                " ON CONFLICT (projection) DO UPDATE SET runner_id = EXCLUDED.runner_id,"
                " host = EXCLUDED.host, pid = EXCLUDED.pid, started_at = EXCLUDED.started_at,"
                " heartbeat_at = EXCLUDED.heartbeat_at, interval_s = EXCLUDED.interval_s,"
                " stopped_at = NULL",
                [
                    (name, self.runner_id, socket.gethostname(), os.getpid(), self.every)
                    for name in self.slots
                ],
            )
        self.next_due = time.monotonic() + self.every

    def _instance(self, conn: psycopg.Connection[Any], role: Literal["active", "standby"]) -> None:
        conn.execute(
            "DELETE FROM runner_instances WHERE COALESCE(stopped_at, heartbeat_at)"
            " < now() - %s::interval",
            (FORGET_AFTER,),
        )
        conn.execute(
            "INSERT INTO runner_instances (runner_id, host, pid, slots, role, started_at,"
            " heartbeat_at, interval_s) VALUES (%s, %s, %s, %s, %s, now(), now(), %s)"
            " ON CONFLICT (runner_id) DO UPDATE SET role = EXCLUDED.role,"
            " heartbeat_at = EXCLUDED.heartbeat_at, stopped_at = NULL",
            (
                self.runner_id,
                socket.gethostname(),
                os.getpid(),
                self.slots,
                role,
                self.every,
            ),
        )

    def due(self) -> bool:
        """Whether the next beat is due."""
        return time.monotonic() >= self.next_due

    def beat(self, conn: psycopg.Connection[Any]) -> None:
        """Refresh the heartbeat, in the caller's transaction if one is open."""
        self._set(conn, "heartbeat_at")
        self.next_due = time.monotonic() + self.every

    def stopped(self, conn: psycopg.Connection[Any]) -> None:
        """Say that this runner stopped in order (so status reads "stopped", not "stale")."""
        self._set(conn, "stopped_at")

    def _set(
        self, conn: psycopg.Connection[Any], column: Literal["heartbeat_at", "stopped_at"]
    ) -> None:
        # clock_timestamp(), not now(): inside a batch's transaction now() is its start.
        column_id = sql.Identifier(column)
        conn.execute(
            sql.SQL(
                "UPDATE projection_runners SET {} = clock_timestamp()"
                " WHERE projection = ANY(%s) AND runner_id = %s"
            ).format(column_id),
            (self.slots, self.runner_id),
        )
        conn.execute(
            sql.SQL(
                "UPDATE runner_instances SET {} = clock_timestamp() WHERE runner_id = %s"
            ).format(column_id),
            (self.runner_id,),
        )
