"""`--format table|json|csv` on every listing command: one option, `--json` its short form,
conflicts refused, exact CSV headers, and tables whose rows are never wrapped when piped."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import pytest

from tests.support.cli import Cli
from tests.support.ids import new_account_id

# Each listing command, with `{account}` standing for an opened account.
LISTINGS = [
    ("balance", "{account}"),
    ("statement", "{account}"),
    ("accounts",),
    ("status",),
    ("projections", "status"),
    ("transfers",),
    ("verify",),
]


def args_of(command: Sequence[str], account: str) -> list[str]:
    return [arg.format(account=account) for arg in command]


def csv_rows(result_stdout: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(result_stdout)))


@pytest.mark.parametrize("command", LISTINGS, ids=lambda c: " ".join(c))
def test_json_and_another_format_together_exit_2_and_say_which(
    cli: Cli, account: str, command: Sequence[str]
) -> None:
    result = cli(*args_of(command, account), "--format", "csv", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: --json is --format json: it contradicts --format csv; give one of them\n"
    )
    unknown = cli(*args_of(command, account), "--format", "xml")
    assert unknown.exit_code == 2
    assert unknown.stdout == ""
    assert unknown.stderr == "error: --format is table, json or csv, not 'xml'\n"


@pytest.mark.parametrize("command", LISTINGS, ids=lambda c: " ".join(c))
def test_format_json_is_the_same_document_as_json(
    cli: Cli, account: str, command: Sequence[str]
) -> None:
    def shape(doc: Any) -> Any:
        """The document's keys (values such as pids and lag move between two reads)."""
        if isinstance(doc, dict):
            return {k: shape(v) for k, v in doc.items()}
        if isinstance(doc, list):
            return [shape(d) for d in doc]
        return type(doc).__name__

    args = args_of(command, account)
    long_form = cli.ok(*args, "--format", "json").stdout
    short_form = cli.ok(*args, "--json").stdout
    assert shape(json.loads(long_form)) == shape(json.loads(short_form))
    assert json.loads(long_form) is not None


def test_balance_csv_has_every_column_whatever_the_flags(cli: Cli, account: str) -> None:
    header = (
        "account_id,balance,currency,available,overdraft_limit,status,revision,consistent,as_of,"
        "lag_events,runner"
    )
    projected = cli.ok("balance", account, "--format", "csv").stdout
    assert projected == f"{header}\n{account},100.00,EUR,100.00,0.00,open,1,false,,0,running\n"
    consistent = cli.ok("balance", account, "--consistent", "--format", "csv").stdout
    assert consistent == f"{header}\n{account},100.00,EUR,100.00,0.00,open,1,true,,,\n"


def test_accounts_csv_carries_the_currency(cli: Cli, account: str) -> None:
    rows = csv_rows(cli.ok("accounts", "--format", "csv").stdout)
    assert rows[0] == [
        "account_id",
        "owner",
        "balance",
        "currency",
        "overdraft_limit",
        "status",
        "revision",
    ]
    assert [r for r in rows if r[0] == account] == [
        [account, "Test Owner", "100.00", "EUR", "0.00", "open", "1"]
    ]


def test_status_csv_lists_the_services(cli: Cli) -> None:
    rows = csv_rows(cli.ok("status", "--format", "csv").stdout)
    assert rows[0] == ["name", "state", "pid", "address", "detail"]
    assert [(r[0], r[1]) for r in rows[1:]] == [
        ("eventstore", "running"),
        ("postgres", "running"),
        ("runner", "running"),
    ]


def test_projections_status_csv_has_every_field(cli: Cli) -> None:
    rows = csv_rows(cli.ok("projections", "status", "--format", "csv").stdout)
    assert rows[0] == [
        "projection",
        "runner",
        "checkpoint",
        "head_position",
        "lag_events",
        "caught_up",
        "parked",
        "lag_capped",
        "lag_seconds",
        "lag_current",
        "runner_pid",
        "runner_host",
        "updated_at",
        "heartbeat_at",
        "heartbeat_age_s",
        "checkpoint_at",
        "standbys",
    ]
    assert {r[0] for r in rows[1:]} >= {"balances", "statements", "daily_totals", "transfers"}
    assert {r[1] for r in rows[1:]} == {"running"}


def test_transfers_csv_lists_a_transfer_with_its_currency(cli: Cli, account: str) -> None:
    payee = new_account_id("payee")
    cli.ok("open", payee, "--owner", "Payee", "--currency", "EUR")
    tid = f"csv-{account}"
    cli.ok("transfer", account, payee, "12.50", "--tx", tid, "-d", "=gift", "--wait")
    rows = csv_rows(cli.ok("transfers", payee, "--format", "csv").stdout)
    assert rows[0] == [
        "transfer_id",
        "from",
        "to",
        "amount",
        "currency",
        "state",
        "description",
        "debited_at",
        "updated_at",
    ]
    [row] = rows[1:]
    assert row[:7] == [tid, account, payee, "12.50", "EUR", "completed", "'=gift"]


def test_a_piped_table_keeps_a_long_id_and_description_on_one_line(cli: Cli) -> None:
    account = new_account_id("wide")
    tx = "tx-" + "0123456789" * 6
    description = "Invoice 2026-0042 for consulting services rendered in November, " * 3
    cli.ok("open", account, "--owner", "Wide", "--currency", "EUR")
    cli.ok("deposit", account, "1", "--tx", tx, "-d", description.strip(), "--wait")
    table = cli.ok("statement", account).stdout.splitlines()
    [row] = [line for line in table if tx in line]
    assert description.strip() in row
    [header] = [line for line in table if " rev " in line]  # heavy rules: ┃
    assert header.split("┃")[1:-1] == [
        " rev ",
        " when (UTC)          ",
        " kind    ",
        " amount ",
        " balance ",
        f" {'transaction':<{len(tx)}} ",
        f" {'description':<{len(description.strip())}} ",
    ]
