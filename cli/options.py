"""Options that several commands share, as typer `Annotated` types."""

from __future__ import annotations

from typing import Annotated

import typer

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
