"""Write commands through CliRunner: JSON shapes, idempotency, refusals, confirmation, --wait."""

from __future__ import annotations

import json
import re
import threading

import pytest

from cli.settings import Settings
from tests.support.cli import Cli
from tests.support.ids import new_account_id

WRITE_KEYS = [
    "account_id",
    "transaction_id",
    "revision",
    "commit_position",
    "balance",
    "currency",
    "replayed",
]
NO_TX_KEYS = ["account_id", "revision", "commit_position", "currency", "replayed"]
GENERATED = re.compile(r"transaction id: (tx-[0-9a-f]{32})")


def revision_of(cli: Cli, account: str) -> int:
    """The account's revision in the write model."""
    revision: int = cli.json("balance", account, "--consistent")["revision"]
    return revision


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_open_prints_the_documented_json(cli: Cli) -> None:
    account = new_account_id()
    result = cli.ok("open", account, "--owner", "Alice", "--currency", "EUR", "--json")
    doc = json.loads(result.stdout)
    assert list(doc) == NO_TX_KEYS
    assert doc["account_id"] == account
    assert (doc["revision"], doc["currency"], doc["replayed"]) == (0, "EUR", False)
    assert isinstance(doc["commit_position"], int) and doc["commit_position"] > 0


def test_opening_again_is_replayed_and_with_other_details_refused(cli: Cli) -> None:
    account = new_account_id()
    first = cli.json("open", account, "--owner", "Alice", "--currency", "EUR")
    again = cli.json("open", account, "--owner", "Alice", "--currency", "EUR")
    assert again["replayed"] is True
    assert again["commit_position"] == first["commit_position"]
    other = cli("open", account, "--owner", "Bob", "--currency", "EUR")
    assert other.exit_code == 1
    assert error_lines(other.stderr) == [
        f"error: account '{account}' is already open with other details"
    ]


def test_deposit_prints_the_write_document_with_decimal_strings(cli: Cli, account: str) -> None:
    doc = cli.json("deposit", account, "70", "--tx", f"{account}-d")
    assert list(doc) == WRITE_KEYS
    assert doc == {
        "account_id": account,
        "transaction_id": f"{account}-d",
        "revision": 2,
        "commit_position": doc["commit_position"],
        "balance": "170.00",
        "currency": "EUR",
        "replayed": False,
    }


def test_a_sentence_shows_the_amount_with_the_currency_decimals(cli: Cli, account: str) -> None:
    result = cli.ok("deposit", account, "5", "--tx", f"{account}-5")
    assert result.stdout.strip() == (
        f"Deposited 5.00 EUR (to {account}, transaction {account}-5). Balance: 105.00 EUR."
    )


def test_without_tx_a_fresh_transaction_id_is_generated_and_printed(cli: Cli, account: str) -> None:
    result = cli.ok("withdraw", account, "20.50", "--json")
    doc = json.loads(result.stdout)
    assert GENERATED.findall(result.stderr) == [doc["transaction_id"]]
    assert doc["balance"] == "79.50"


def test_a_repeated_transaction_id_posts_nothing(cli: Cli, account: str) -> None:
    first = cli.json("deposit", account, "10.00", "--tx", f"{account}-x")
    again = cli.ok("deposit", account, "10.00", "--tx", f"{account}-x")
    assert "was already posted; nothing new was written" in again.stdout
    replay = cli.json("deposit", account, "10.00", "--tx", f"{account}-x")
    assert replay["replayed"] is True
    assert (replay["revision"], replay["commit_position"], replay["balance"]) == (
        first["revision"],
        first["commit_position"],
        "110.00",
    )
    assert revision_of(cli, account) == 2


def test_a_transaction_id_reused_with_other_content_is_refused(cli: Cli, account: str) -> None:
    result = cli("deposit", account, "99.00", "--tx", f"{account}-seed")
    assert result.exit_code == 1
    assert "was already used" in result.stderr
    assert result.stdout == ""
    assert revision_of(cli, account) == 1


def test_a_refusal_shows_the_arithmetic_and_what_would_unblock_it(cli: Cli, account: str) -> None:
    result = cli("withdraw", account, "150", "--tx", f"{account}-w")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert error_lines(result.stderr) == [
        "error: insufficient funds: balance 100.00 EUR, overdraft limit 0.00 EUR, "
        "requested 150.00 EUR, short by 50.00 EUR"
    ]
    assert f"`ledger deposit {account} 50.00`" in result.stderr
    assert f"`ledger set-overdraft {account} 50.00`" in result.stderr
    assert revision_of(cli, account) == 1


def test_set_overdraft_then_withdraw_below_zero(cli: Cli, account: str) -> None:
    doc = cli.json("set-overdraft", account, "100")
    assert list(doc) == NO_TX_KEYS
    assert cli.ok("set-overdraft", account, "100").stdout.strip() == (
        f"Overdraft limit of {account} is 100.00 EUR."
    )
    assert cli.json("withdraw", account, "150", "--tx", f"{account}-w")["balance"] == "-50.00"
    lowered = cli("set-overdraft", account, "10")
    assert lowered.exit_code == 1
    assert "below the overdraft already used" in lowered.stderr


def test_reverse_once(cli: Cli, account: str) -> None:
    cli.ok("withdraw", account, "30", "--tx", f"{account}-g")
    doc = cli.json("reverse", account, f"{account}-g", "--tx", f"{account}-r")
    assert list(doc) == WRITE_KEYS
    assert doc["balance"] == "100.00"
    twice = cli("reverse", account, f"{account}-g", "--tx", f"{account}-r2")
    assert twice.exit_code == 1
    assert "already reversed" in twice.stderr
    unknown = cli("reverse", account, "never-posted", "--tx", f"{account}-r3")
    assert unknown.exit_code == 1
    assert "no posting 'never-posted'" in unknown.stderr


def test_close_needs_yes_without_a_terminal_and_changes_nothing(cli: Cli, account: str) -> None:
    cli.ok("withdraw", account, "100", "--tx", f"{account}-empty")
    result = cli("close", account)
    assert result.exit_code == 2
    assert "pass --yes" in result.stderr
    assert revision_of(cli, account) == 2
    cli.ok("deposit", account, "100", "--tx", f"{account}-refill")
    refused = cli("close", account, "--yes")
    assert refused.exit_code == 1
    assert "balance is 100.00 EUR, not zero" in refused.stderr


def test_close_with_yes_then_the_account_accepts_nothing(cli: Cli, account: str) -> None:
    cli.ok("withdraw", account, "100", "--tx", f"{account}-all")
    doc = cli.json("close", account, "--yes")
    assert list(doc) == NO_TX_KEYS
    assert doc["revision"] == 3
    after = cli("deposit", account, "1", "--tx", f"{account}-late")
    assert after.exit_code == 1
    assert error_lines(after.stderr) == [f"error: account '{account}' is closed"]


def test_an_unknown_account_is_refused_with_exit_1(cli: Cli) -> None:
    account = new_account_id("never")
    result = cli("deposit", account, "1", "--tx", "t-1")
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [f"error: no such account: {account}"]


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("abc", "is not a plain decimal number"),
        ("1.234", "has 3 decimals but EUR amounts have at most 2"),
        ("0", "must be greater than zero"),
        ("1e3", "is not a plain decimal number"),
        ("", "must not be empty"),
        ("99999999999999999999", "is too large"),
    ],
)
def test_an_invalid_amount_exits_2_and_writes_nothing(
    cli: Cli, account: str, amount: str, reason: str
) -> None:
    result = cli("deposit", account, amount, "--tx", f"{account}-bad")
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = error_lines(result.stderr)
    assert reason in line
    assert len(result.stderr.strip().splitlines()) == 1
    assert revision_of(cli, account) == 1


@pytest.mark.parametrize("bad", ["a b", "../etc", "x" * 65, "é"])
def test_a_bad_account_id_exits_2_before_any_io(bare_cli: Cli, bad: str) -> None:
    home = Settings().home
    for args in (
        ["deposit", bad, "1.00", "--tx", "t"],
        ["balance", bad],
        ["open", bad, "--owner", "A", "--currency", "EUR"],
    ):
        result = bare_cli(*args)
        assert result.exit_code == 2, args
        assert "account id" in result.stderr
    # Nothing was started for it: validation happens before any I/O.
    assert not home.exists()


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--currency", "XYZ"], "is not a known ISO 4217 currency code"),
        (["--currency", "euro"], "currency 'euro' must be three ASCII letters, like EUR"),
        (["--currency", "EUR", "--overdraft-limit", "-5"], "must not have a sign"),
        (["--currency", "JPY", "--overdraft-limit", "1.5"], "JPY amounts have no decimals"),
    ],
)
def test_invalid_open_exits_2_and_opens_nothing(cli: Cli, options: list[str], reason: str) -> None:
    account = new_account_id()
    result = cli("open", account, "--owner", "A", *options)
    assert result.exit_code == 2
    assert reason in result.stderr
    missing = cli("balance", account, "--consistent")
    assert missing.exit_code == 1
    assert "no such account" in missing.stderr


def test_wait_gives_read_your_writes(cli: Cli, account: str) -> None:
    doc = cli.json("deposit", account, "1.25", "--tx", f"{account}-w", "--wait")
    balance = cli.json("balance", account)
    assert (balance["balance"], balance["revision"]) == ("101.25", doc["revision"])


def test_wait_timing_out_exits_4_with_the_result_on_stdout(external_cli: Cli) -> None:
    account = new_account_id()
    external_cli.ok("open", account, "--owner", "A", "--currency", "EUR")
    result = external_cli("deposit", account, "10", "--wait", "--json")
    assert result.exit_code == 4
    doc = json.loads(result.stdout)
    assert list(doc) == WRITE_KEYS
    assert doc["balance"] == "10.00"
    assert "did not include it within 0.3s" in result.stderr
    tx = doc["transaction_id"]
    assert GENERATED.findall(result.stderr) == [tx, tx]
    assert f"retry with --tx {tx}" in result.stderr
    # The write itself committed.
    assert revision_of(external_cli, account) == 1


def test_a_write_command_closes_its_event_store_before_it_returns(cli: Cli, account: str) -> None:
    """The pipelined append call's reader thread is joined and the channel closed by the
    command itself, not left running into the interpreter's shutdown (a gRPC abort there)."""
    cli.ok("deposit", account, "1.00", "--tx", f"{account}-closing")
    cli.ok("withdraw", account, "0.50", "--tx", f"{account}-closing-2", "--json")
    assert [t.name for t in threading.enumerate() if t.name == "ledger-batch-append"] == []
