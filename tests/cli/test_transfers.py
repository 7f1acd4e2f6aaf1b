"""Transfer commands through CliRunner: the JSON, replays, refusals, --wait and the read model."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest

from cli.stack import LocalStack
from ledger.eventstore import AccountEventStore
from ledger.handler import CommandHandler
from ledger.service import Ledger
from ledger.transfers.commands import RequestTransfer
from tests.support.cli import Cli
from tests.support.ids import new_account_id
from tests.support.waiting import eventually

TRANSFER_KEYS = [
    "transfer_id",
    "from",
    "to",
    "amount",
    "currency",
    "state",
    "replayed",
    "from_balance",
    "commit_position",
]


def opened(cli: Cli, currency: str = "EUR") -> str:
    account_id = new_account_id()
    cli.ok("open", account_id, "--owner", "Payee", "--currency", currency)
    return account_id


def test_transfer_prints_the_documented_json_and_a_replay_moves_nothing(
    cli: Cli, account: str
) -> None:
    payee = opened(cli)
    tid = "rent-" + account

    doc = cli.json("transfer", account, payee, "30.00", "--tx", tid, "--wait", "-d", "rent")

    assert list(doc) == TRANSFER_KEYS
    assert (doc["from"], doc["to"], doc["amount"], doc["currency"]) == (
        account,
        payee,
        "30.00",
        "EUR",
    )
    assert (doc["state"], doc["replayed"], doc["from_balance"]) == ("completed", False, "70.00")
    again = cli.json("transfer", account, payee, "30", "--tx", tid, "-d", "rent")
    assert (again["replayed"], again["state"], again["commit_position"]) == (
        True,
        "completed",
        doc["commit_position"],
    )
    assert cli.json("balance", payee)["balance"] == "30.00"
    other = cli("transfer", account, payee, "31", "--tx", tid, "-d", "rent")
    assert other.exit_code == 1 and "already used for a different transfer" in other.stderr


def test_statements_and_the_transfers_list_show_the_transfer(
    cli: Cli, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # a table wide enough not to wrap the ids
    payee = opened(cli)
    tid = "gift-" + account
    cli.ok("transfer", account, payee, "12.50", "--tx", tid, "--wait")

    [line] = [p for p in cli.json("statement", payee)["postings"] if p["transfer_id"]]
    assert (line["kind"], line["amount"], line["counterparty"], line["transfer_id"]) == (
        "transfer_in",
        "12.50",
        account,
        tid,
    )
    table = cli.ok("statement", account).stdout
    assert tid in table and payee in table
    rows = list(csv.DictReader(io.StringIO(cli.ok("statement", account, "--format", "csv").stdout)))
    assert [(r["transfer_id"], r["counterparty"]) for r in rows if r["transfer_id"]] == [
        (tid, payee)
    ]
    [listed] = cli.json("transfers", payee, "--state", "completed")
    assert (listed["transfer_id"], listed["from"], listed["amount"]) == (tid, account, "12.50")
    status = cli.json("transfer-status", tid)
    assert (status["state"], status["to"]) == ("completed", payee)


def test_insufficient_funds_exit_1_with_the_withdrawal_s_hint(cli: Cli, account: str) -> None:
    payee = opened(cli)

    refused = cli("transfer", account, payee, "150", "--tx", "big-" + account)

    assert refused.exit_code == 1
    assert "short by 50.00 EUR" in refused.stderr
    assert f"to unblock: `ledger deposit {account} 50.00`" in refused.stderr
    assert cli.json("transfer-status", "big-" + account)["state"] == "rejected"


def test_rule_breaking_transfers_are_refused_with_the_rule(cli: Cli, account: str) -> None:
    dollars = opened(cli, "USD")
    mismatch = cli("transfer", account, dollars, "1", "--tx", "usd-" + account)
    assert mismatch.exit_code == 1 and "is in USD, the transfer is in EUR" in mismatch.stderr

    itself = cli("transfer", account, account, "1", "--tx", "self-" + account)
    assert itself.exit_code == 2 and "two different accounts" in itself.stderr

    gone = opened(cli)
    cli.ok("close", gone, "--yes")
    closed = cli("transfer", account, gone, "1", "--tx", "closed-" + account)
    assert closed.exit_code == 1 and "closed" in closed.stderr
    assert json.loads(cli.ok("balance", account, "--json").stdout)["balance"] == "100.00"


def test_the_runner_s_process_manager_finishes_a_transfer_its_command_abandoned(
    cli: Cli, account: str, stack: LocalStack
) -> None:
    """A transfer requested and debited by a command that then died: the stack's runner
    (`ledger projections run`, with its process manager) completes it, and a retry of the
    command answers it as a replay."""
    payee = opened(cli)
    tid = "abandoned-" + account
    store = AccountEventStore.connect(stack.eventstore_uri())
    try:
        ledger = Ledger(CommandHandler(store), clock=lambda: dt.datetime.now(dt.UTC), actor="t")
        ledger.transfers.request(
            RequestTransfer(
                transfer_id=tid,
                now=ledger.clock(),
                from_account=account,
                to_account=payee,
                amount=2500,
                currency="EUR",
            )
        )
        ledger.transfers.step(tid)  # the debit; then the command "dies"
    finally:
        store.close()

    eventually(
        lambda: cli.json("transfer-status", tid)["state"] == "completed",
        "the runner's process manager completes the transfer",
    )

    doc = cli.json("transfer", account, payee, "25", "--tx", tid, "--wait")
    assert (doc["state"], doc["replayed"]) == ("completed", True)
    assert cli.json("balance", payee)["balance"] == "25.00"
    assert cli.json("balance", account)["balance"] == "75.00"


def test_a_transfer_without_an_id_gets_one_that_is_printed_for_a_retry(
    cli: Cli, account: str
) -> None:
    payee = opened(cli)

    result = cli.ok("transfer", account, payee, "1.00", "--json")

    [generated] = re.findall(r"transfer id: (tx-[0-9a-f]{32})", result.stderr)
    assert json.loads(result.stdout)["transfer_id"] == generated
    again = cli.json("transfer", account, payee, "1.00", "--tx", generated)
    assert again["replayed"] is True


def test_the_transfers_list_shows_rejected_and_requested_transfers_and_checks_the_state(
    cli: Cli, account: str, stack: LocalStack
) -> None:
    payee = opened(cli)
    rejected = "too-big-" + account
    assert cli("transfer", account, payee, "500", "--tx", rejected).exit_code == 1
    pending = "pending-" + account
    store = AccountEventStore.connect(stack.eventstore_uri())
    try:
        ledger = Ledger(CommandHandler(store), clock=lambda: dt.datetime.now(dt.UTC), actor="t")
        ledger.transfers.request(
            RequestTransfer(
                transfer_id=pending,
                now=ledger.clock(),
                from_account=account,
                to_account=payee,
                amount=100,
                currency="EUR",
            )
        )
    finally:
        store.close()
    cli.ok("transfer", account, payee, "2", "--tx", "done-" + account, "--wait")

    listed = {t["transfer_id"]: t for t in cli.json("transfers", account)}

    assert listed[rejected]["state"] == "rejected"
    assert "short by 400.00 EUR" in listed[rejected]["reason"]
    assert listed[rejected]["amount"] == "500.00"
    assert listed["done-" + account]["state"] == "completed"
    assert listed.get(pending, {"state": "requested"})["state"] in ("requested", "completed")
    [only] = cli.json("transfers", account, "--state", "rejected")
    assert only["transfer_id"] == rejected
    bad = cli("transfers", "--state", "in_transit")
    assert bad.exit_code == 2
    assert "requested, debited, completed, failed, rejected" in bad.stderr
