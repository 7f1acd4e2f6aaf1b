"""Hostile input through the CLI: exit code 2, one clear sentence, and nothing written anywhere."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import Result

from tests.hostile.support import (
    EUR_ACCOUNT,
    JPY_ACCOUNT,
    assert_refused_as_invalid,
    assert_usage_error,
)

Cli = Callable[..., Result]
Unchanged = Callable[..., Callable[[], None]]
FRESH = "fresh-account"  # never opened: every refused `open` must leave it so

AMOUNTS = [
    pytest.param(EUR_ACCOUNT, "1e3", id="exponent"),
    pytest.param(EUR_ACCOUNT, "NaN", id="nan"),
    pytest.param(EUR_ACCOUNT, "Infinity", id="infinity"),
    pytest.param(EUR_ACCOUNT, "-5", id="negative"),
    pytest.param(EUR_ACCOUNT, "+5", id="plus-sign"),
    pytest.param(EUR_ACCOUNT, "0", id="zero"),
    pytest.param(EUR_ACCOUNT, "0.00", id="zero-with-decimals"),
    pytest.param(EUR_ACCOUNT, "1_000", id="underscore"),
    pytest.param(EUR_ACCOUNT, "1,000", id="comma"),
    pytest.param(EUR_ACCOUNT, "１００", id="fullwidth-digits"),
    pytest.param(EUR_ACCOUNT, "٥", id="arabic-indic-digit"),
    pytest.param(EUR_ACCOUNT, " 5", id="leading-space"),
    pytest.param(EUR_ACCOUNT, "5 ", id="trailing-space"),
    pytest.param(EUR_ACCOUNT, "5.001", id="three-decimals-eur"),
    pytest.param(JPY_ACCOUNT, "1.5", id="decimals-jpy"),
    pytest.param(EUR_ACCOUNT, "10000000000000000", id="ten-to-the-16"),
    pytest.param(EUR_ACCOUNT, "", id="empty"),
    pytest.param(EUR_ACCOUNT, "0x10", id="hex"),
    pytest.param(EUR_ACCOUNT, "5.", id="trailing-point"),
    pytest.param(EUR_ACCOUNT, ".5", id="leading-point"),
    pytest.param(EUR_ACCOUNT, "1" * 33, id="too-long"),
]


@pytest.mark.parametrize("command", ["deposit", "withdraw"])
@pytest.mark.parametrize(("account", "amount"), AMOUNTS)
def test_a_malformed_amount_is_refused_and_changes_nothing(
    cli: Cli, unchanged: Unchanged, command: str, account: str, amount: str
) -> None:
    check = unchanged()
    # "--" so that every amount, whatever it starts with, reaches the ledger.
    result = cli(command, account, "--", amount)
    assert_refused_as_invalid(result, mentions="amount")
    check()


@pytest.mark.parametrize("command", ["deposit", "withdraw"])
@pytest.mark.parametrize("amount", ["-5", "-0.50", "-1,5"])
def test_a_negative_amount_without_dashes_reaches_the_amount_rule(
    cli: Cli, unchanged: Unchanged, command: str, amount: str
) -> None:
    check = unchanged()
    result = cli(command, EUR_ACCOUNT, amount, "--tx", "neg-1")
    assert_refused_as_invalid(result, mentions="amounts are positive: use withdraw/deposit")
    check()


@pytest.mark.parametrize(
    "account",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * 65, id="65-chars"),
        pytest.param("../x", id="path-traversal"),
        pytest.param("a b", id="space"),
        pytest.param("ünïcödé", id="unicode"),
        pytest.param("acc\n", id="newline"),
        pytest.param("acc;drop", id="semicolon"),
        pytest.param("acc\x00", id="nul"),
    ],
)
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("deposit", "{}", "5"), id="deposit"),
        pytest.param(("open", "{}", "--owner", "O", "--currency", "EUR"), id="open"),
        pytest.param(("balance", "{}"), id="balance"),
        pytest.param(("statement", "{}"), id="statement"),
    ],
)
def test_a_malformed_account_id_is_refused_and_changes_nothing(
    cli: Cli, unchanged: Unchanged, account: str, args: tuple[str, ...]
) -> None:
    check = unchanged()
    result = cli(*(account if a == "{}" else a for a in args))
    assert_refused_as_invalid(result, mentions="account id")
    check()


def test_a_capitalised_account_id_cannot_be_opened(cli: Cli, unchanged: Unchanged) -> None:
    check = unchanged()
    result = cli("open", "UPPER", "--owner", "O", "--currency", "EUR")
    assert_refused_as_invalid(result, mentions="account id")
    check()


@pytest.mark.parametrize(
    "args", [("deposit", "UPPER", "5"), ("balance", "UPPER"), ("statement", "UPPER")]
)
def test_a_capitalised_account_id_names_no_account_and_changes_nothing(
    cli: Cli, unchanged: Unchanged, args: tuple[str, ...]
) -> None:
    """No account id has capitals: it is an unknown account (exit 1), not a malformed id."""
    check = unchanged()
    result = cli(*args)
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == "error: no such account: UPPER"
    check()


@pytest.mark.parametrize(
    "tx",
    [
        pytest.param("", id="empty"),
        pytest.param("a b", id="space"),
        pytest.param("x" * 65, id="65-chars"),
        pytest.param("tx/../1", id="slash"),
        pytest.param("tx-ü", id="unicode"),
    ],
)
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("deposit", EUR_ACCOUNT, "5"), id="deposit"),
        pytest.param(("withdraw", EUR_ACCOUNT, "1"), id="withdraw"),
        pytest.param(("reverse", EUR_ACCOUNT, "seed-2"), id="reverse"),
    ],
)
def test_a_malformed_transaction_id_is_refused_and_changes_nothing(
    cli: Cli, unchanged: Unchanged, tx: str, args: tuple[str, ...]
) -> None:
    check = unchanged()
    result = cli(*args, "--tx", tx)
    assert_refused_as_invalid(result, mentions="transaction id")
    check()


@pytest.mark.parametrize("reverses", ["", "a b", "x" * 65])
def test_a_malformed_reversal_target_is_refused_and_changes_nothing(
    cli: Cli, unchanged: Unchanged, reverses: str
) -> None:
    check = unchanged()
    assert_refused_as_invalid(
        cli("reverse", EUR_ACCOUNT, reverses, "--tx", "rev-1"), mentions="transaction id"
    )
    check()


# A lower-case code is upper-cased first ("eur" opens a EUR account); "xxx" is still unknown.
@pytest.mark.parametrize("currency", ["xxx", "XXX", "ABC", "EURO", "", "€", "E R"])
def test_an_unknown_or_malformed_currency_is_refused_and_changes_nothing(
    cli: Cli, unchanged: Unchanged, currency: str
) -> None:
    check = unchanged(FRESH)
    result = cli("open", FRESH, "--owner", "O", "--currency", currency)
    assert_refused_as_invalid(result, mentions="currency")
    check()


@pytest.mark.parametrize(
    ("currency", "limit"),
    [
        ("EUR", "-1"),
        ("EUR", "1e2"),
        ("EUR", "NaN"),
        ("EUR", "10.001"),
        ("EUR", ""),
        ("EUR", "１０"),
        ("EUR", "10000000000000000"),
        ("JPY", "0.5"),
    ],
)
def test_a_malformed_opening_overdraft_limit_is_refused_and_changes_nothing(
    cli: Cli, unchanged: Unchanged, currency: str, limit: str
) -> None:
    check = unchanged(FRESH)
    result = cli("open", FRESH, "--owner", "O", "--currency", currency, "--overdraft-limit", limit)
    assert_refused_as_invalid(result, mentions="overdraft")
    check()


@pytest.mark.parametrize(
    ("account", "limit"),
    [
        (EUR_ACCOUNT, "-5"),
        (EUR_ACCOUNT, "abc"),
        (EUR_ACCOUNT, "1.001"),
        (EUR_ACCOUNT, "10000000000000000"),
        (JPY_ACCOUNT, "1.5"),
        (EUR_ACCOUNT, ""),
    ],
)
def test_a_malformed_new_overdraft_limit_is_refused_and_changes_nothing(
    cli: Cli, unchanged: Unchanged, account: str, limit: str
) -> None:
    check = unchanged()
    assert_refused_as_invalid(cli("set-overdraft", account, "--", limit), mentions="limit")
    check()


@pytest.mark.parametrize(
    "description",
    [
        pytest.param("x" * 501, id="501-chars"),
        pytest.param("a\x00b", id="nul"),
        pytest.param("bell\x07", id="bell"),
        pytest.param("line\nbreak", id="newline"),
        pytest.param("tab\there", id="tab"),
        pytest.param("\x1b[31mred", id="ansi-escape"),
        pytest.param("rtl\u202eoverride", id="rtl-override"),
        pytest.param("zero\u200bwidth", id="zero-width-space"),
        pytest.param("line\u2028separator", id="line-separator"),
    ],
)
def test_a_description_over_the_limit_or_with_control_characters_is_refused(
    cli: Cli, unchanged: Unchanged, description: str
) -> None:
    check = unchanged()
    result = cli("deposit", EUR_ACCOUNT, "5", "--tx", "desc-1", "-d", description)
    assert_refused_as_invalid(result, mentions="description")
    check()


@pytest.mark.parametrize(
    "owner",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("x" * 201, id="201-chars"),
        pytest.param("a\x00b", id="nul"),
        pytest.param("\x1b[2Jclear", id="ansi-escape"),
    ],
)
def test_a_malformed_owner_is_refused_and_changes_nothing(
    cli: Cli, unchanged: Unchanged, owner: str
) -> None:
    check = unchanged(FRESH)
    result = cli("open", FRESH, "--owner", owner, "--currency", "EUR")
    assert_refused_as_invalid(result, mentions="owner")
    check()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("deposit",), "Missing argument"),
        (("deposit", EUR_ACCOUNT), "Missing argument"),
        (("withdraw", EUR_ACCOUNT), "Missing argument"),
        (("reverse", EUR_ACCOUNT), "Missing argument"),
        (("set-overdraft", EUR_ACCOUNT), "Missing argument"),
        (("open", FRESH), "Missing option '--owner'"),
        (("open", FRESH, "--owner", "O"), "Missing option '--currency'"),
        (("deposit", EUR_ACCOUNT, "5", "--tx"), "Option '--tx' requires an argument"),
        (("deposit", EUR_ACCOUNT, "5", "--bogus"), "No such option"),
        (("deposit", EUR_ACCOUNT, "5", "extra"), "unexpected extra argument"),
        (("balance", EUR_ACCOUNT, "--min-revision", "-1"), "Invalid value"),
        (("balance", EUR_ACCOUNT, "--min-revision", "abc"), "Invalid value"),
        (("statement", EUR_ACCOUNT, "--limit", "0"), "Invalid value"),
        (("frobnicate",), "No such command"),
    ],
)
def test_missing_or_unknown_arguments_are_usage_errors_that_change_nothing(
    cli: Cli, unchanged: Unchanged, args: tuple[str, ...], says: str
) -> None:
    check = unchanged(FRESH)
    assert_usage_error(cli(*args), says=says)
    check()


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (("statement", EUR_ACCOUNT, "--format", "xml"), "--format"),
        (("balance", EUR_ACCOUNT, "--as-of", "5000"), "--as-of"),
        (("statement", EUR_ACCOUNT, "--from", "2024-13-01"), "--from"),
        (("statement", EUR_ACCOUNT, "--from", "2024-05-02", "--to", "2024-05-01"), "--from"),
        (("balance", EUR_ACCOUNT, "--consistent", "--min-revision", "1"), "--consistent"),
        (("projections", "rebuild", "bogus", "--yes"), "projection"),
        (("--now", "garbage", "balance", EUR_ACCOUNT), "configuration"),
    ],
)
def test_malformed_options_are_refused_and_change_nothing(
    cli: Cli, unchanged: Unchanged, args: tuple[str, ...], mentions: str
) -> None:
    check = unchanged()
    assert_refused_as_invalid(cli(*args), mentions=mentions)
    check()


def test_closing_an_account_with_money_is_refused_before_any_question(
    cli: Cli, unchanged: Unchanged
) -> None:
    check = unchanged()
    result = cli("close", EUR_ACCOUNT)
    assert result.exit_code == 1
    assert result.stderr == "error: account cannot be closed: balance is 44.75 EUR, not zero\n"
    check()
