"""`ledger projections status|run|rebuild|replay-parked`: operations on the read models."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.context import (
    Context,
    context,
    database_url,
    eventstore_uri,
    local_stack,
    make_ledger,
    read_conn,
    write_model_fold,
)
from cli.errors import ExitCode, confirm, fail, handled
from cli.options import FormatOpt, JsonOpt, YesOpt, use_format
from cli.render import Column

if TYPE_CHECKING:
    from projections.rebuild import RebuildReport
    from projections.status import ProjectionStatus

app = typer.Typer(
    help="Read-model operations: status, run, rebuild, list and replay parked events.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
)


@app.command("status")
def projections_status(
    ctx: typer.Context,
    health: Annotated[
        bool,
        typer.Option(
            "--health", help="Exit 5 unless every runner is alive, within --max-lag, unparked."
        ),
    ] = False,
    max_lag: Annotated[int, typer.Option("--max-lag", min=0, help="Events (with --health).")] = 100,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Runner (running, stale, stopped), checkpoint, head, lag, caught-up, parked.

    From PostgreSQL; a projection whose runner is not alive has its lag counted in the event
    store (when one is reachable), since its runner's last record says nothing of later writes."""
    obj = context(ctx, json_out)
    with handled(obj):
        from cli.lag import lag_counter
        from projections.names import PROJECTION_NAMES
        from projections.status import ALL_SLOTS, read_status

        use_format(obj.output, fmt, json_out)
        with read_conn(obj) as conn:
            statuses = read_status(conn, ALL_SLOTS, count=lag_counter(obj))
        obj.output.listing("Projections", STATUS_COLUMNS, [_status_doc(s) for s in statuses])
        if health:
            problems = [
                f"{s.projection}: {', '.join(found)}"
                for s in statuses
                if s.projection in PROJECTION_NAMES and (found := s.problems(max_lag))
            ]
            if problems:
                fail(
                    f"unhealthy (max lag {max_lag} events): {'; '.join(problems)}",
                    ExitCode.CHECK_FAILED,
                )


def _runner_cell(doc: Mapping[str, Any]) -> str:
    """The state, the active runner (host/pid) and those standing by."""
    if doc["runner"] == "running":
        cell = f"{doc['runner']} {doc['runner_host']}/{doc['runner_pid']}"
    elif doc["heartbeat_age_s"] is None:
        cell = str(doc["runner"])
    else:
        cell = f"{doc['runner']} ({doc['heartbeat_age_s']:.0f}s)"
    return cell + "".join(f"; standby {s}" for s in doc["standbys"])


def _lag_cell(doc: Mapping[str, Any]) -> str:
    return (
        f"{'' if doc['lag_current'] else '≥'}{doc['lag_events']}"
        f"{'+' if doc['lag_capped'] else ''} ({doc['lag_seconds']:.1f}s)"
    )


# The table's columns first; CSV carries them all.
STATUS_COLUMNS = (
    Column("projection"),
    Column("runner", show=_runner_cell),
    Column("checkpoint", right=True),
    Column("head_position", "head", right=True),
    Column("lag_events", "lag", right=True, show=_lag_cell),
    Column("caught_up", "caught up", show=lambda doc: "yes" if doc["caught_up"] else "no"),
    Column("parked", right=True),
    *(
        Column(key, table=False)
        for key in (
            "lag_capped",
            "lag_seconds",
            "lag_current",
            "runner_pid",
            "runner_host",
            "updated_at",
            "heartbeat_at",
            "heartbeat_age_s",
            "checkpoint_at",
            "standbys",
        )
    ),
)


def _status_doc(status: ProjectionStatus) -> dict[str, Any]:
    doc: dict[str, Any] = dict(status.__dict__)
    for key in ("updated_at", "heartbeat_at", "checkpoint_at"):
        doc[key] = doc[key].isoformat() if doc[key] else None
    return doc


def parse_only(only: str | None) -> list[str] | None:
    """The projections named by `--only a,b` (None: all); an unknown name is invalid input."""
    from projections.names import PROJECTION_NAMES

    if only is None:
        return None
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROJECTION_NAMES]
    if unknown or not names:
        fail(
            f"unknown projection {', '.join(map(repr, unknown)) or repr(only)};"
            f" choose from {', '.join(PROJECTION_NAMES)}"
        )
    return list(dict.fromkeys(names))


@app.command("run")
def projections_run(
    ctx: typer.Context,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            metavar="NAME[,NAME]",
            help="Run only these projections (each keeps its own checkpoint); any number of"
            " runners may run: one is active per projection, the others stand by.",
        ),
    ] = None,
) -> None:
    """Run the projection runner in the foreground until SIGTERM/SIGINT."""
    import signal

    obj = context(ctx)
    with handled(obj):
        names = parse_only(only)
        from projections.runner import Runner

        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if names is None and obj.settings.runners == "per-projection":
            run_per_projection(stop)
            return
        if obj.settings.embedded:
            stack = local_stack(obj)
            esdb, db = stack.eventstore_uri(), stack.database_url()
        else:
            esdb, db = eventstore_uri(obj), database_url(obj)
        from cli.commands.transfers import start_transfer_manager

        manager = start_transfer_manager(esdb, db, obj.settings.clock, stop)
        Runner(db, esdb, projections=names, stop=stop).run()
        stop.set()
        manager.join(timeout=10)


def run_per_projection(stop: threading.Event) -> None:
    """LEDGER_RUNNERS=per-projection: one `projections run --only NAME` process per projection
    (each with its own checkpoint and lease), restarted when one exits, until `stop`."""
    import subprocess

    from projections.names import PROJECTION_NAMES

    log = logging.getLogger("projections.runner")
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        while not stop.is_set():
            for name in PROJECTION_NAMES:
                child = children.get(name)
                if child is not None and child.poll() is None:
                    continue
                if child is not None:
                    log.warning(
                        "the runner of %s exited (%s); starting it again", name, child.poll()
                    )
                args = [sys.executable, "-m", "cli.main", "projections", "run", "--only", name]
                children[name] = subprocess.Popen(args, stdin=subprocess.DEVNULL)
                log.info("started the runner of %s: pid %d", name, children[name].pid)
            stop.wait(1.0)
    finally:
        for child in children.values():
            child.terminate()
        for child in children.values():
            child.wait(30)


@app.command("rebuild")
def projections_rebuild(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="balances, statements or daily_totals.")
    ] = None,
    discard: Annotated[
        bool, typer.Option("--discard", help="Drop an interrupted rebuild first.")
    ] = False,
    pause_timeout: Annotated[
        float | None,
        typer.Option(
            "--pause-timeout",
            help="Seconds the live projections may stay paused while the rebuilt tables catch"
            " up; past it the rebuild gives up (exit 5) and can be resumed"
            " [default: LEDGER_REBUILD_PAUSE_TIMEOUT or 30].",
        ),
    ] = None,
    per_projection: Annotated[
        bool,
        typer.Option(
            "--per-projection",
            help="One applier process per projection, in parallel (uses more cores), fed by"
            " this process, which reads the log once, verifies and swaps.",
        ),
    ] = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Rebuild read models blue/green: queries keep answering; verified before the swap."""
    obj = context(ctx, json_out)
    with handled(obj):
        from projections.names import PROJECTION_NAMES

        if name is not None and name not in PROJECTION_NAMES:
            fail(f"unknown projection {name!r}; choose from {', '.join(PROJECTION_NAMES)}")
        if pause_timeout is not None and not pause_timeout > 0:
            fail(f"--pause-timeout must be more than 0 seconds, not {pause_timeout:g}")
        names = [name] if name else list(PROJECTION_NAMES)
        confirm(obj, f"Rebuild {', '.join(names)} from the start of the log?", yes)
        fanned = per_projection and len(names) > 1
        report = rebuild_with_progress(obj, names, discard, pause_timeout, per_projection=fanned)
        doc = {
            "projections": report.projections,
            "events": report.events,
            "seconds": round(report.seconds, 3),
            "events_per_s": round(report.events_per_s, 1),
            "swapped_at": report.swapped_at,
            "resumed": report.resumed,
            "differences_from_live": report.differences,
        }
        if obj.output.json_mode:
            obj.output.json(doc)
        else:
            diffs = ", ".join(f"{t}: {n}" for t, n in report.differences.items())
            obj.output.line(
                f"Rebuilt {', '.join(names)}: {report.events} events in {report.seconds:.1f}s "
                f"({report.events_per_s:,.0f}/s), verified and swapped in at position "
                f"{report.swapped_at}. Rows that differed from the old tables: {diffs}."
            )


def rebuild_with_progress(
    obj: Context,
    names: list[str],
    discard: bool,
    pause_timeout: float | None = None,
    *,
    per_projection: bool = False,
) -> RebuildReport:
    """Rebuild the named projections blue/green, with a progress bar on a terminal."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from projections.rebuild import PAUSE_TIMEOUT, rebuild
    from projections.runner import Progress as RunnerProgress

    fold = write_model_fold(obj)
    esdb, db = eventstore_uri(obj), database_url(obj)
    head = make_ledger(obj).handler.store.commit_position() or 1
    show = sys.stderr.isatty() and not obj.output.json_mode
    with Progress(
        TextColumn("rebuilding"),
        BarColumn(),
        TextColumn("{task.fields[events]} events · {task.fields[rate]}/s"),
        TimeRemainingColumn(),
        console=obj.output.err,
        disable=not show,
    ) as bar:
        task = bar.add_task("rebuild", total=head, events=0, rate=0)

        def progress(p: RunnerProgress) -> None:
            elapsed = max(time.monotonic() - p.started, 1e-6)
            # Positions are byte offsets in the log, so their fraction is a fair ETA basis.
            bar.update(
                task,
                completed=min(p.position, head),
                events=p.events,
                rate=f"{p.events / elapsed:,.0f}",
            )

        bound = pause_timeout or obj.settings.rebuild_pause_timeout or PAUSE_TIMEOUT

        def paused(live_at: int, shadow_at: int) -> None:
            if shadow_at < live_at:
                obj.output.note(
                    f"live projections paused at position {live_at}; bringing the rebuilt"
                    f" tables up from {shadow_at} (giving up after {bound:g}s)"
                )

        report = rebuild(
            db,
            esdb,
            fold,
            projections=names,
            discard_previous=discard,
            on_progress=progress,
            pause_timeout=bound,
            on_pause=paused,
            per_projection=per_projection,
        )
    if not show:
        obj.output.note(f"rebuild: {report.events} events at {report.events_per_s:,.0f}/s")
    return report


@app.command("parked")
def projections_parked(
    ctx: typer.Context,
    projection: Annotated[
        str | None, typer.Option("--projection", help="Only this projection.")
    ] = None,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List parked events: position, projection, account@revision, error, when parked."""
    obj = context(ctx, json_out)
    with handled(obj):
        use_format(obj.output, fmt, json_out)
        from projections.names import PROJECTION_NAMES
        from projections.parked import list_parked

        if projection is not None and projection not in PROJECTION_NAMES:
            fail(f"unknown projection {projection!r}; choose from {', '.join(PROJECTION_NAMES)}")
        with read_conn(obj) as conn:
            parked = list_parked(conn, projection=projection)
        _show_parked(obj, parked)


PARKED_COLUMNS = (
    Column("position", right=True),
    Column("projection"),
    Column(
        "account_id",
        "event",
        text=True,
        show=lambda p: f"{p['account_id']}@{p['revision']} {p['event_type']}",
    ),
    Column("revision", table=False),
    Column("event_type", table=False),
    Column("error", text=True),
    Column("parked_at", "parked at", show=lambda p: p["parked_at"][:19].replace("T", " ")),
)


def _show_parked(obj: Context, parked: list[Any]) -> None:
    if not parked and obj.output.format == "table":
        obj.output.note("nothing is parked")
        return
    obj.output.listing(
        "Parked events",
        PARKED_COLUMNS,
        [
            {
                "position": p.position,
                "projection": p.projection,
                "account_id": p.account_id,
                "revision": p.revision,
                "event_type": p.event_type,
                "error": p.error,
                "parked_at": p.parked_at.isoformat(),
            }
            for p in parked
        ],
    )


@app.command("replay-parked")
def projections_replay_parked(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Argument(help="Only this account.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be replayed; write nothing.")
    ] = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Apply parked events again, in order, after a fix; the account then flows again."""
    obj = context(ctx, json_out)
    with handled(obj):
        from ledger.accounts.ids import check_account_id
        from projections.parked import list_parked, replay_parked

        if account is not None:
            check_account_id(account)
        with read_conn(obj) as conn:
            parked = list_parked(conn, account)
            if dry_run:
                if not obj.output.json_mode:
                    obj.output.line(f"Would replay {len(parked)} parked events (dry run):")
                _show_parked(obj, parked)
                return
            if not parked:
                obj.output.note("nothing is parked")
                if obj.output.json_mode:
                    obj.output.json({"replayed": 0, "still_parked": 0})
                return
            confirm(obj, f"Replay {len(parked)} parked events?", yes)
            replay_parked(conn, account)
            still = list_parked(conn, account)
        if obj.output.json_mode:
            obj.output.json({"replayed": len(parked) - len(still), "still_parked": len(still)})
        else:
            obj.output.line(f"Replayed parked events; {len(still)} are still parked.")
        if still:
            fail(
                f"{len(still)} events are still parked (see `ledger projections status`)",
                ExitCode.CHECK_FAILED,
            )
