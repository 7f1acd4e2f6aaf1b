"""The installed `ledger` entry point against local stacks in temporary LEDGER_HOMEs."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

from cli.stack import SERVICES
from cli.stack import alive as pid_alive
from tests.support.ids import new_account_id
from tests.support.network import closed_port
from tests.support.stack import ledger_env, run_ledger, stack_pids


def ledger_json(home: Path, *args: str, code: int = 0) -> Any:
    done = run_ledger(home, *args, "--json")
    assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout)


def ledger_ok(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_ledger(home, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def services(home: Path, code: int = 0) -> dict[str, dict[str, Any]]:
    """`ledger status --json`, by service name."""
    doc = ledger_json(home, "status", code=code)
    return {s["name"]: s for s in doc["services"]}


def wait_until_dead(pid: int) -> None:
    deadline = time.monotonic() + 15
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} did not end"
        time.sleep(0.05)


def open_with_70(home: Path) -> str:
    account = new_account_id("ep")
    ledger_ok(home, "open", account, "--owner", "Entry Point", "--currency", "EUR")
    ledger_ok(home, "deposit", account, "70.00", "--tx", f"{account}-1", "--wait")
    return account


def test_up_twice_then_query_down_and_restart_with_the_data_kept(private_home: Path) -> None:
    home = private_home
    first = ledger_ok(home, "up")
    assert first.stdout.strip() == "Started eventstore, postgres, runner."
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert ledger_json(home, "up")["started"] == []

    ports = json.loads((home / "stack.json").read_text())
    status = services(home)
    assert list(status) == list(SERVICES)
    assert {s["state"] for s in status.values()} == {"running"}
    assert all(pid_alive(s["pid"]) for s in status.values())
    assert status["eventstore"]["address"] == f"localhost:{ports['eventstore']}"
    # PostgreSQL has no TCP port: its address is its private socket directory (issue 14).
    assert status["postgres"]["address"] == str((home / "postgres").resolve() / "run")
    assert status["runner"]["address"] is None

    account = open_with_70(home)
    expected = {
        "account_id": account,
        "balance": "70.00",
        "currency": "EUR",
        "revision": 1,
        "consistent": False,
        "available": "70.00",
        "overdraft_limit": "0.00",
        "status": "open",
        "as_of": None,
        "lag_events": 0,
    }
    assert ledger_json(home, "balance", account) == {**expected, "runner": "running"}

    down = ledger_ok(home, "down")
    assert down.stdout.strip() == "Stopped runner, postgres, eventstore."
    for service in status.values():
        assert not pid_alive(service["pid"])
    assert {s["state"] for s in services(home, code=3).values()} == {"stopped"}

    # A port taken while the stack was down: `ledger up` names it and starts nothing.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", ports["eventstore"]))
        holder.listen()
        taken = run_ledger(home, "up")
        assert taken.returncode == 3
        assert f"port {ports['eventstore']} is taken" in taken.stderr
        assert "cannot start eventstore" in taken.stderr
        assert stack_pids(home) == {}

    ledger_ok(home, "up")
    # The new runner may not have beaten yet; the old one said it stopped. Either way: no lag.
    again = ledger_json(home, "balance", account)
    assert {k: v for k, v in again.items() if k != "runner"} == expected
    assert again["runner"] in ("running", "stopped")
    postings = ledger_json(home, "statement", account)["postings"]
    assert [(p["revision"], p["amount"]) for p in postings] == [(1, "70.00")]


def test_queries_keep_answering_when_the_event_store_is_down(private_home: Path) -> None:
    home = private_home
    ledger_ok(home, "up")
    account = open_with_70(home)
    pid = services(home)["eventstore"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until_dead(pid)

    assert ledger_json(home, "balance", account)["balance"] == "70.00"
    assert ledger_json(home, "statement", account)["postings"][0]["amount"] == "70.00"
    shown = run_ledger(home, "status")
    assert shown.returncode != 0
    assert "crashed" in shown.stdout
    after = services(home, code=3)
    assert (after["eventstore"]["state"], after["eventstore"]["pid"]) == ("crashed", pid)
    assert "process gone" in after["eventstore"]["detail"]
    assert after["postgres"]["state"] == "running"


def test_a_stale_pid_file_is_neither_trusted_nor_killed(private_home: Path) -> None:
    home = private_home
    home.mkdir(mode=0o700, parents=True)
    unrelated = subprocess.Popen(["sleep", "300"], start_new_session=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        (home / "eventstore.pid").write_text(f"{unrelated.pid}\n")
        (home / "runner.pid").write_text(f"{gone.pid}\n")
        before = services(home, code=3)
        assert before["eventstore"]["state"] == "crashed"
        assert "stale pid file" in before["eventstore"]["detail"]
        assert before["runner"]["state"] == "crashed"

        ledger_ok(home, "up")
        after = services(home)
        assert {s["state"] for s in after.values()} == {"running"}
        assert after["eventstore"]["pid"] != unrelated.pid
        ledger_ok(home, "down")
        assert unrelated.poll() is None, "ledger down killed a process that was not its own"
    finally:
        unrelated.kill()
        unrelated.wait()


def test_an_unreachable_external_event_store_is_exit_3_and_never_auto_starts(
    private_home: Path,
) -> None:
    env = ledger_env(
        private_home,
        LEDGER_EVENTSTORE_URI=f"esdb://localhost:{closed_port()}?Tls=false",
        LEDGER_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres",
    )
    deposit = run_ledger(private_home, "deposit", "acc-1", "1.00", env=env)
    assert deposit.returncode == 3
    assert "event store" in deposit.stderr
    assert "transaction id: tx-" in deposit.stderr
    balance = run_ledger(private_home, "balance", "acc-1", env=env)
    assert balance.returncode == 3
    assert "PostgreSQL" in balance.stderr
    assert "starting the local stack" not in deposit.stderr + balance.stderr
    assert not (private_home / "stack.json").exists()
    assert stack_pids(private_home) == {}


def test_a_second_up_at_the_same_time_is_told_to_wait(private_home: Path) -> None:
    private_home.mkdir(mode=0o700, parents=True)
    with open(private_home / "stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = run_ledger(private_home, "up")
    assert done.returncode == 3
    assert "another `ledger up` is starting the local stack right now" in done.stderr
    assert stack_pids(private_home) == {}


def test_a_failed_start_shows_the_log_and_stops_what_it_started(private_home: Path) -> None:
    # A file where PostgreSQL's data directory should be makes its start fail after the
    # event store has started.
    (private_home / "postgres").mkdir(parents=True)
    (private_home / "postgres" / "data").write_text("not a directory")
    done = run_ledger(private_home, "up")
    assert done.returncode == 3
    assert "cannot start postgres" in done.stderr
    assert "stopped what had been started" in done.stderr
    assert "Traceback" not in done.stderr
    assert stack_pids(private_home) == {}
    assert {s["state"] for s in services(private_home, code=3).values()} == {"stopped"}


def test_status_after_the_runner_is_killed_says_stale_and_never_caught_up(
    private_home: Path,
) -> None:
    home = private_home
    ledger_ok(home, "up")
    open_with_70(home)
    runner = stack_pids(home)["runner"]
    os.kill(runner, signal.SIGKILL)
    wait_until_dead(runner)

    # The heartbeat goes stale after three missed beats: poll `ledger status` until it says so.
    deadline = time.monotonic() + 30
    while True:
        doc = ledger_json(home, "status", code=3)
        if all(p["runner"] != "running" for p in doc["projections"]):
            break
        assert time.monotonic() < deadline, doc
        time.sleep(0.2)
    assert {p["runner"] for p in doc["projections"]} == {"stale"}
    assert not any(p["caught_up"] for p in doc["projections"])
    text = run_ledger(home, "status")
    assert text.returncode == 3
    assert "balances: runner stale, lag 0 events, not caught up, 0 parked" in text.stdout
    assert "caught up," not in text.stdout.replace("not caught up,", "")
