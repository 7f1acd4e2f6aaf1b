"""Local stack commands: up, down, status, logs, demo."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated, Any

import typer

from cli.context import context, local_stack
from cli.errors import ExitCode, fail, handled
from cli.options import JsonOpt

app = typer.Typer()

PANEL = "Local stack"


@app.command(rich_help_panel=PANEL)
def up(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Start the local stack (esdblite, PostgreSQL, projection runner) — idempotent."""
    obj = context(ctx, json_out)
    with handled(obj):
        if not obj.settings.embedded:
            fail("external services are configured (LEDGER_EVENTSTORE_URI); nothing to start")
        stack = local_stack(obj)
        started = stack.up(note=obj.output.note)
        if obj.output.json_mode:
            obj.output.json({"started": started, "services": stack.as_json()})
        else:
            obj.output.line(
                f"Started {', '.join(started)}." if started else "The local stack is already up."
            )


@app.command(rich_help_panel=PANEL)
def down(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Stop the local stack cleanly; data is kept."""
    obj = context(ctx, json_out)
    with handled(obj):
        stack = local_stack(obj)
        stopped = stack.down()
        if obj.output.json_mode:
            obj.output.json({"stopped": stopped})
        else:
            obj.output.line(f"Stopped {', '.join(stopped)}." if stopped else "Nothing was running.")


@app.command("status", rich_help_panel=PANEL)
def stack_status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Each service and the projection lag; exits 3 unless every service is healthy."""
    obj = context(ctx, json_out)
    with handled(obj):
        stack = local_stack(obj)
        services: list[dict[str, Any]] = stack.as_json()
        lag: list[dict[str, Any]] = []
        if stack.running("postgres"):
            from ledger.errors import LedgerError
            from projections.db import connect
            from projections.status import read_status

            with contextlib.suppress(LedgerError), connect(stack.database_url()) as conn:
                lag = [
                    {
                        "projection": s.projection,
                        "runner": s.runner,
                        "lag_events": s.lag_events,
                        "caught_up": s.caught_up,
                        "parked": s.parked,
                    }
                    for s in read_status(conn)
                ]
        if obj.output.json_mode:
            obj.output.json(
                {"home": str(obj.settings.home), "services": services, "projections": lag}
            )
        else:
            obj.output.table(
                f"Local stack in {obj.settings.home}",
                [
                    ("service", "left"),
                    ("state", "left"),
                    ("pid", "right"),
                    ("address", "left"),
                    ("detail", "left"),
                ],
                [
                    [s["name"], s["state"], str(s["pid"] or ""), s["address"] or "", s["detail"]]
                    for s in services
                ],
            )
            for p in lag:
                obj.output.line(
                    f"{p['projection']}: runner {p['runner']}, lag {p['lag_events']} events, "
                    f"{'caught up' if p['caught_up'] else 'not caught up'}, {p['parked']} parked"
                )
        if any(s["state"] != "running" for s in services):
            raise typer.Exit(code=ExitCode.UNAVAILABLE)


@app.command(rich_help_panel=PANEL)
def logs(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="eventstore, postgres or runner.")] = "runner",
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1)] = 40,
) -> None:
    """Show a service's log (the last lines; -f follows it)."""
    import time

    from cli.stack import SERVICES

    obj = context(ctx)
    with handled(obj):
        if service not in SERVICES:
            fail(f"unknown service {service!r}; choose from {', '.join(SERVICES)}")
        stack = local_stack(obj)
        if not follow:
            sys.stdout.write(stack.log_tail(service, lines) + "\n")
            return
        from ledger.errors import ServiceUnavailableError

        path = stack.log_file(service)
        try:
            f = open(path, errors="replace")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise ServiceUnavailableError(f"{service} has no log yet ({path})") from None
        with f:
            # The tail and the lines after it come from one open file: none is lost between.
            tail = f.read().splitlines()[-lines:]
            sys.stdout.write("\n".join(tail) + "\n")
            sys.stdout.flush()
            while True:
                chunk = f.read()
                if chunk:
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
                else:
                    time.sleep(0.2)


@app.command(rich_help_panel=PANEL)
def demo(
    ctx: typer.Context,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the demo's stack running, to explore it.")
    ] = False,
) -> None:
    """A narrated tour in a throw-away home of its own (your ledger is not touched): open,
    deposit, refusals, idempotency, reversal, balances, statement, rebuild, verify."""
    from cli.demo import run_demo

    obj = context(ctx)
    with handled(obj):
        run_demo(obj, keep)
