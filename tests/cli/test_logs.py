"""`ledger logs`: the runner's log says what it did; an empty log and Ctrl-C on -f are quiet."""

from __future__ import annotations

import select
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import Cli
from tests.support.stack import LEDGER, ledger_env


def test_the_runner_logs_its_start_and_its_catch_up(cli: Cli, account: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        result = cli.ok("logs", "runner", "-n", "1000")
        lines = result.stdout.splitlines()
        caught_up = [line for line in lines if ": caught up at position " in line]
        if caught_up or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert any("INFO projections.runner: balances" in line for line in caught_up), lines
    assert any(": subscribed to $all after position " in line for line in lines), lines


def test_logs_of_a_service_that_logged_nothing_says_so(
    bare_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_HOME", str(tmp_path / "home"))
    result = bare_cli("logs", "runner")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "runner has logged nothing yet" in result.stderr


def _follow_eventstore_log(home: Path) -> subprocess.Popen[str]:
    """`ledger logs eventstore -f -n 1`, once it has printed the last line and follows."""
    proc = subprocess.Popen(
        [str(LEDGER), "logs", "eventstore", "-f", "-n", "1"],
        env=ledger_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a test run started in the background (`cmd &` in a script) passes
        # SIGINT down ignored, and Python then installs no handler for it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline()  # the last line of the log, printed at once
    return proc


def test_logs_follow_prints_new_lines_until_stopped(stack_home: Path) -> None:
    marker = f"followed-{uuid.uuid4().hex}"
    proc = _follow_eventstore_log(stack_home)
    try:
        assert proc.stdout is not None
        with (stack_home / "logs" / "eventstore.log").open("a") as f:
            f.write(marker + "\n")
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "ledger logs -f printed nothing new"
        assert proc.stdout.readline().strip() == marker
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_ctrl_c_ends_logs_follow_quietly_with_130(stack_home: Path) -> None:
    proc = _follow_eventstore_log(stack_home)
    try:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert stderr == ""
