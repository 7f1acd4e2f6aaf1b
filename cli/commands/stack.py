"""Local stack commands: up, down, status, logs, demo."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated, Any

import typer

from cli.context import context, local_stack
from cli.errors import ExitCode, fail, handled
from cli.options import FormatOpt, JsonOpt, use_format
from cli.render import Column
from cli.settings import Settings

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


SERVICE_COLUMNS = (
    Column("name", "service"),
    Column("state"),
    Column("pid", right=True),
    Column("address"),
    Column("detail", text=True),
)


@app.command("status", rich_help_panel=PANEL)
def stack_status(ctx: typer.Context, fmt: FormatOpt = None, json_out: JsonOpt = False) -> None:
    """Each service and the projection lag; exits 3 unless every service is healthy. With
    LEDGER_EVENTSTORE_URI/LEDGER_DATABASE_URL set, the configured services are checked.

    CSV lists the services (`ledger projections status --format csv` lists the projections)."""
    obj = context(ctx, json_out)
    with handled(obj):
        use_format(obj.output, fmt, json_out)
        stack = local_stack(obj)
        if obj.settings.embedded:
            services: list[dict[str, Any]] = stack.as_json()
            title, home = f"Local stack in {obj.settings.home}", str(obj.settings.home)
            db_url = stack.database_url() if stack.running("postgres") else None
        else:
            services = external_services(obj.settings)
            title, home = "External services (LEDGER_EVENTSTORE_URI, LEDGER_DATABASE_URL)", None
            db_url = obj.settings.database_url if services[1]["state"] == "reachable" else None
        lag: list[dict[str, Any]] = []
        if db_url:
            from psycopg.errors import UndefinedTable

            from ledger.errors import LedgerError
            from projections.db import connect
            from projections.status import read_status

            # A database no runner has migrated yet has no projections to report.
            with contextlib.suppress(LedgerError, UndefinedTable), connect(db_url) as conn:
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
        obj.output.listing(
            title,
            SERVICE_COLUMNS,
            services,
            document={"home": home, "services": services, "projections": lag},
        )
        if obj.output.format == "table":
            for p in lag:
                obj.output.line(
                    f"{p['projection']}: runner {p['runner']}, lag {p['lag_events']} events, "
                    f"{'caught up' if p['caught_up'] else 'not caught up'}, {p['parked']} parked"
                )
        if any(s["state"] not in ("running", "reachable") for s in services):
            raise typer.Exit(code=ExitCode.UNAVAILABLE)


def external_services(settings: Settings) -> list[dict[str, Any]]:
    """The configured event store and database, each reachable or not (with why not); the
    addresses shown carry no credentials."""
    from psycopg.conninfo import conninfo_to_dict

    from ledger.errors import LedgerError
    from ledger.eventstore import AccountEventStore, redact_credentials
    from projections.db import connect

    esdb_uri, db_url = settings.eventstore_uri or "", settings.database_url or ""

    def probe_eventstore() -> None:
        store = AccountEventStore.connect(esdb_uri, pipelined=False)
        try:
            store.commit_position()
        finally:
            store.close()

    def probe_database() -> None:
        with connect(db_url) as conn:
            conn.execute("SELECT 1")

    try:
        db = conninfo_to_dict(db_url)
        db_address = f"{db.get('host', 'localhost')}:{db.get('port', 5432)}/{db.get('dbname', '')}"
    except Exception:
        db_address = "(not a valid PostgreSQL URL)"
    esdb_address = redact_credentials(esdb_uri).split("://", 1)[-1].rsplit("@", 1)[-1]
    services = []
    for name, address, probe in (
        ("eventstore", esdb_address.split("?", 1)[0], probe_eventstore),
        ("postgres", db_address, probe_database),
    ):
        try:
            probe()
            state, detail = "reachable", ""
        except LedgerError as exc:
            shown = redact_credentials(redact_credentials(str(exc), esdb_uri), db_url)
            state, detail = "unreachable", shown
        services.append(
            {"name": name, "pid": None, "address": address, "state": state, "detail": detail}
        )
    return services


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
        path = stack.log_file(service)
        if not follow:
            tail = stack.log_tail(service, lines)
            if tail:
                sys.stdout.write(tail + "\n")
            else:
                obj.output.note(f"{service} has logged nothing yet ({path})")
            return
        from ledger.errors import ServiceUnavailableError

        try:
            f = open(path, errors="replace")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise ServiceUnavailableError(f"{service} has no log yet ({path})") from None
        try:
            with f:
                # The tail and the lines after it come from one open file: none is lost between.
                tail_lines = f.read().splitlines()[-lines:]
                if tail_lines:
                    sys.stdout.write("\n".join(tail_lines) + "\n")
                    sys.stdout.flush()
                while True:
                    chunk = f.read()
                    if chunk:
                        sys.stdout.write(chunk)
                        sys.stdout.flush()
                    else:
                        time.sleep(0.2)
        except KeyboardInterrupt:
            # Ctrl-C is how -f ends: quietly, with the shell's code for SIGINT.
            raise typer.Exit(code=ExitCode.INTERRUPTED) from None


@app.command(rich_help_panel=PANEL)
def demo(
    ctx: typer.Context,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the demo's stack running, to explore it.")
    ] = False,
) -> None:
    """A narrated tour in a throw-away home of its own (your ledger is not touched): open,
    deposit, refusals, idempotency, reversal, transfer, balances, statement, rebuild,
    verify."""
    from cli.demo import run_demo

    obj = context(ctx)
    with handled(obj):
        run_demo(obj, keep)
