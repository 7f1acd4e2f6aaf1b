"""The projection runner, the only place that subscribes to $all: batches, checkpoints, retries."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from esdbclient import EventStoreDBClient
from esdbclient.events import CaughtUp, Checkpoint

from ledger.errors import ServiceUnavailableError
from projections.applier import PROJECTIONS, Applier
from projections.checkpoints import ensure_checkpoints
from projections.db import connect, migrate
from projections.feed import FEED_FILTER, ProjectedEvent, Projection, SubscriptionReader
from projections.heartbeat import HEARTBEAT_EVERY, Heartbeat
from projections.lease import Lease, LeaseLostError

log = logging.getLogger("projections.runner")

ACCOUNT_FILTER = FEED_FILTER  # account and transfer streams, server side, on the stream name
LAG_PROBE_CAP = 10_000

MakeApplier = Callable[[psycopg.Connection[Any], Sequence[Projection], str, Lease], Applier]
"""How a runner session gets its applier: (connection, projections, suffix, lease)."""


def local_applier(
    conn: psycopg.Connection[Any], projections: Sequence[Projection], suffix: str, lease: Lease
) -> Applier:
    """The applier that writes in this process, on the session's connection (the default)."""
    return Applier(conn, projections, suffix, fence=lease.fence)


@dataclass
class Progress:
    """What the runner has done so far; handed to a progress callback after each batch."""

    events: int = 0
    position: int = 0
    head: int = 0
    caught_up: bool = False
    started: float = 0.0


@dataclass(frozen=True)
class Lag:
    """How far a checkpoint is behind the head of the account events."""

    head_position: int
    events: int
    capped: bool
    seconds: float


def probe_lag(
    client: EventStoreDBClient,
    checkpoint: int,
    last_applied: datetime | None,
    *,
    timeout: float | None = None,
) -> Lag:
    """Count account events after a checkpoint by reading backwards from the head (bounded)."""
    head_position = 0
    head_time: datetime | None = None
    count = 0
    oldest_unapplied: datetime | None = None
    events = client.read_all(
        backwards=True,
        filter_include=ACCOUNT_FILTER,
        filter_by_stream_name=True,
        limit=LAG_PROBE_CAP + 1,
        timeout=timeout,
    )
    try:
        for recorded in events:
            position = recorded.commit_position or 0
            if head_time is None:
                head_position, head_time = position, recorded.recorded_at
            if position <= checkpoint:
                break
            count += 1
            oldest_unapplied = recorded.recorded_at
            if count > LAG_PROBE_CAP:
                break
    finally:
        events.stop()
    seconds = 0.0
    if count and head_time is not None:
        reference = last_applied or oldest_unapplied or head_time
        seconds = max((head_time - reference).total_seconds(), 0.0)
    return Lag(head_position, min(count, LAG_PROBE_CAP), count > LAG_PROBE_CAP, seconds)


class Runner:
    """Keeps a set of projections (live, or a rebuild's shadow) up to date from $all."""

    def __init__(
        self,
        database_url: str,
        eventstore_uri: str,
        *,
        projections: Sequence[str] | None = None,
        suffix: str = "",
        batch_size: int = 500,
        batch_ms: float = 50.0,
        status_every: float = 1.0,
        heartbeat_every: float = HEARTBEAT_EVERY,
        on_progress: Callable[[Progress], None] | None = None,
        stop: threading.Event | None = None,
        make_applier: MakeApplier = local_applier,
        settle: Callable[[], None] | None = None,
    ) -> None:
        names = list(projections or PROJECTIONS)
        self.projections: list[Projection] = [PROJECTIONS[n] for n in names]
        self.database_url = database_url
        self.eventstore_uri = eventstore_uri
        self.suffix = suffix
        self.batch_size = batch_size
        self.batch_ms = batch_ms
        self.status_every = status_every
        self.on_progress = on_progress
        self.stop_event = stop or threading.Event()
        self.progress = Progress()
        self.last_applied_at: datetime | None = None
        # A rebuild's shadow runner has no heartbeat: liveness is about the live projections.
        self.heartbeat = None if suffix else Heartbeat(names, heartbeat_every)
        self.lease = Lease(database_url, [n + suffix for n in names])
        self.active = False
        self.make_applier = make_applier
        self.settle = settle  # called at the end of each session, while the lease is still held
        self._label = ", ".join(names) + (f" (rebuild {suffix})" if suffix else "")

    def run(self, *, until_caught_up: bool = False, stop_at: int | None = None) -> Progress:
        """Run until stopped (or caught up / past `stop_at`), resubscribing after failures.

        A lost event store means resubscribing from the stored checkpoint; a lost database
        means reconnecting too. Either way nothing uncommitted is kept, so nothing is doubled.
        """
        self.progress.started = time.monotonic()
        log.info("runner started: pid %d, projections %s", os.getpid(), ", ".join(self.lease.slots))
        backoff = 0.1
        while not self.stop_event.is_set():
            applied_before = self.progress.events
            try:
                if self._session(until_caught_up, stop_at):
                    break
                what = "the subscription ended"
            except LeaseLostError as exc:
                what = str(exc)
            except (psycopg.OperationalError, ServiceUnavailableError) as exc:
                what = f"database unavailable ({exc})"
            except (ConnectionError, OSError) as exc:
                what = f"event store unavailable ({exc})"
            except Exception as exc:
                if not type(exc).__module__.startswith("esdbclient"):
                    raise
                what = f"subscription failed ({exc})"
            if self.progress.events > applied_before:
                backoff = 0.1  # that session did work: the outage is new, start the backoff over
            log.warning("%s; resubscribing in %.1fs", what, backoff)
            if self.stop_event.wait(backoff):
                break
            backoff = min(backoff * 2, 5.0)
        return self.progress

    def _session(self, until_caught_up: bool, stop_at: int | None) -> bool:
        """One database session: lead (or stand by until leading), then follow subscriptions;
        True when the run is done."""
        conn = connect(self.database_url)
        try:
            migrate(conn)
            applier = self.make_applier(conn, self.projections, self.suffix, self.lease)
            if not self._lead(conn):
                return True  # stopped while standing by
            ensure_checkpoints(conn, applier.slots)
            if self.heartbeat:
                self.heartbeat.register(conn)
            done = self._follow(applier, until_caught_up, stop_at)
            if done and self.heartbeat:
                self.heartbeat.stopped(conn)
            return done
        finally:
            try:
                if self.active and self.settle:
                    self.settle()
            finally:
                if self.active:
                    log.info("no longer active for %s", ", ".join(self.lease.slots))
                self.active = False
                self.lease.release()
                conn.close()

    def _lead(self, conn: psycopg.Connection[Any]) -> bool:
        """Hold the slots' lease, standing by while another runner holds it (False: stopped)."""
        self.active = self.lease.take(self.stop_event, self.heartbeat, conn)
        return self.active

    def _follow(self, applier: Applier, until_caught_up: bool, stop_at: int | None) -> bool:
        """One subscription's life; True when the run is complete."""
        start = min(applier.checkpoints().values())
        client = EventStoreDBClient(self.eventstore_uri)
        inbox: queue.Queue[Any] = queue.Queue(maxsize=4 * self.batch_size)
        try:
            subscription = client.subscribe_to_all(
                commit_position=start,
                filter_include=ACCOUNT_FILTER,
                filter_by_stream_name=True,
                include_checkpoints=True,
                include_caught_up=True,
                window_size=self.batch_size,
                checkpoint_interval_multiplier=1,
            )
        except BaseException:
            client.close()
            raise
        reader = SubscriptionReader(subscription, inbox)
        reader.start()
        log.info("%s: subscribed to $all after position %d", self._label, start)
        self.progress.position = start
        next_status = 0.0
        caught_up = False  # CaughtUp comes once per subscription; remember it
        try:
            while not self.stop_event.is_set():
                batch, upto, seen = self._collect(inbox, stop_at, caught_up)
                if seen and not caught_up:
                    log.info(
                        "%s: caught up at position %d",
                        self._label,
                        max(upto, self.progress.position),
                    )
                caught_up = caught_up or seen
                beat = self.heartbeat is not None and self.heartbeat.due()
                if batch or upto > self.progress.position:
                    # A due beat goes in the batch's transaction: one commit says both.
                    with applier.conn.transaction() if beat else nullcontext():
                        applier.apply_batch(batch, max(upto, self.progress.position))
                        if beat and self.heartbeat:
                            self.heartbeat.beat(applier.conn)
                    self.progress.events += len(batch)
                    self.progress.position = max(upto, self.progress.position)
                    if batch:
                        self.last_applied_at = batch[-1].recorded_at
                elif beat and self.heartbeat:
                    self.heartbeat.beat(applier.conn)
                self.progress.caught_up = caught_up and inbox.empty()
                if time.monotonic() >= next_status:
                    if not self.lease.alive():
                        raise LeaseLostError(
                            f"lost the lock of {', '.join(self.lease.slots)}"
                            " (its connection ended); standing by again"
                        )
                    probed = time.monotonic()
                    self._record_status(client, applier)
                    # Far behind, a probe reads up to LAG_PROBE_CAP events: keep it to about a
                    # tenth of the runner's time instead of most of a catch-up's.
                    took = time.monotonic() - probed
                    next_status = time.monotonic() + max(self.status_every, 9 * took)
                if self.on_progress:
                    self.on_progress(self.progress)
                if stop_at is not None and self.progress.position >= stop_at:
                    return True
                if until_caught_up and caught_up and stop_at is None:
                    self._record_status(client, applier)
                    return True
            return True
        finally:
            # In this order: the call cancelled and its reader joined, then the channel closed,
            # so that no thread is inside a gRPC call when its channel (or the process) goes.
            reader.close()
            client.close()

    def _collect(
        self, inbox: queue.Queue[Any], stop_at: int | None, caught_up: bool
    ) -> tuple[list[ProjectedEvent], int, bool]:
        batch: list[ProjectedEvent] = []
        upto = 0
        deadline = time.monotonic() + self.batch_ms / 1000
        while len(batch) < self.batch_size:
            if caught_up and batch and inbox.empty():
                break  # live: nothing else is waiting, so do not hold the batch back
            timeout = deadline - time.monotonic()
            try:
                item = inbox.get(timeout=max(timeout, 0.0)) if timeout > 0 else inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, BaseException):
                raise item if isinstance(item, ConnectionError) else ConnectionError(str(item))
            if isinstance(item, CaughtUp):
                caught_up = True
                if not batch:
                    break
                continue
            position = item.commit_position or 0
            if stop_at is not None and position > stop_at:
                upto = max(upto, stop_at)
                break
            if not isinstance(item, Checkpoint):
                batch.append(ProjectedEvent.from_recorded(item))
            upto = max(upto, position)
        return batch, upto, caught_up

    def _record_status(self, client: EventStoreDBClient, applier: Applier) -> None:
        if self.suffix:
            return  # a rebuild reports its own progress; status is about the live tables
        try:
            lag = probe_lag(client, self.progress.position, self.last_applied_at)
        except Exception as exc:
            log.debug("lag probe failed: %s", exc)
            return
        caught_up = self.progress.caught_up and lag.events == 0
        self.progress.head = lag.head_position
        with applier.conn.transaction():
            applier.conn.cursor().executemany(
                "INSERT INTO projection_status (projection, head_position, lag_events, lag_capped,"
                " lag_seconds, caught_up, runner_pid, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT (projection) DO UPDATE SET"
                " head_position = EXCLUDED.head_position, lag_events = EXCLUDED.lag_events,"
                " lag_capped = EXCLUDED.lag_capped, lag_seconds = EXCLUDED.lag_seconds,"
                " caught_up = EXCLUDED.caught_up, runner_pid = EXCLUDED.runner_pid,"
                " updated_at = EXCLUDED.updated_at",
                [
                    (
                        name,
                        lag.head_position,
                        lag.events,
                        lag.capped,
                        lag.seconds,
                        caught_up,
                        os.getpid(),
                    )
                    for name in applier.slots
                ],
            )
