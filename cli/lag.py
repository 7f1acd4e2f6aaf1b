"""How far behind a projection is, for the reads: a note on stderr and the JSON's fields."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from cli.context import Context, local_stack

if TYPE_CHECKING:
    import psycopg

    from projections.runner import Lag
    from projections.status import LagCounter, ProjectionStatus


def lag_counter(obj: Context) -> LagCounter:
    """Counts a lag in the event store when one is configured or running; never starts one."""

    def count(checkpoint: int, since: dt.datetime | None) -> Lag | None:
        from projections.status import count_in_event_store

        uri = obj.settings.eventstore_uri
        if uri is None:
            stack = local_stack(obj)
            if not stack.running("eventstore"):
                return None
            uri = stack.eventstore_uri()
        return count_in_event_store(uri, checkpoint, since)

    return count


def projection_lag(
    obj: Context, conn: psycopg.Connection[Any], projection: str
) -> ProjectionStatus:
    """A read's projection status, said on stderr when it is behind or its runner is not alive.

    One query while the runner is alive; the event store is asked only when it is not."""
    from projections.status import read_status

    [status] = read_status(conn, [projection], count=lag_counter(obj))
    if status.behind:
        obj.output.note(lag_note(status))
    return status


def lag_fields(status: ProjectionStatus) -> dict[str, Any]:
    """The keys a read's JSON carries about its projection."""
    return {"lag_events": status.lag_events, "runner": status.runner}


def lag_note(status: ProjectionStatus) -> str:
    """One sentence: how far behind the projection is, and whether its runner is alive."""
    more = "+" if status.lag_capped else ""
    behind = f"{status.lag_events}{more} events ({status.lag_seconds:.1f}s) behind"
    if status.alive:
        when = status.updated_at.isoformat(timespec="seconds") if status.updated_at else "?"
        what = f"is {behind}, as of {when}"
    else:
        if status.heartbeat_age_s is None:
            runner = "no runner has run"
        else:
            runner = (
                f"its runner is {status.runner} (last heartbeat {status.heartbeat_age_s:.0f}s ago)"
            )
        counted = (
            f"it is {behind}"
            if status.lag_current
            else f"it was {behind} when last counted (the event store did not answer)"
        )
        what = f"is not being updated: {runner}; {counted}"
    return f"note: the {status.projection} projection {what}; use --consistent for the write model"
