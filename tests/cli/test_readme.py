"""The README is the user's manual: every command `ledger --help` lists is in it, and the CSV
headers it promises are the ones the commands write."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from cli.main import app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def command_lines(group: Any, prefix: str = "ledger") -> list[str]:
    """`ledger NAME` for each visible command, `ledger GROUP NAME` inside a group (typer's
    groups, of the click it bundles)."""
    found = []
    ctx = group.context_class(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        if hasattr(command, "list_commands"):
            found += command_lines(command, f"{prefix} {name}")
        else:
            found.append(f"{prefix} {name}")
    return found


def test_every_command_of_the_help_is_in_the_readme() -> None:
    commands = command_lines(typer.main.get_command(app))
    assert len(commands) > 20 and "ledger projections status" in commands

    missing = missing_from(README, commands)

    assert missing == [], f"commands of `ledger --help` the README does not show: {missing}"


def missing_from(readme: str, commands: list[str]) -> list[str]:
    """The commands the text never shows as code (`ledger NAME …`)."""
    return [c for c in commands if not re.search(rf"`{re.escape(c)}[ `]", readme)]


def test_the_check_finds_a_command_the_readme_only_mentions_in_passing() -> None:
    readme = "| `ledger projections status [--health]` | … |\nthe ledger export command"

    assert missing_from(readme, ["ledger projections status", "ledger export"]) == ["ledger export"]


def readme_csv_header(command: str) -> list[str]:
    match = re.search(rf"^- `{re.escape(command)}`: [^`\n]*`([a-z_,]+)`$", README, re.MULTILINE)
    assert match, f"the README gives no CSV header for {command}"
    return match.group(1).split(",")


def test_the_readme_csv_headers_are_the_commands_columns() -> None:
    from cli.commands.reports import ACCOUNT_COLUMNS, BALANCE_COLUMNS, VIOLATION_COLUMNS
    from cli.commands.stack import SERVICE_COLUMNS
    from cli.commands.transfers import TRANSFER_COLUMNS
    from cli.statements import STATEMENT_COLUMNS

    for command, columns in (
        ("balance", BALANCE_COLUMNS),
        ("statement", STATEMENT_COLUMNS),
        ("accounts", ACCOUNT_COLUMNS),
        ("transfers", TRANSFER_COLUMNS),
        ("status", SERVICE_COLUMNS),
        ("verify", VIOLATION_COLUMNS),
    ):
        assert readme_csv_header(command) == [c.key for c in columns], command
