"""The app's global options: accepted anywhere on the line, --version, shell completion."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from cli.main import hoist_global_options
from tests.support.cli import Cli


def test_version_prints_the_installed_version(bare_cli: Cli) -> None:
    result = bare_cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"ledger {version('ledger')}\n"


@pytest.mark.parametrize(
    "flags",
    [("--debug",), ("--no-color",), ("--now", "2026-02-10T12:00:00Z"), ("--now=2026-02-10",)],
)
def test_global_options_are_accepted_after_the_subcommand(
    cli: Cli, account: str, flags: tuple[str, ...]
) -> None:
    result = cli("balance", account, *flags, "--json")
    assert result.exit_code == 0, result.stderr
    assert '"balance": "100.00"' in result.stdout


def test_a_global_option_after_the_subcommand_still_takes_effect(bare_cli: Cli) -> None:
    result = bare_cli("balance", "acc-1", "--now", "garbage")
    assert result.exit_code == 2
    assert "invalid configuration: --now: 'garbage' is not an ISO time" in result.stderr


def test_hoisting_stops_at_the_double_dash_and_keeps_option_values() -> None:
    args = ["deposit", "a", "1", "--debug", "--now", "2026-01-01", "--", "--no-color"]
    assert hoist_global_options(args) == [
        "--debug",
        "--now",
        "2026-01-01",
        "deposit",
        "a",
        "1",
        "--",
        "--no-color",
    ]


def test_shell_completion_can_be_installed(bare_cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    # typer names the shell from the process tree (shellingham), which a test run started
    # outside any shell does not have: the shell is given here, as a terminal's would be found.
    import shellingham

    monkeypatch.setattr(shellingham, "detect_shell", lambda *a, **k: ("bash", "/bin/bash"))
    assert "--install-completion" in bare_cli("--help").stdout
    script = bare_cli("--show-completion")
    assert script.exit_code == 0
    assert "_LEDGER_COMPLETE=complete_bash" in script.stdout
