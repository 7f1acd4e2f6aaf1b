"""Reversals through the CLI: linked both ways on every statement format, named on refusal."""

from __future__ import annotations

import csv
import io

import pytest

from tests.support.cli import Cli


def reversed_pair(cli: Cli, account: str) -> None:
    """The seed deposit (100.00) gets a 30.00 withdrawal, which is then reversed."""
    cli.ok("withdraw", account, "30", "--tx", f"{account}-w")
    cli.ok("reverse", account, f"{account}-w", "--tx", f"{account}-r", "--wait")


def test_a_reversal_describes_what_it_reverses_unless_told_otherwise(
    cli: Cli, account: str
) -> None:
    reversed_pair(cli, account)
    cli.ok("withdraw", account, "5", "--tx", f"{account}-w2")
    cli.ok("reverse", account, f"{account}-w2", "--tx", f"{account}-r2", "-d", "keyed twice")
    descriptions = [
        p["description"] for p in cli.json("statement", account, "--consistent")["postings"]
    ]
    assert descriptions[-3:] == [f"reversal of {account}-w", "", "keyed twice"]


def test_the_reversal_sentence_names_its_transaction(cli: Cli, account: str) -> None:
    cli.ok("withdraw", account, "30", "--tx", f"{account}-w")
    result = cli.ok("reverse", account, f"{account}-w", "--tx", f"{account}-r")
    assert result.stdout.strip() == (
        f"Reversed {account}-w on {account} (transaction {account}-r). Balance: 100.00 EUR."
    )


def test_statement_json_links_both_ways_in_both_models(cli: Cli, account: str) -> None:
    reversed_pair(cli, account)
    for args in ([], ["--consistent"]):
        postings = cli.json("statement", account, *args)["postings"]
        links = [(p["transaction_id"], p["reverses"], p["reversed_by"]) for p in postings]
        assert links == [
            (f"{account}-seed", None, None),
            (f"{account}-w", None, f"{account}-r"),
            (f"{account}-r", f"{account}-w", None),
        ], args


def test_statement_csv_has_the_link_columns(cli: Cli, account: str) -> None:
    reversed_pair(cli, account)
    rows = list(csv.reader(io.StringIO(cli.ok("statement", account, "--format", "csv").stdout)))
    assert rows[0][-2:] == ["reverses", "reversed_by"]
    assert [r[-2:] for r in rows[1:]] == [["", ""], ["", f"{account}-r"], [f"{account}-w", ""]]


def test_statement_table_shows_the_links(
    cli: Cli, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that no cell wraps
    reversed_pair(cli, account)
    for args in ([], ["--consistent"]):
        table = cli.ok("statement", account, *args).stdout
        assert f"reversed by {account}-r" in table
        assert f"reverses {account}-w" in table


def test_a_second_reversal_names_the_reversal_that_was_first(cli: Cli, account: str) -> None:
    reversed_pair(cli, account)
    again = cli("reverse", account, f"{account}-w", "--tx", f"{account}-r2")
    assert again.exit_code == 1
    assert (
        f"error: posting '{account}-w' on account '{account}' is already reversed by '{account}-r'"
    ) in again.stderr


def test_a_reversal_refused_for_funds_says_how_to_unblock_it(cli: Cli, account: str) -> None:
    cli.ok("withdraw", account, "100", "--tx", f"{account}-all")
    refused = cli("reverse", account, f"{account}-seed", "--tx", f"{account}-r")
    assert refused.exit_code == 1
    assert "short by 100.00 EUR" in refused.stderr
    assert (
        f"to unblock: `ledger deposit {account} 100.00` or `ledger set-overdraft {account} 100.00`"
    ) in refused.stderr
