"""Valid hostile text: stored and shown byte-identical, CSV formulas defused, nothing broken."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import psycopg
import pytest
from esdbclient import EventStoreDBClient
from typer.testing import Result

from esdblite.process import ServerProcess
from ledger.streams import account_stream

Cli = Callable[..., Result]
FORMULA_START = ("=", "+", "-", "@")  # what a spreadsheet would run (tab and CR are refused)

# (owner, description, transaction id): SQL, rich markup, CSV formulas, quotes, unicode.
CASES = [
    ("'); drop table account_balances; --", "Robert'); DROP TABLE account_statements;--", "t1"),
    ("[bold]x", "oops [/]", "t2"),
    ('=HYPERLINK("http://x","y")', '=HYPERLINK("http://evil.example","click")', "t3"),
    ("+1+1", "@SUM(A1:A9)", "-t4"),
    ("-2+3", "+cmd|' /C calc'!A0", "t5"),
    ('Zoë "Q" O\'Brien', "\"quoted\", with comma; and 'single'", "t6"),
    ("%s %(x)s {0} \\N", "100% \\x00 \\N {} %d", "t7"),
    ("日本語 🐍 e\u0301", "שלום עולם — naïve café ☕", "t8"),
    ("[link=http://x]y[/link]", "[red]alarm[/red] \\[escaped]", "t9"),
    ("<script>alert(1)</script>", "</td><td>&amp; ${jndi:ldap://x}", "t10"),
]


def account_of(index: int) -> str:
    return f"text-{index}"


def csv_cell(text: str) -> str:
    """The CLI's documented CSV protection: a formula-like cell gets one leading apostrophe."""
    return "'" + text if text.startswith(FORMULA_START) else text


@pytest.fixture
def posted(cli: Cli, request: pytest.FixtureRequest) -> tuple[str, str, str, str]:
    """Open an account with the hostile owner and post a deposit with the hostile description."""
    index = request.node.callspec.params["case"]
    owner, description, tx = CASES[index]
    account = account_of(index)
    opened = cli("open", account, "--owner", owner, "--currency", "EUR", "--json")
    assert opened.exit_code == 0, opened.stderr
    deposited = cli("deposit", account, "12.34", f"--tx={tx}", "-d", description, "--wait")
    assert deposited.exit_code == 0, deposited.stderr
    return account, owner, description, tx


@pytest.mark.parametrize("case", range(len(CASES)))
def test_hostile_owner_and_description_are_stored_byte_identical(
    posted: tuple[str, str, str, str],
    case: int,
    esdb: ServerProcess,
    hostile_database_url: str,
) -> None:
    account, owner, description, tx = posted
    with psycopg.connect(hostile_database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT owner FROM account_balances WHERE account_id = %s", (account,)
        ).fetchone()
        line = conn.execute(
            "SELECT transaction_id, description FROM account_statements WHERE account_id = %s",
            (account,),
        ).fetchone()
    assert row == (owner,)
    assert line == (tx, description)
    client = EventStoreDBClient(esdb.uri)
    try:
        events = [json.loads(e.data) for e in client.get_stream(account_stream(account))]
    finally:
        client.close()
    assert events[0]["owner"] == owner
    assert events[1]["description"] == description


@pytest.mark.parametrize("case", range(len(CASES)))
def test_hostile_text_comes_back_verbatim_in_tables_and_json(
    posted: tuple[str, str, str, str], case: int, cli: Cli
) -> None:
    account, owner, description, tx = posted

    accounts = cli("accounts", "--json")
    assert accounts.exit_code == 0, accounts.stderr
    [doc] = [d for d in json.loads(accounts.stdout) if d["account_id"] == account]
    assert doc["owner"] == owner

    table = cli("accounts")
    assert table.exit_code == 0, table.stderr
    assert owner in table.stdout

    for extra in ((), ("--consistent",)):
        statement = cli("statement", account, "--format", "json", *extra)
        assert statement.exit_code == 0, statement.stderr
        [posting] = json.loads(statement.stdout)["postings"]
        assert (posting["transaction_id"], posting["description"]) == (tx, description)

    shown = cli("statement", account)
    assert shown.exit_code == 0, shown.stderr
    assert description in shown.stdout
    assert tx in shown.stdout


@pytest.mark.parametrize("case", range(len(CASES)))
def test_csv_defuses_formulas_with_one_apostrophe_and_keeps_everything_else(
    posted: tuple[str, str, str, str], case: int, cli: Cli
) -> None:
    account, _owner, description, tx = posted
    result = cli("statement", account, "--format", "csv")
    assert result.exit_code == 0, result.stderr
    header, *rows = list(csv.reader(io.StringIO(result.stdout)))
    assert len(rows) == 1
    cells = dict(zip(header, rows[0], strict=True))
    assert cells["description"] == csv_cell(description)
    assert cells["transaction_id"] == csv_cell(tx)
    assert cells["amount"] == "12.34" and cells["balance_after"] == "12.34"
    assert cells["kind"] == "deposit" and cells["revision"] == "1"


def test_nothing_broke_tables_exist_and_verify_passes(
    cli: Cli, hostile_database_url: str, esdb: ServerProcess
) -> None:
    # Post every case (idempotently: the same transaction ids again) so the check sees them all.
    for index, (owner, description, tx) in enumerate(CASES):
        account = account_of(index)
        assert cli("open", account, "--owner", owner, "--currency", "EUR").exit_code == 0
        result = cli("deposit", account, "12.34", f"--tx={tx}", "-d", description, "--wait")
        assert result.exit_code == 0, result.stderr
    with psycopg.connect(hostile_database_url, autocommit=True) as conn:
        for table in ("account_balances", "account_statements", "daily_totals"):
            row = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            assert row is not None and row[0] is not None, f"{table} is gone"
        owners = {r[0] for r in conn.execute("SELECT owner FROM account_balances")}
    assert {owner for owner, _, _ in CASES} <= owners
    verified = cli("verify", "--json")
    assert verified.exit_code == 0, (verified.stdout, verified.stderr)
    assert json.loads(verified.stdout)["ok"] is True
