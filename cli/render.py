"""Output: JSON and CSV to stdout, tables and notes through rich, amounts as decimal text."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Control characters (except tab and newline) never reach the terminal from a plain line.
CONTROL = {c: None for c in (*range(32), 127) if c not in (9, 10)}
FORMATS = ("table", "json", "csv")
# Piped or saved, a table is as wide as its widest row: no cell is wrapped or cut.
UNBOUNDED_WIDTH = 1_000_000


@dataclass(frozen=True)
class Column:
    """One field of a listing: its key in each row (the JSON key and the CSV heading) and how
    the table shows it."""

    key: str
    header: str = ""  # the table's heading; the key when empty
    right: bool = False  # numbers: right-aligned, never wrapped
    text: bool = False  # user text: a CSV cell that a spreadsheet would run is guarded
    table: bool = True  # shown in the table; CSV carries every column
    show: Callable[[Mapping[str, Any]], str] | None = None  # the table's cell, if not the value


def plain(value: Any) -> str:
    """A value as a CSV or table cell: nothing for None, true/false for booleans, a list's
    items joined by `;`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ";".join(plain(v) for v in value)
    return str(value)


class Output:
    """Where things go: data to stdout, everything else (notes, warnings, errors) to stderr.

    rich is imported on first use only: `ledger balance --json` must start fast."""

    def __init__(self, *, json_mode: bool = False, color: bool = True) -> None:
        self.format = "json" if json_mode else "table"
        self.no_color = not color or "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb"

    @property
    def json_mode(self) -> bool:
        """Whether the output is one JSON document (`--json` or `--format json`)."""
        return self.format == "json"

    @json_mode.setter
    def json_mode(self, on: bool) -> None:
        self.format = "json" if on else "table"

    @cached_property
    def out(self) -> Console:
        """The rich console on stdout (tables): the terminal's width on a terminal, unbounded
        when piped or saved, so that a long id or description stays on its row's one line."""
        from rich.console import Console

        console = Console(file=sys.stdout, no_color=self.no_color, highlight=False, soft_wrap=False)
        if not console.is_terminal:
            console.width = UNBOUNDED_WIDTH
        return console

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
        """A table under its title; `columns` are (header, "left"|"right"); cells are shown
        exactly as given. On a terminal long text cells fold to fit its width; elsewhere rows
        are as wide as they need (see `out`)."""
        from rich.table import Table
        from rich.text import Text

        # The title is a line of its own: as a table title it would wrap at the table's width.
        self.out.print(Text(title))
        table = Table(expand=False)
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

    def listing(
        self,
        title: str,
        columns: Sequence[Column],
        rows: Sequence[Mapping[str, Any]],
        document: Any = None,
    ) -> None:
        """Rows in the chosen format (`--format`): JSON is `document` (the rows when None),
        CSV every column with a header row, the table the table's columns under `title`."""
        if self.format == "json":
            self.json(list(rows) if document is None else document)
        elif self.format == "csv":
            self.csv(
                [c.key for c in columns],
                [[plain(row.get(c.key)) for c in columns] for row in rows],
                text_columns={i for i, c in enumerate(columns) if c.text},
            )
        else:
            shown = [c for c in columns if c.table]
            self.table(
                title,
                [(c.header or c.key, "right" if c.right else "left") for c in shown],
                [[c.show(row) if c.show else plain(row.get(c.key)) for c in shown] for row in rows],
            )


def money(minor: int, currency: str) -> str:
    """Minor units as a decimal string with the currency's decimals."""
    from ledger.money import format_minor_units

    return format_minor_units(minor, currency)


def as_decimal(text: str, currency: str) -> str:
    """A user's (already accepted) amount with the currency's decimals: "70" -> "70.00"."""
    from ledger.money import to_minor_units

    return money(to_minor_units(text, currency, allow_zero=True), currency)
