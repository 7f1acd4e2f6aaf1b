"""Output: JSON and CSV to stdout, tables and notes through rich, amounts as decimal text."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Control characters (except tab and newline) never reach the terminal from a plain line.
CONTROL = {c: None for c in (*range(32), 127) if c not in (9, 10)}


class Output:
    """Where things go: data to stdout, everything else (notes, warnings, errors) to stderr.

    rich is imported on first use only: `ledger balance --json` must start fast."""

    def __init__(self, *, json_mode: bool = False, color: bool = True) -> None:
        self.json_mode = json_mode
        self.no_color = not color or "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb"

    @cached_property
    def out(self) -> Console:
        """The rich console on stdout (tables)."""
        from rich.console import Console

        return Console(file=sys.stdout, no_color=self.no_color, highlight=False, soft_wrap=False)

    @cached_property
    def err(self) -> Console:
        """The rich console on stderr. Sentences are never hard-wrapped: an error stays one
        line that a script can grep, and a terminal wraps long lines by itself."""
        from rich.console import Console

        return Console(file=sys.stderr, no_color=self.no_color, highlight=False, soft_wrap=True)

    def note(self, message: str) -> None:
        """A short sentence for people, on stderr (never markup-interpreted)."""
        from rich.text import Text

        self.err.print(Text(message))

    def error(self, message: str) -> None:
        """One clear sentence on stderr."""
        from rich.text import Text

        self.err.print(Text("error: ", style="bold red") + Text(message))

    def json(self, document: Any) -> None:
        """One JSON document on stdout, never through rich."""
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        sys.stdout.flush()

    def line(self, message: str) -> None:
        """A line of data for people on stdout: plain text, no markup, no control characters
        (written directly, so that a one-line answer needs no rich import)."""
        sys.stdout.write(message.translate(CONTROL) + "\n")
        sys.stdout.flush()

    def table(
        self,
        title: str,
        columns: Sequence[tuple[str, str]],
        rows: Iterable[Sequence[str]],
    ) -> None:
        """A table; `columns` are (header, "left"|"right"); cells are shown exactly as given."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(title), title_justify="left", expand=False)
        for header, justify in columns:
            if justify == "right":
                table.add_column(header, justify="right", no_wrap=True)
            else:
                table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        self.out.print(table)

    def csv(
        self, header: Sequence[str], rows: Iterable[Sequence[str]], text_columns: set[int]
    ) -> None:
        """CSV with a header row. Text cells that a spreadsheet would run as a formula get a
        leading apostrophe (OWASP's advice); numbers are written as they are."""
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(
                [
                    "'" + cell if i in text_columns and cell.startswith(CSV_FORMULA_START) else cell
                    for i, cell in enumerate(row)
                ]
            )
        sys.stdout.flush()


def money(minor: int, currency: str) -> str:
    """Minor units as a decimal string with the currency's decimals."""
    from ledger.money import format_minor_units

    return format_minor_units(minor, currency)


def as_decimal(text: str, currency: str) -> str:
    """A user's (already accepted) amount with the currency's decimals: "70" -> "70.00"."""
    from ledger.money import to_minor_units

    return money(to_minor_units(text, currency, allow_zero=True), currency)
