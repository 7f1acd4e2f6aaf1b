"""`ledger projections status|run|rebuild|replay-parked` through CliRunner and the entry point."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cli.stack import LocalStack, alive
from ledger.accounts.commands import AccountCommand, CommandMeta, OpenAccount, make_command
from ledger.accounts.decider import decide, initial_state
from ledger.accounts.events import encode_metadata, serialise_event
from projections.applier import PROJECTIONS
from projections.db import connect
from tests.support.cli import Cli
from tests.support.ids import new_account_id
from tests.support.stack import LEDGER, ledger_env
from tests.support.waiting import wait_until

STATUS_KEYS = [
    "projection",
    "checkpoint",
    "head_position",
    "lag_events",
    "lag_capped",
    "lag_seconds",
    "caught_up",
    "parked",
    "runner_pid",
    "updated_at",
    "runner",
    "runner_host",
    "heartbeat_at",
    "heartbeat_age_s",
    "checkpoint_at",
    "lag_current",
    "standbys",
]
Execute = Callable[[str, Sequence[Any]], None]


def park(execute: Execute, account: str, *, valid: bool) -> None:
    """Park the opening event of `account` in every projection (valid or unreadable data)."""
    meta = CommandMeta(correlation_id="c-1", causation_id="c-1", actor="test:cli")
    command = make_command(
        OpenAccount,
        {
            "account_id": account,
            "owner": "Parked",
            "currency": "EUR",
            "overdraft_limit": "0",
            "now": datetime(2026, 1, 1, tzinfo=UTC),
            "meta": meta,
        },
    )
    assert isinstance(command, AccountCommand)
    [event] = decide(command, initial_state)
    event_type, data = serialise_event(event)
    if not valid:
        data = b"{not json"
    for name in PROJECTIONS:
        execute(
            "INSERT INTO parked_events (projection, account_id, revision, position, event_id,"
            " event_type, data, metadata, recorded_at, error)"
            " VALUES (%s, %s, 0, 1, %s, %s, %s, %s, now(), 'test')",
            (name, account, uuid.uuid4(), event_type, data, encode_metadata(event, meta)),
        )


def parked_count(database_url: str, account: str) -> int:
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM parked_events WHERE account_id = %s", (account,)
        ).fetchone()
    return int(row[0]) if row else 0


def test_status_json_lists_each_projection(cli: Cli, account: str) -> None:
    docs = cli.json("projections", "status")
    assert [d["projection"] for d in docs] == [*sorted(PROJECTIONS), "process:transfers"]
    assert all(list(d) == STATUS_KEYS for d in docs)
    assert all(d["checkpoint"] > 0 and d["parked"] == 0 and d["runner"] == "running" for d in docs)
    cli.ok("projections", "status", "--health")
    assert "balances" in cli.ok("projections", "status").stdout


def test_health_exits_5_when_something_is_parked(external_cli: Cli, read_db: Execute) -> None:
    park(read_db, new_account_id("parked"), valid=True)
    result = external_cli("projections", "status", "--health")
    assert result.exit_code == 5
    assert "unhealthy" in result.stderr
    # No runner follows this database: its lag is whatever the store holds beyond checkpoint 0.
    assert re.search(r"balances: runner stopped(, lag \d+ events)?, 1 parked", result.stderr)


def test_rebuild_without_yes_exits_2_and_rebuilds_nothing(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import projections.rebuild

    calls: list[object] = []
    monkeypatch.setattr(projections.rebuild, "rebuild", lambda *a, **k: calls.append(a))
    result = cli("projections", "rebuild")
    assert result.exit_code == 2
    assert "pass --yes" in result.stderr
    assert calls == []
    unknown = cli("projections", "rebuild", "nope", "--yes")
    assert unknown.exit_code == 2
    assert "unknown projection 'nope'" in unknown.stderr
    assert calls == []


def test_rebuild_with_yes_verifies_and_swaps(cli: Cli, account: str) -> None:
    doc = cli.json("projections", "rebuild", "balances", "--yes")
    assert doc["projections"] == ["balances"]
    assert doc["events"] > 0
    assert set(doc) >= {"events", "seconds", "swapped_at", "differences_from_live"}
    assert cli.json("balance", account)["balance"] == "100.00"
    assert cli.json("verify")["ok"] is True


def test_replay_parked_with_nothing_parked(external_cli: Cli) -> None:
    assert external_cli.json("projections", "replay-parked") == {"replayed": 0, "still_parked": 0}


def test_replay_parked_without_yes_exits_2_and_changes_nothing(
    external_cli: Cli, read_db: Execute, database_url: str
) -> None:
    account = new_account_id("parked")
    park(read_db, account, valid=True)
    result = external_cli("projections", "replay-parked", account)
    assert result.exit_code == 2
    assert "pass --yes" in result.stderr
    assert parked_count(database_url, account) == len(PROJECTIONS)


def test_replay_parked_applies_a_fixed_event(
    external_cli: Cli, read_db: Execute, database_url: str
) -> None:
    account = new_account_id("parked")
    park(read_db, account, valid=True)
    doc = external_cli.json("projections", "replay-parked", account, "--yes")
    assert doc == {"replayed": len(PROJECTIONS), "still_parked": 0}
    assert parked_count(database_url, account) == 0
    balance = external_cli.json("balance", account)
    assert (balance["balance"], balance["revision"]) == ("0.00", 0)


def test_replay_parked_exits_5_when_events_stay_parked(
    external_cli: Cli, read_db: Execute, database_url: str
) -> None:
    account = new_account_id("parked")
    park(read_db, account, valid=False)
    result = external_cli("projections", "replay-parked", "--yes", "--json")
    assert result.exit_code == 5
    assert json.loads(result.stdout)["still_parked"] == len(PROJECTIONS)
    assert parked_count(database_url, account) == len(PROJECTIONS)


def projections_run(
    tmp_path: Path, stack: LocalStack, database_url: str, **env: str
) -> subprocess.Popen[str]:
    """`ledger projections run` as a process on the stack's event store and the test database."""
    return subprocess.Popen(
        [str(LEDGER), "projections", "run"],
        env=ledger_env(
            tmp_path / "home",
            LEDGER_EVENTSTORE_URI=stack.eventstore_uri(),
            LEDGER_DATABASE_URL=database_url,
            **env,
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_projections_run_catches_up_and_stops_on_sigterm(
    cli: Cli, account: str, stack: LocalStack, database_url: str, tmp_path: Path
) -> None:
    head = cli.json("deposit", account, "1", "--tx", f"{account}-run")["commit_position"]
    proc = projections_run(tmp_path, stack, database_url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with connect(database_url) as conn:
                    rows = conn.execute("SELECT min(position) FROM projection_checkpoints")
                    row = rows.fetchone()
                if row and row[0] is not None and row[0] >= head:
                    break
            except Exception:
                pass  # the runner may still be creating its tables
            time.sleep(0.1)
        else:
            pytest.fail(f"the runner did not catch up: {proc.poll()}")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr


def test_parked_lists_each_parked_event_and_filters_by_projection(
    external_cli: Cli, read_db: Execute
) -> None:
    account = new_account_id("parked")
    park(read_db, account, valid=False)
    docs = external_cli.json("projections", "parked")
    assert [(d["projection"], d["account_id"], d["revision"], d["position"]) for d in docs] == [
        (name, account, 0, 1) for name in sorted(PROJECTIONS)
    ]
    assert {d["error"] for d in docs} == {"test"} and all(d["parked_at"] for d in docs)
    only = external_cli.json("projections", "parked", "--projection", "balances")
    assert [d["projection"] for d in only] == ["balances"]
    table = external_cli.ok("projections", "parked").stdout
    assert "Parked events" in table and "balances" in table


def test_parked_with_an_unknown_projection_exits_2(external_cli: Cli) -> None:
    result = external_cli("projections", "parked", "--projection", "nope")
    assert result.exit_code == 2
    assert "unknown projection 'nope'; choose from balances" in result.stderr


def test_replay_parked_dry_run_says_what_it_would_replay_and_writes_nothing(
    external_cli: Cli, read_db: Execute, database_url: str
) -> None:
    account = new_account_id("parked")
    park(read_db, account, valid=True)
    result = external_cli.ok("projections", "replay-parked", account, "--dry-run")
    assert f"Would replay {len(PROJECTIONS)} parked events (dry run)" in result.stdout
    docs = external_cli.json("projections", "replay-parked", account, "--dry-run")
    assert [d["projection"] for d in docs] == sorted(PROJECTIONS)
    assert parked_count(database_url, account) == len(PROJECTIONS)


def test_run_only_an_unknown_projection_exits_2_listing_the_names(external_cli: Cli) -> None:
    result = external_cli("projections", "run", "--only", "balances,nope")
    assert result.exit_code == 2
    assert (
        "unknown projection 'nope'; choose from balances, statements, daily_totals, transfers"
        in result.stderr
    )


def test_rebuild_per_projection_runs_one_process_each_and_verifies(
    account: str, external_cli: Cli
) -> None:
    doc = external_cli.json("projections", "rebuild", "--per-projection", "--yes")
    assert doc["projections"] == list(PROJECTIONS)
    assert doc["events"] > 0 and doc["swapped_at"] > 0
    assert set(doc["differences_from_live"]) == {t for p in PROJECTIONS.values() for t in p.tables}
    assert external_cli.json("balance", account)["balance"] == "100.00"
    assert external_cli.json("verify")["ok"] is True


def test_run_with_per_projection_runners_starts_one_process_per_projection(
    cli: Cli, account: str, stack: LocalStack, database_url: str, tmp_path: Path
) -> None:
    head = cli.json("deposit", account, "1", "--tx", f"{account}-shards")["commit_position"]
    proc = projections_run(tmp_path, stack, database_url, LEDGER_RUNNERS="per-projection")

    def sharded() -> list[tuple[str, int]]:
        try:
            with connect(database_url) as conn:
                rows = conn.execute(
                    "SELECT r.projection, r.pid FROM projection_runners r"
                    " JOIN projection_checkpoints c USING (projection)"
                    " WHERE r.projection = ANY(%s) AND c.position >= %s ORDER BY 1",
                    (list(PROJECTIONS), head),
                ).fetchall()
        except Exception:
            return []  # the runners may still be creating the tables
        return rows if len(rows) == len(PROJECTIONS) else []

    try:
        rows = wait_until(sharded, what="one caught-up runner per projection", timeout=60)
        pids = {pid for _, pid in rows}
        assert len(pids) == len(PROJECTIONS) and proc.pid not in pids
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert not any(alive(pid) for pid in pids)
