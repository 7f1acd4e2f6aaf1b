"""The `ledger` command line: the app, its global options and its command groups."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cli.commands import accounts, lookups, projections, reports, stack, transfers
from cli.context import Context
from cli.errors import EXIT_CODES_HELP, ExitCode
from cli.render import Output
from cli.settings import Settings, parse_time

# The app's own options, with whether each takes a value: accepted anywhere on the line.
GLOBAL_OPTIONS = {"--no-color": False, "--debug": False, "--now": True}


def hoist_global_options(args: list[str]) -> list[str]:
    """The arguments with the global options moved in front of the subcommand (not past `--`)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            takes = GLOBAL_OPTIONS[name] and "=" not in arg
            front += args[i : i + 1 + takes]
            i += 1 + takes
            continue
        rest.append(arg)
        i += 1
    return front + rest


class LedgerGroup(TyperGroup):
    """The top-level group: global options are accepted after the subcommand too."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))


def show_version(value: bool) -> None:
    """--version: the installed ledger's version, then exit."""
    if value:
        from importlib.metadata import version

        typer.echo(f"ledger {version('ledger')}")
        raise typer.Exit()


app = typer.Typer(
    cls=LedgerGroup,
    name="ledger",
    help="An event-sourced banking ledger: commands on EventStoreDB, queries on PostgreSQL.\n\n"
    "Examples:  ledger open alice --owner 'Alice' --currency EUR · "
    "ledger deposit alice 100.00 --wait · ledger balance alice · ledger statement alice",
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
# Without a name, a group's commands join the top level (in this order, each in its panel).
app.add_typer(accounts.app)
app.add_typer(transfers.app)
app.add_typer(reports.app)
app.add_typer(lookups.app)
app.add_typer(stack.app)
app.add_typer(projections.app, name="projections", rich_help_panel="Projections")


@app.callback()
def main_options(
    ctx: typer.Context,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    now: Annotated[
        str | None, typer.Option("--now", hidden=True, help="Fix the clock (ISO time).")
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Global options."""
    output = Output(color=not no_color)
    try:
        settings = Settings(now=parse_time(now, "--now")) if now else Settings()
    except Exception as exc:
        output.error(f"invalid configuration: {str(exc).splitlines()[0]}; check LEDGER_* variables")
        raise typer.Exit(code=ExitCode.INVALID) from None
    if (settings.eventstore_uri is None) != (settings.database_url is None):
        output.error(
            "set both LEDGER_EVENTSTORE_URI and LEDGER_DATABASE_URL (external services), "
            "or neither (the local stack)"
        )
        raise typer.Exit(code=ExitCode.INVALID)
    # Library warnings (a best-effort snapshot read that failed, say) are noise on a terminal;
    # the one-sentence error says what matters. --debug shows them.
    logging.getLogger("ledger").setLevel(logging.DEBUG if debug else logging.ERROR)
    ctx.obj = Context(settings, output, debug)
    ctx.call_on_close(ctx.obj.closing.close)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
