"""Lookups through CliRunner: tx, journal, history, export; balance's funds, --as-of and
--min-revision beyond the stream's end; smart dates in statement."""

from __future__ import annotations

import csv
import getpass
import io
import json
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import Cli
from tests.support.ids import new_account_id

ACTOR = f"cli:{getpass.getuser()}"
TX_EVENT_KEYS = [
    "account_id",
    "stream",
    "revision",
    "position",
    "type",
    "kind",
    "amount",
    "currency",
    "balance_after",
    "description",
    "occurred_at",
    "actor",
    "correlation_id",
    "causation_id",
    "transfer_id",
    "counterparty",
    "reverses",
]
HISTORY_KEYS = [
    "revision",
    "position",
    "type",
    "occurred_at",
    "actor",
    "correlation_id",
    "causation_id",
    "transaction_id",
    "what",
]
EXPORT_HEADER = [
    "account_id",
    "revision",
    "position",
    "transaction_id",
    "kind",
    "amount",
    "currency",
    "balance_after",
    "description",
    "occurred_at",
    "transfer_id",
    "counterparty",
]


@dataclass
class Books:
    """Two accounts written on fixed days: `a` (EUR, overdraft 50) and `b` (JPY), with a
    reversed withdrawal; `word` is in two descriptions and nowhere else in the session."""

    a: str
    b: str
    word: str
    positions: dict[str, int]


@pytest.fixture
def books(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Books:
    a, b = new_account_id("books"), new_account_id("books")
    word = new_account_id("word")
    steps = [
        ("2026-01-10T09:00:00Z", "open-a", ["open", a, "--owner", "A", "--currency", "EUR"]),
        ("2026-01-10T09:05:00Z", "open-b", ["open", b, "--owner", "B", "--currency", "JPY"]),
        ("2026-01-10T10:00:00Z", "t1", ["deposit", a, "100", "--tx", "t1", "-d", f"pay {word}"]),
        ("2026-01-20T10:00:00Z", "t2", ["withdraw", a, "30", "--tx", "t2", "-d", "Rent"]),
        ("2026-01-21T10:00:00Z", "t3", ["reverse", a, "t2", "--tx", "t3"]),
        ("2026-02-05T10:00:00Z", "k1", ["deposit", b, "5000", "--tx", "k1", "-d", word.upper()]),
        ("2026-02-06T10:00:00Z", "lim", ["set-overdraft", a, "50"]),
    ]
    positions = {}
    for now, name, args in steps:
        monkeypatch.setenv("LEDGER_NOW", now)
        positions[name] = cli.json(*args)["commit_position"]
    monkeypatch.setenv("LEDGER_NOW", "2026-02-10T12:00:00Z")
    cli.ok("balance", a, "--min-revision", "4")
    cli.ok("balance", b, "--min-revision", "1")
    return Books(a, b, word, positions)


def test_tx_shows_the_events_with_positions_actor_and_what_reversed_them(
    cli: Cli, books: Books
) -> None:
    doc = cli.json("tx", "t2", "--account", books.a)
    assert list(doc) == ["transaction_id", "events", "reversed_by"]
    [event] = doc["events"]
    assert list(event) == TX_EVENT_KEYS
    assert {k: v for k, v in event.items() if k != "correlation_id"} == {
        "account_id": books.a,
        "stream": f"account-{books.a}",
        "revision": 2,
        "position": books.positions["t2"],
        "type": "MoneyWithdrawn",
        "kind": "withdrawal",
        "amount": "-30.00",
        "currency": "EUR",
        "balance_after": "70.00",
        "description": "Rent",
        "occurred_at": "2026-01-20T10:00:00+00:00",
        "actor": ACTOR,
        "causation_id": "t2",
        "transfer_id": None,
        "counterparty": None,
        "reverses": None,
    }
    assert len(event["correlation_id"]) == 32
    assert doc["reversed_by"] == [
        {
            "account_id": books.a,
            "transaction_id": "t3",
            "revision": 3,
            "position": books.positions["t3"],
            "occurred_at": "2026-01-21T10:00:00+00:00",
            "actor": ACTOR,
        }
    ]
    text = cli.ok("tx", "t2", "--account", books.a).stdout
    assert f"t2: withdrawal -30.00 EUR on {books.a} (balance after 70.00)" in text
    assert f"  actor: {ACTOR}\n" in text
    assert f"reversed by t3 on {books.a} (revision 3," in text


def test_tx_of_a_reversal_names_what_it_reverses(cli: Cli, books: Books) -> None:
    [event] = cli.json("tx", "t3", "--account", books.a)["events"]
    assert (event["kind"], event["amount"], event["reverses"]) == ("reversal", "30.00", "t2")


def test_tx_as_csv_is_one_row_per_event_with_every_field(cli: Cli, books: Books) -> None:
    text = cli.ok("tx", "t3", "--account", books.a, "--format", "csv").stdout
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert sorted(header) == sorted(TX_EVENT_KEYS)
    [row] = rows
    event = dict(zip(header, row, strict=True))
    assert (event["kind"], event["amount"], event["reverses"]) == ("reversal", "30.00", "t2")


def test_tx_without_an_account_finds_every_account_with_that_id(cli: Cli, books: Books) -> None:
    shared = new_account_id("shared-tx")  # transaction ids are per account: two may share one
    cli.ok("deposit", books.a, "1", "--tx", shared)
    cli.ok("deposit", books.b, "7", "--tx", shared, "--wait")
    doc = cli.json("tx", shared)
    assert sorted((e["account_id"], e["amount"]) for e in doc["events"]) == sorted(
        [(books.a, "1.00"), (books.b, "7")]
    )


def test_an_unknown_transaction_exits_1(cli: Cli, books: Books) -> None:
    result = cli("tx", "no-such-tx", "--account", books.a)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"error: no such transaction: no-such-tx on account {books.a}\n"
    assert cli("tx", "no-such-tx-anywhere").exit_code == 1


def test_history_says_who_did_what_when(
    cli: Cli, books: Books, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = cli.json("history", books.a)
    assert list(doc) == ["account_id", "events"]
    assert [list(e) for e in doc["events"]] == [HISTORY_KEYS] * 5
    assert [(e["revision"], e["type"], e["transaction_id"], e["what"]) for e in doc["events"]] == [
        (0, "AccountOpened", None, "opened for A in EUR, overdraft limit 0.00"),
        (1, "MoneyDeposited", "t1", f"deposit +100.00 EUR: pay {books.word}"),
        (2, "MoneyWithdrawn", "t2", "withdrawal -30.00 EUR: Rent"),
        (3, "PostingReversed", "t3", "reversal +30.00 EUR (reverses t2): reversal of t2"),
        (4, "OverdraftLimitChanged", None, "overdraft limit 0.00 -> 50.00"),
    ]
    assert {e["actor"] for e in doc["events"]} == {ACTOR}
    assert doc["events"][2]["causation_id"] == "t2"
    assert doc["events"][4]["position"] == books.positions["lim"]
    monkeypatch.setenv("COLUMNS", "200")  # rows on one line each
    table = cli.ok("history", books.a).stdout
    assert "2026-01-20 10:00:00" in table and "withdrawal -30.00 EUR" in table


def test_history_of_an_unknown_account_exits_1(cli: Cli) -> None:
    result = cli("history", new_account_id("none"))
    assert result.exit_code == 1
    assert "no such account" in result.stderr


def test_journal_filters_postings_across_accounts(cli: Cli, books: Books) -> None:
    doc = cli.json("journal", "--search", books.word)
    assert list(doc) == ["postings", "more", "lag_events", "runner"]
    assert doc["more"] is False
    assert [(p["account_id"], p["transaction_id"]) for p in doc["postings"]] == [
        (books.b, "k1"),  # newest first, in $all order; the search ignores case
        (books.a, "t1"),
    ]
    assert doc["postings"][0] == {
        "account_id": books.b,
        "revision": 1,
        "position": books.positions["k1"],
        "transaction_id": "k1",
        "kind": "deposit",
        "amount": "5000",
        "currency": "JPY",
        "balance_after": "5000",
        "description": books.word.upper(),
        "occurred_at": "2026-02-05T10:00:00+00:00",
        "transfer_id": None,
        "counterparty": None,
    }

    def txs(*args: str) -> list[str]:
        doc = cli.json("journal", "--account", books.a, *args)
        return [p["transaction_id"] for p in doc["postings"]]

    assert txs() == ["t3", "t2", "t1"]
    assert txs("--kind", "withdrawal") == ["t2"]
    assert txs("--min", "30", "--max", "30") == ["t3", "t2"]  # magnitudes: -30.00 and +30.00
    assert txs("--min", "30.01") == ["t1"]
    assert txs("--from", "2026-01-15", "--to", "2026-01-20") == ["t2"]
    assert txs("--to", "2026-01") == ["t3", "t2", "t1"]
    large = cli.json("journal", "--search", books.word, "--min", "4000")["postings"]
    assert [p["transaction_id"] for p in large] == ["k1"]  # 5000 JPY, not 100.00 EUR


def test_journal_limit_keeps_the_newest_and_says_more_match(cli: Cli, books: Books) -> None:
    result = cli.ok("journal", "--account", books.a, "--limit", "2", "--json")
    doc = json.loads(result.stdout)
    assert ([p["transaction_id"] for p in doc["postings"]], doc["more"]) == (["t3", "t2"], True)
    assert "showing the newest 2 matching postings; more match" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--kind", "gift"], "--kind is one of deposit, withdrawal"),
        (["--min", "-5"], "--min: the amount '-5' must not have a sign"),
        (["--min", "10", "--max", "5"], "--min 10 is more than --max 5"),
        (["--from", "2026-13"], "--from takes an ISO date"),
        (["--account", "Not An Id"], "account"),
    ],
)
def test_journal_refuses_bad_filters_with_exit_2(cli: Cli, args: list[str], says: str) -> None:
    result = cli("journal", *args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert says in result.stderr


def _mine(books: Books, rows: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [
        (r["account_id"], r["transaction_id"], r["amount"])
        for r in rows
        if r["account_id"] in (books.a, books.b)
    ]


EXPORTED = ["t1", "t2", "t3", "k1"]


def test_export_streams_every_posting_as_jsonl_in_all_order(cli: Cli, books: Books) -> None:
    lines = cli.ok("export").stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert all(list(r) == EXPORT_HEADER for r in rows)
    assert [r["position"] for r in rows] == sorted(r["position"] for r in rows)
    assert _mine(books, rows) == [
        (books.a, "t1", "100.00"),
        (books.a, "t2", "-30.00"),
        (books.a, "t3", "30.00"),
        (books.b, "k1", "5000"),
    ]
    january = [json.loads(line) for line in cli.ok("export", "--to", "2026-01").stdout.splitlines()]
    assert [t for _, t, _ in _mine(books, january)] == ["t1", "t2", "t3"]


def test_export_csv_to_a_private_file(cli: Cli, books: Books, tmp_path: Path) -> None:
    target = tmp_path / "ledger.csv"
    result = cli.ok("export", "--format", "csv", "--output", str(target))
    assert result.stdout == ""
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    rows = list(csv.reader(io.StringIO(target.read_text())))
    assert rows[0] == EXPORT_HEADER
    mine = _mine(books, [dict(zip(EXPORT_HEADER, r, strict=True)) for r in rows[1:]])
    assert [t for _, t, _ in mine] == EXPORTED
    assert not (tmp_path / "ledger.csv.partial").exists()


def test_export_refuses_an_unknown_format(cli: Cli) -> None:
    result = cli("export", "--format", "xml")
    assert (result.exit_code, result.stdout) == (2, "")
    assert "--format is jsonl or csv" in result.stderr


def test_balance_shows_available_funds_and_status(cli: Cli, books: Books) -> None:
    doc = cli.json("balance", books.a)
    assert (doc["balance"], doc["overdraft_limit"], doc["available"], doc["status"]) == (
        "100.00",
        "50.00",
        "150.00",
        "open",
    )
    consistent = cli.json("balance", books.a, "--consistent")
    assert (consistent["available"], consistent["status"]) == ("150.00", "open")
    empty = new_account_id("closed")
    cli.ok("open", empty, "--owner", "C", "--currency", "EUR")
    cli.ok("close", empty, "--yes")
    assert cli.ok("balance", empty, "--min-revision", "1").stdout == (
        f"{empty}: 0.00 EUR (available 0.00, closed, revision 1, projection)\n"
    )


def test_balance_as_of_before_the_account_existed_says_so(cli: Cli, books: Books) -> None:
    result = cli("balance", books.a, "--as-of", "2020-01-01")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: account {books.a} did not exist yet as of 2020-01-01: it was opened on "
        f"2026-01-10T09:00:00+00:00 (position {books.positions['open-a']})\n"
    )
    before = cli("balance", books.a, "--as-of", f"position:{books.positions['open-a'] - 1}")
    assert before.exit_code == 1 and "did not exist yet" in before.stderr


def test_balance_as_of_a_month_or_yesterday(cli: Cli, books: Books) -> None:
    january = cli.json("balance", books.a, "--as-of", "2026-01")
    assert (january["balance"], january["revision"], january["as_of"]) == (
        "100.00",
        3,
        "2026-01-31",
    )
    # Today is 2026-02-10 (LEDGER_NOW); the read models keep no history of limit or status.
    yesterday = cli.json("balance", books.a, "--as-of", "yesterday")
    assert (yesterday["as_of"], yesterday["available"], yesterday["status"]) == (
        "2026-02-09",
        None,
        None,
    )


def test_bare_digits_as_of_are_refused_with_the_explicit_form(cli: Cli, books: Books) -> None:
    result = cli("balance", books.a, "--as-of", "5000")
    assert (result.exit_code, result.stdout) == (2, "")
    assert "--as-of position:5000" in result.stderr


def test_min_revision_beyond_the_stream_fails_at_once_unless_told_to_wait(
    cli: Cli, books: Books, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A timeout the test would notice: without --wait-for-revision, nothing waits for it.
    monkeypatch.setenv("LEDGER_WAIT_TIMEOUT", "600")
    for command in ("balance", "statement"):
        result = cli(command, books.a, "--min-revision", "9")
        assert (result.exit_code, result.stdout) == (4, ""), command
        assert result.stderr == (
            f"error: account {books.a} is at revision 4 in the event store: revision 9 does "
            "not exist yet (add --wait-for-revision to wait up to 600s for a writer to reach "
            "it)\n"
        )
    assert cli.json("balance", books.a, "--min-revision", "4")["revision"] == 4


def test_statement_takes_a_month_for_its_period(cli: Cli, books: Books) -> None:
    doc = cli.json("statement", books.a, "--from", "2026-01", "--to", "2026-01")
    assert (doc["from"], doc["to"]) == ("2026-01-01", "2026-01-31")
    assert [p["transaction_id"] for p in doc["postings"]] == ["t1", "t2", "t3"]


def test_tx_of_a_transfer_id_points_to_transfer_status(cli: Cli, books: Books) -> None:
    transfer, to = new_account_id("trf"), new_account_id("books")
    cli.ok("open", to, "--owner", "T", "--currency", "EUR")
    cli.ok("transfer", books.a, to, "1", "--tx", transfer, "--wait")
    result = cli("tx", transfer)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: {transfer} is a transfer, not a posting: `ledger transfer-status {transfer}` "
        "shows it\n"
    )
