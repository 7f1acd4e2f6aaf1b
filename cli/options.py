"""Options that several commands share, as typer `Annotated` types."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.render import FORMATS, Output

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Wait until every projection includes this write.")
]
TxOpt = Annotated[
    str | None,
    typer.Option("--tx", help="Client transaction id (idempotency key); generated if absent."),
]
DescOpt = Annotated[str, typer.Option("--description", "-d", help="Shown on the statement.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format", metavar="table|json|csv", help="Output format; --json is --format json."
    ),
]


def use_format(output: Output, fmt: str | None, json_out: bool) -> str:
    """Set the output's format from `--format` and `--json` (its short form) and return it;
    an unknown format, or `--json` with another `--format`, is an input error."""
    from cli.errors import fail

    chosen = "json" if json_out and fmt is None else (fmt or "table").lower()
    if chosen not in FORMATS:
        fail(f"--format is table, json or csv, not {fmt!r}")
    if json_out and chosen != "json":
        fail(f"--json is --format json: it contradicts --format {chosen}; give one of them")
    output.format = chosen
    return chosen


WaitForRevisionOpt = Annotated[
    bool,
    typer.Option(
        "--wait-for-revision",
        help="With --min-revision: wait for a revision the event store does not have yet.",
    ),
]
FromOpt = Annotated[
    str | None,
    typer.Option("--from", help="First day, inclusive: 2026-11-26, 2026-11, today, yesterday."),
]
ToOpt = Annotated[
    str | None,
    typer.Option("--to", help="Last day, inclusive: 2026-11-30, 2026-11 (its last day), today."),
]
