"""The installed `ledger` entry point and local stacks in a LEDGER_HOME: run, find, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cli.stack import MARKERS, alive

LEDGER = Path(sys.executable).parent / "ledger"
PROJECT = Path(__file__).resolve().parents[2]
TIMEOUT = 120.0  # seconds a subprocess of the entry point may take before the test fails


def ledger_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `ledger` subprocess on a local stack in `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    # A generous --wait: a loaded machine must not turn a slow catch-up into exit 4.
    env.update(LEDGER_HOME=str(home), NO_COLOR="1", LEDGER_WAIT_TIMEOUT="60", **extra)
    return env


def run_ledger(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `ledger` entry point and capture its output."""
    return subprocess.run(
        [str(LEDGER), *args],
        env=env or ledger_env(home),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def stack_pids(home: Path) -> dict[str, int]:
    """The pids the home's pid files name, for the services whose process still runs."""
    files = {
        "eventstore": home / "eventstore.pid",
        "runner": home / "runner.pid",
        "postgres": home / "postgres" / "data" / "postmaster.pid",
    }
    found = {}
    for name, path in files.items():
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if alive(pid) and MARKERS[name] in _cmdline(pid):
            found[name] = pid
    return found


def stop_home(home: Path) -> None:
    """`ledger down`, then kill by pid whatever is still running (no process left behind)."""
    if not home.exists():
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        run_ledger(home, "down")
    for name, pid in stack_pids(home).items():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if name == "postgres":
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown of the postmaster and children
            else:
                os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while stack_pids(home) and time.monotonic() < deadline:
        time.sleep(0.05)
    leftover = stack_pids(home)
    assert not leftover, f"processes left behind in {home}: {leftover}"
