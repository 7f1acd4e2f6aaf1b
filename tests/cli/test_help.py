"""Help everywhere (-h and --help), panels, exit codes in the top-level help, usage errors."""

from __future__ import annotations

import pytest

from tests.support.cli import Cli

COMMANDS = [
    [],
    ["open"],
    ["deposit"],
    ["withdraw"],
    ["reverse"],
    ["set-overdraft"],
    ["close"],
    ["balance"],
    ["statement"],
    ["accounts"],
    ["verify"],
    ["tx"],
    ["journal"],
    ["history"],
    ["export"],
    ["projections"],
    ["projections", "status"],
    ["projections", "run"],
    ["projections", "rebuild"],
    ["projections", "replay-parked"],
    ["up"],
    ["down"],
    ["status"],
    ["logs"],
    ["demo"],
]


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "ledger")
def test_every_command_has_help(bare_cli: Cli, command: list[str], flag: str) -> None:
    result = bare_cli(*command, flag)
    assert result.exit_code == 0, result.stderr
    assert "Usage: ledger" in result.stdout
    assert result.stderr == ""


def test_top_level_help_groups_commands_in_panels_and_lists_exit_codes(bare_cli: Cli) -> None:
    text = " ".join(bare_cli("--help").stdout.split())  # the epilog wraps with the terminal
    for panel in ("Accounts", "Reports", "Lookups", "Projections", "Local stack"):
        assert panel in text
    assert text.index("Examples") < text.index("Accounts")
    for code in ("0 ok", "1 refused", "2 invalid", "3 a service", "4 --wait", "5 a check", "70"):
        assert code in text


def test_statement_help_says_the_dates_are_inclusive(bare_cli: Cli) -> None:
    assert bare_cli("statement", "-h").stdout.count("inclusive") == 2


def test_no_arguments_shows_usage_with_exit_2(bare_cli: Cli) -> None:
    result = bare_cli()
    assert result.exit_code == 2
    assert "Usage: ledger" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["deposit"],
        ["open", "acc-1", "--currency", "EUR"],
        ["balance", "acc-1", "--min-revision", "-1"],
        ["statement", "acc-1", "--limit", "0"],
        ["balance", "acc-1", "--no-such-option"],
    ],
    ids=["unknown-command", "missing-argument", "missing-option", "negative", "zero", "option"],
)
def test_usage_errors_exit_2_on_stderr(bare_cli: Cli, args: list[str]) -> None:
    result = bare_cli(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Usage:" in result.stderr or "Error" in result.stderr
