"""Input mistakes a clerk makes: signed amounts, decimal commas, lower-case currencies, unknown
accounts, closing what cannot be closed; each answered before anything is attempted."""

from __future__ import annotations

import pytest

from cli.settings import Settings
from tests.support.cli import Cli
from tests.support.ids import new_account_id


def stderr_lines(stderr: str) -> list[str]:
    return stderr.strip().splitlines()


@pytest.mark.parametrize("command", ["deposit", "withdraw"])
def test_a_negative_amount_is_told_that_amounts_are_positive(
    cli: Cli, account: str, command: str
) -> None:
    result = cli(command, account, "-5")
    assert result.exit_code == 2
    assert result.stdout == ""
    # One line, and no transaction id: nothing was attempted.
    assert stderr_lines(result.stderr) == [
        "error: amount '-5' has a sign; amounts are positive: use withdraw/deposit"
    ]


def test_a_negative_overdraft_limit_names_the_limit(cli: Cli, account: str) -> None:
    result = cli("set-overdraft", account, "-5")
    assert result.exit_code == 2
    assert stderr_lines(result.stderr) == [
        "error: overdraft limit '-5' must not have a sign; write a positive number like 5.00"
    ]


def test_a_malformed_opening_limit_names_no_internal_field(cli: Cli) -> None:
    account = new_account_id()
    result = cli("open", account, "--owner", "A", "--currency", "EUR", "--overdraft-limit", "x")
    assert result.exit_code == 2
    [line] = stderr_lines(result.stderr)
    assert line.startswith("error: overdraft limit 'x' is not a plain decimal number")
    assert "overdraft_limit" not in result.stderr


def test_a_decimal_comma_gets_the_point_suggested(cli: Cli, account: str) -> None:
    result = cli("deposit", account, "12,50")
    assert result.exit_code == 2
    assert stderr_lines(result.stderr) == [
        "error: amount '12,50' has a decimal comma: write a point, did you mean 12.50?"
    ]


def test_a_lower_case_currency_is_upper_cased(cli: Cli) -> None:
    account = new_account_id()
    result = cli.ok("open", account, "--owner", "A", "--currency", "eur")
    assert result.stdout.strip() == f"Account {account} (EUR) opened."
    assert cli.json("balance", account, "--consistent")["currency"] == "EUR"


@pytest.mark.parametrize(
    "args",
    [
        ["balance", "{id}"],
        ["statement", "{id}"],
        ["deposit", "{id}", "5"],
        ["withdraw", "{id}", "5"],
        ["reverse", "{id}", "tx-1"],
        ["set-overdraft", "{id}", "5"],
        ["close", "{id}"],
    ],
)
def test_an_unknown_account_is_no_such_account_with_exit_1(cli: Cli, args: list[str]) -> None:
    account = new_account_id("never")
    result = cli(*[a.format(id=account) for a in args])
    assert result.exit_code == 1
    assert result.stdout == ""
    errors = [line for line in stderr_lines(result.stderr) if not line.startswith("transaction")]
    assert errors == [
        f"error: no such account: {account}",
        "`ledger accounts` lists the accounts there are",
    ]


@pytest.mark.parametrize("args", [["balance", "NOPE"], ["deposit", "NOPE", "5"]])
def test_a_capitalised_id_is_no_such_account_before_any_io(bare_cli: Cli, args: list[str]) -> None:
    result = bare_cli(*args)
    assert result.exit_code == 1
    assert stderr_lines(result.stderr) == [
        "error: no such account: NOPE",
        "account ids are lowercase (did you mean nope?); "
        "`ledger accounts` lists the accounts there are",
    ]
    assert not Settings().home.exists()


def test_close_refuses_a_non_zero_balance_before_asking(cli: Cli, account: str) -> None:
    result = cli("close", account, input="y\n")
    assert result.exit_code == 1
    assert "Close account" not in result.stdout + result.stderr
    assert stderr_lines(result.stderr) == [
        "error: account cannot be closed: balance is 100.00 EUR, not zero"
    ]


def test_close_of_a_closed_account_asks_nothing(cli: Cli, account: str) -> None:
    cli.ok("withdraw", account, "100", "--tx", f"{account}-all")
    cli.ok("close", account, "--yes")
    again = cli.ok("close", account)
    assert again.stdout.strip() == f"Account {account} was already closed."
    assert again.stderr == ""


def test_close_of_a_closable_account_still_asks(cli: Cli, account: str) -> None:
    cli.ok("withdraw", account, "100", "--tx", f"{account}-all")
    result = cli("close", account)
    assert result.exit_code == 2
    assert "pass --yes" in result.stderr
