"""CLI figures: wall time of `ledger balance ID --json` as a fresh process on a running local stack.

The stack lives in a temporary LEDGER_HOME (`ledger up`, `ledger down` at the end). Each timed
run is the installed entry point started from scratch, exactly as a user types it. Python's
bytecode cache goes to a temporary PYTHONPYCACHEPREFIX, so a warm-up run compiles every module
once, as on any normal installation (and the source tree stays untouched); the same command in
the inherited environment is recorded too, because some sandboxes set PYTHONDONTWRITEBYTECODE.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.harness import Run, percentile

LEDGER = Path(sys.executable).parent / "ledger"
WARM_UP = 2


def _env(home: Path, pycache: Path | None) -> dict[str, str]:
    """The environment of the `ledger` processes; with `pycache`, bytecode is cached there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_HOME=str(home), NO_COLOR="1")
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _ledger(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(LEDGER), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ledger {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def _timed_balances(env: dict[str, str], account: str, runs: int, expected: str) -> list[float]:
    """Wall times (ms) of `ledger balance ACCOUNT --json`, after the warm-up runs."""
    samples = []
    for i in range(WARM_UP + runs):
        start = time.perf_counter()
        done = _ledger(env, "balance", account, "--json")
        elapsed = (time.perf_counter() - start) * 1000
        if json.loads(done.stdout)["balance"] != expected:
            raise RuntimeError(f"unexpected balance: {done.stdout}")
        if i >= WARM_UP:
            samples.append(elapsed)
    return samples


def imported_modules(env: dict[str, str], account: str) -> set[str]:
    """Every module `ledger balance --json` imports (from `python -X importtime`)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cli.main", "balance", account, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line and "self [us]" not in line
    }


def _kill_leftovers(home: Path) -> None:
    """Last resort when `ledger down` failed: end this stack's processes by their pid files."""
    for name in ("eventstore", "runner"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.killpg(int((home / f"{name}.pid").read_text().split()[0]), signal.SIGKILL)
    with contextlib.suppress(OSError, ValueError, IndexError):
        postmaster = home / "postgres" / "data" / "postmaster.pid"
        os.kill(int(postmaster.read_text().split()[0]), signal.SIGQUIT)


def run(results: Run, full: bool) -> None:
    """Record cli_wall_ms_median (and the same without a bytecode cache)."""
    runs = 41 if full else 15
    postings = 200 if full else 20
    with tempfile.TemporaryDirectory(prefix="ledger-cli-bench-") as tmp:
        home = Path(tmp) / "home"
        env = _env(home, Path(tmp) / "pycache")
        try:
            _ledger(env, "up")
            account = f"bench-{uuid.uuid4().hex[:12]}"
            _ledger(env, "open", account, "--owner", "Bench", "--currency", "EUR")
            for i in range(postings - 1):
                _ledger(env, "deposit", account, "1.50", "--tx", f"{account}-{i}")
            _ledger(env, "deposit", account, "1.50", "--tx", f"{account}-last", "--wait")
            expected = f"{postings * 1.5:.2f}"

            samples = _timed_balances(env, account, runs, expected)
            note = (
                f"`ledger balance ACCOUNT --json`, {runs} fresh processes after {WARM_UP} warm-up, "
                f"account of {postings} postings; min {min(samples):.0f} ms, "
                f"p90 {percentile(samples, 90):.0f} ms"
            )
            results.record("cli_wall_ms_median", statistics.median(samples), note)

            as_is = _timed_balances(_env(home, None), account, runs, expected)
            no_write = os.environ.get("PYTHONDONTWRITEBYTECODE")
            results.record(
                "cli_wall_ms_median_env_as_is",
                statistics.median(as_is),
                "the same in the inherited environment"
                + (
                    " (PYTHONDONTWRITEBYTECODE is set: modules without a cached .pyc are "
                    "compiled in every run)"
                    if no_write
                    else ""
                ),
            )

            modules = imported_modules(env, account)
            heavy = sorted(m for m in modules if m.split(".")[0] in ("esdbclient", "grpc"))
            results.record(
                "cli_balance_event_store_client_modules",
                len(heavy),
                "modules of esdbclient/grpc that `ledger balance` imports (should be 0)"
                + (f": {', '.join(heavy[:5])}" if heavy else ""),
            )
        finally:
            try:
                _ledger(env, "down")
            except Exception:
                _kill_leftovers(home)
                raise


if __name__ == "__main__":
    quick = Run(mode="quick")
    run(quick, full="--full" in sys.argv)
    print(json.dumps(quick.figures, indent=2))
