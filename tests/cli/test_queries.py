"""Queries through CliRunner: balance, statement (table, JSON, CSV), accounts, verify."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.cli import Cli
from tests.support.ids import new_account_id

BALANCE_KEYS = [
    "account_id",
    "balance",
    "currency",
    "revision",
    "consistent",
    "available",
    "overdraft_limit",
    "status",
    "as_of",
]
POSTING_KEYS = [
    "revision",
    "kind",
    "amount",
    "balance_after",
    "transaction_id",
    "description",
    "occurred_at",
    "transfer_id",
    "counterparty",
    "reverses",
    "reversed_by",
]
STATEMENT_KEYS = [
    "account_id",
    "currency",
    "from",
    "to",
    "opening_balance",
    "closing_balance",
    "postings",
    "omitted",
]
LAG_KEYS = ["lag_events", "runner"]  # a projection read says how far behind it is
LIVE = {"lag_events": 0, "runner": "running"}  # what the session stack's live runner gives
CSV_HEADER = [
    "revision",
    "occurred_at",
    "kind",
    "amount",
    "balance_after",
    "currency",
    "transaction_id",
    "description",
    "transfer_id",
    "counterparty",
    "reverses",
    "reversed_by",
]


def without_lag(doc: Any) -> Any:
    """A projection read's JSON without its lag fields, to compare with a write-model read."""
    if isinstance(doc, list):
        return [without_lag(d) for d in doc]
    return {k: v for k, v in doc.items() if k not in LAG_KEYS}


@dataclass
class Dated:
    """An account with postings on 2026-01-10 (+100), 2026-01-20 (-30) and 2026-02-05 (+5)."""

    account: str
    positions: list[int]


@pytest.fixture
def dated(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Dated:
    account = new_account_id("dated")
    steps = [
        ("2026-01-10T09:00:00Z", ["open", account, "--owner", "D", "--currency", "EUR"]),
        ("2026-01-10T10:00:00Z", ["deposit", account, "100", "--tx", "a", "-d", "Salary"]),
        ("2026-01-20T10:00:00Z", ["withdraw", account, "30", "--tx", "b", "-d", "Rent"]),
        ("2026-02-05T10:00:00Z", ["deposit", account, "5", "--tx", "c", "--wait"]),
    ]
    positions = []
    for now, args in steps:
        monkeypatch.setenv("LEDGER_NOW", now)
        positions.append(cli.json(*args)["commit_position"])
    monkeypatch.setenv("LEDGER_NOW", "2026-02-10T12:00:00Z")
    return Dated(account, positions)


def test_balance_prints_the_documented_json(cli: Cli, account: str) -> None:
    result = cli.ok("balance", account, "--json")
    doc = json.loads(result.stdout)
    assert list(doc) == BALANCE_KEYS + LAG_KEYS
    assert doc == {
        "account_id": account,
        "balance": "100.00",
        "currency": "EUR",
        "revision": 1,
        "consistent": False,
        "available": "100.00",
        "overdraft_limit": "0.00",
        "status": "open",
        "as_of": None,
        **LIVE,
    }


def test_balance_in_words_names_its_source(cli: Cli, account: str) -> None:
    assert cli.ok("balance", account).stdout.strip() == (
        f"{account}: 100.00 EUR (available 100.00, open, revision 1, projection)"
    )
    assert cli.ok("balance", account, "--consistent").stdout.strip() == (
        f"{account}: 100.00 EUR (available 100.00, open, revision 1, write model)"
    )


def test_consistent_balance_folds_the_write_model(cli: Cli, account: str) -> None:
    cli.ok("withdraw", account, "0.01", "--tx", f"{account}-w")
    doc = cli.json("balance", account, "--consistent")
    # One shape whatever the flags: the write model has no lag to report.
    assert list(doc) == BALANCE_KEYS + LAG_KEYS
    assert (doc["lag_events"], doc["runner"]) == (None, None)
    assert (doc["balance"], doc["revision"], doc["consistent"]) == ("99.99", 2, True)


def test_min_revision_waits_for_the_projection(cli: Cli, account: str) -> None:
    cli.ok("deposit", account, "1", "--tx", f"{account}-m")
    doc = cli.json("balance", account, "--min-revision", "2")
    assert (doc["balance"], doc["revision"]) == ("101.00", 2)


def test_min_revision_timing_out_exits_4_with_the_balance_on_stdout(
    cli: Cli, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_WAIT_TIMEOUT", "0.3")
    wait = "--wait-for-revision"  # revision 99 does not exist: waiting is asked for explicitly
    result = cli("balance", account, "--min-revision", "99", wait, "--json")
    assert result.exit_code == 4
    assert json.loads(result.stdout)["revision"] == 1
    assert "did not reach revision 99" in result.stderr
    statement = cli("statement", account, "--min-revision", "99", wait, "--format", "json")
    assert statement.exit_code == 4
    assert [p["revision"] for p in json.loads(statement.stdout)["postings"]] == [1]


@pytest.mark.parametrize(
    "args",
    [
        ["--consistent", "--min-revision", "1"],
        ["--consistent", "--as-of", "2026-01-01"],
        ["--as-of", "5000"],
        ["--as-of", "last-week"],
        ["--as-of", "position:x"],
        ["--as-of", "2026-13-01"],
        ["--as-of", "-5"],
    ],
)
def test_contradictory_or_bad_balance_options_exit_2(
    cli: Cli, account: str, args: list[str]
) -> None:
    result = cli("balance", account, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")


def test_balance_of_an_unknown_account_exits_1(cli: Cli) -> None:
    result = cli("balance", new_account_id("none"))
    assert result.exit_code == 1
    assert "no such account" in result.stderr


def test_balance_as_of_a_date_is_the_end_of_that_day(cli: Cli, dated: Dated) -> None:
    cases = {"2026-01-10": ("100.00", 1), "2026-01-31": ("70.00", 2)}
    for day, expected in cases.items():
        doc = cli.json("balance", dated.account, "--as-of", day)
        assert (doc["balance"], doc["revision"]) == expected, day
        assert doc["as_of"] == day


def test_balance_as_of_a_commit_position(cli: Cli, dated: Dated) -> None:
    doc = cli.json("balance", dated.account, "--as-of", f"position:{dated.positions[2]}")
    assert (doc["balance"], doc["revision"], doc["as_of"]) == (
        "70.00",
        2,
        f"position:{dated.positions[2]}",
    )
    opened = f"position:{dated.positions[1] - 1}"  # opened, nothing posted yet: revision 0
    before = cli.json("balance", dated.account, "--as-of", opened)
    assert (before["balance"], before["revision"]) == ("0.00", 0)


def test_statement_json_without_a_period_is_the_same_object(cli: Cli, dated: Dated) -> None:
    doc = cli.json("statement", dated.account)
    assert list(doc) == STATEMENT_KEYS + LAG_KEYS
    assert {k: v for k, v in doc.items() if k != "postings"} == {
        "account_id": dated.account,
        "currency": "EUR",
        "from": None,
        "to": None,
        "opening_balance": "0.00",
        "closing_balance": "75.00",
        "omitted": 0,
        **LIVE,
    }
    postings = doc["postings"]
    assert [list(p) for p in postings] == [POSTING_KEYS] * 3
    assert postings[1] == {
        "revision": 2,
        "kind": "withdrawal",
        "amount": "-30.00",
        "balance_after": "70.00",
        "transaction_id": "b",
        "description": "Rent",
        "occurred_at": "2026-01-20T10:00:00+00:00",
        "transfer_id": None,
        "counterparty": None,
        "reverses": None,
        "reversed_by": None,
    }
    assert cli.json("statement", dated.account, "--consistent") == without_lag(doc)
    assert json.loads(cli.ok("statement", dated.account, "--format", "json").stdout) == doc


def test_statement_json_with_a_period_has_opening_and_closing(cli: Cli, dated: Dated) -> None:
    doc = cli.json("statement", dated.account, "--from", "2026-01-15", "--to", "2026-01-31")
    assert list(doc) == STATEMENT_KEYS + LAG_KEYS
    assert (doc["from"], doc["to"], doc["omitted"]) == ("2026-01-15", "2026-01-31", 0)
    assert (doc["opening_balance"], doc["closing_balance"]) == ("100.00", "70.00")
    assert [p["transaction_id"] for p in doc["postings"]] == ["b"]
    consistent = cli.json(
        "statement", dated.account, "--from", "2026-01-15", "--to", "2026-01-31", "--consistent"
    )
    assert consistent == without_lag(doc)


def test_the_dates_are_inclusive(cli: Cli, dated: Dated) -> None:
    doc = cli.json("statement", dated.account, "--from", "2026-01-10", "--to", "2026-01-20")
    assert [p["revision"] for p in doc["postings"]] == [1, 2]


def test_a_period_without_to_ends_today_and_says_so(
    cli: Cli, dated: Dated, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_NOW", "2026-01-25T08:00:00Z")
    doc = cli.json("statement", dated.account, "--from", "2026-01-15")
    assert (doc["from"], doc["to"]) == ("2026-01-15", "2026-01-25")
    assert [p["revision"] for p in doc["postings"]] == [2]
    assert doc["closing_balance"] == "70.00"
    title = cli.ok("statement", dated.account, "--from", "2026-01-15").stdout.splitlines()[0]
    assert "from 2026-01-15 to 2026-01-25" in title


def test_limit_keeps_the_most_recent_postings_and_counts_the_others(cli: Cli, dated: Dated) -> None:
    doc = cli.json("statement", dated.account, "--limit", "2")
    assert [p["revision"] for p in doc["postings"]] == [2, 3]
    assert (doc["omitted"], doc["opening_balance"], doc["closing_balance"]) == (
        1,
        "100.00",
        "75.00",
    )
    consistent = cli.json("statement", dated.account, "--limit", "2", "--consistent")
    assert consistent == without_lag(doc)
    assert cli.json("statement", dated.account, "--limit", "3")["omitted"] == 0


def test_a_limited_table_says_what_it_left_out_and_what_its_opening_is(
    cli: Cli, dated: Dated
) -> None:
    result = cli.ok("statement", dated.account, "--from", "2026-01-01", "--limit", "2")
    assert result.stdout.splitlines()[0] == (
        f"Statement of {dated.account} (EUR) from 2026-01-01 to 2026-02-10 — the last 2 "
        "postings, 1 earlier not shown: balance before them 100.00, closing 75.00"
    )
    assert result.stderr == (
        "note: 1 earlier posting is not shown (--limit 2); the opening balance is the balance "
        "before the first posting shown\n"
    )
    csv_out = cli.ok("statement", dated.account, "--limit", "1", "--format", "csv")
    assert "2 earlier postings are not shown (--limit 1)" in csv_out.stderr
    whole = cli.ok("statement", dated.account, "--from", "2026-01-01", "--limit", "3")
    assert "— opening 0.00, closing 75.00" in whole.stdout.splitlines()[0]
    assert whole.stderr == ""


def test_a_period_cut_by_limit_opens_just_before_its_first_line(cli: Cli, dated: Dated) -> None:
    doc = cli.json("statement", dated.account, "--from", "2026-01-01", "--limit", "2")
    assert [p["revision"] for p in doc["postings"]] == [2, 3]
    assert (doc["opening_balance"], doc["closing_balance"], doc["omitted"]) == (
        "100.00",
        "75.00",
        1,
    )
    consistent = cli.json(
        "statement", dated.account, "--from", "2026-01-01", "--limit", "2", "--consistent"
    )
    assert consistent == without_lag(doc)


@pytest.mark.parametrize(
    "args",
    [
        ["--from", "2026-1-5"],
        ["--to", "31/01/2026"],
        ["--from", "2026-02-01", "--to", "2026-01-01"],
        ["--format", "xml"],
        ["--consistent", "--min-revision", "1"],
    ],
)
def test_bad_statement_options_exit_2(cli: Cli, account: str, args: list[str]) -> None:
    result = cli("statement", account, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_csv_has_a_header_row_and_escapes_formulas(cli: Cli, account: str) -> None:
    descriptions = ["=1+2", "@SUM(A1:A9)", "+31 6 1234", "-2+3", "Groceries, fresh"]
    for i, text in enumerate(descriptions):
        cli.ok("deposit", account, "1", "--tx", f"{account}-{i}", "-d", text, "--wait")
    rows = list(csv.reader(io.StringIO(cli.ok("statement", account, "--format", "csv").stdout)))
    assert rows[0] == CSV_HEADER
    assert [r[7] for r in rows[2:]] == [
        "'=1+2",
        "'@SUM(A1:A9)",
        "'+31 6 1234",
        "'-2+3",
        "Groceries, fresh",
    ]
    # Numbers are written as they are (a negative amount is not a formula).
    assert [r[3] for r in rows[1:3]] == ["100.00", "1.00"]
    assert {r[5] for r in rows[1:]} == {"EUR"}
    # JSON keeps the text exactly as stored.
    postings = cli.json("statement", account)["postings"]
    assert [p["description"] for p in postings[1:]] == descriptions


def test_rich_markup_in_user_text_is_shown_literally(cli: Cli) -> None:
    account = new_account_id("mk")
    cli.ok("open", account, "--owner", "[b]Mal[/b]", "--currency", "EUR")
    cli.ok("deposit", account, "2", "--tx", f"{account}-1", "-d", "[red]x[/]", "--wait")
    table = cli.ok("accounts").stdout
    assert "[b]Mal[/b]" in table
    assert "[red]x[/]" in cli.ok("statement", account).stdout
    assert "\x1b[" not in table


def test_accounts_json_lists_each_account(cli: Cli, account: str) -> None:
    docs = cli.json("accounts")
    mine = [d for d in docs if d["account_id"] == account]
    assert mine == [
        {
            "account_id": account,
            "owner": "Test Owner",
            "currency": "EUR",
            "balance": "100.00",
            "overdraft_limit": "0.00",
            "status": "open",
            "revision": 1,
            **LIVE,
        }
    ]


def test_verify_passes_on_a_sound_read_side(cli: Cli, account: str) -> None:
    doc = cli.json("verify")
    assert doc["ok"] is True and doc["violations"] == []
    assert cli.ok("verify").stdout.strip() == "verify: every invariant holds."


def test_verify_exits_5_on_a_violation(
    external_cli: Cli, read_db: Callable[[str, Sequence[Any]], None]
) -> None:
    account = new_account_id("broken")
    read_db(
        "INSERT INTO account_balances (account_id, owner, currency, balance, overdraft_limit,"
        " status, last_revision, last_position, updated_at)"
        " VALUES (%s, 'X', 'EUR', 500, 0, 'open', 1, 1, now())",
        (account,),
    )
    result = external_cli("verify", "--json")
    assert result.exit_code == 5
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    # Nobody projects into this database: its checkpoint is 0, so the row has no stream there.
    # The made-up 5.00 EUR also breaks conservation (money from nowhere).
    assert [(v["table"], v["check"], v["account_id"]) for v in doc["violations"]] == [
        ("account_balances", "extra row", account),
        ("money", "wrong value", None),
    ]
    assert "verify found" in result.stderr
    as_csv = external_cli("verify", "--format", "csv")
    assert as_csv.exit_code == 5
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["table", "check", "account_id", "day", "detail", "message"]
    assert [r[:3] for r in rows[1:]] == [
        ["account_balances", "extra row", account],
        ["money", "wrong value", ""],
    ]


def test_a_lagging_projection_is_said_on_stderr(
    external_cli: Cli, read_db: Callable[[str, Sequence[Any]], None]
) -> None:
    account = new_account_id("lag")
    read_db(
        "INSERT INTO account_balances (account_id, owner, currency, balance, overdraft_limit,"
        " status, last_revision, last_position, updated_at)"
        " VALUES (%s, 'X', 'EUR', 700, 0, 'open', 1, 1, now())",
        (account,),
    )
    read_db(
        "INSERT INTO projection_status (projection, head_position, lag_events, lag_seconds)"
        " VALUES ('balances', 100, 5, 2.5)",
        (),
    )
    read_db(  # a live runner's fresh heartbeat: its recorded lag is current
        "INSERT INTO projection_runners (projection, runner_id, host, pid, started_at,"
        " heartbeat_at, interval_s) VALUES ('balances', gen_random_uuid(), 'h', 1, now(), now(),"
        " 3600)",
        (),
    )
    result = external_cli("balance", account, "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert (doc["balance"], doc["lag_events"], doc["runner"]) == ("7.00", 5, "running")
    assert "balances projection is 5 events (2.5s) behind" in result.stderr
