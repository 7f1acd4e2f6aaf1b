"""Helpers of the hostile-input tests: the seeded accounts, state snapshots, refusal checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from esdbclient import EventStoreDBClient
from esdbclient.exceptions import NotFound
from psycopg import sql
from typer.testing import Result

from esdblite.process import ServerProcess
from ledger.streams import account_stream
from projections.applier import PROJECTIONS
from tests.support.waiting import wait_until

EUR_ACCOUNT = "hostile-eur"
JPY_ACCOUNT = "hostile-jpy"
SEEDED = (EUR_ACCOUNT, JPY_ACCOUNT)
READ_MODEL_TABLES = (
    "account_balances",
    "account_statements",
    "daily_totals",
    "projection_checkpoints",
    "projection_accounts",
    "parked_events",
)


def services_env(esdb: ServerProcess, database_url: str) -> dict[str, str]:
    """LEDGER_* variables that point the CLI at the session's servers, and a wide terminal."""
    return {
        "LEDGER_EVENTSTORE_URI": esdb.uri,
        "LEDGER_DATABASE_URL": database_url,
        "COLUMNS": "400",
        "NO_COLOR": "1",
    }


def wait_until_projected(esdb: ServerProcess, database_url: str) -> None:
    """Wait until every projection's checkpoint has reached the newest account event."""
    client = EventStoreDBClient(esdb.uri)
    try:
        events = client.read_all(
            backwards=True, filter_include=["account-.*"], filter_by_stream_name=True, limit=1
        )
        newest = [e.commit_position or 0 for e in events]
    finally:
        client.close()
    target = newest[0] if newest else 0
    with psycopg.connect(database_url, autocommit=True) as conn:

        def reached() -> bool:
            try:
                row = conn.execute(
                    "SELECT count(*) FROM projection_checkpoints"
                    " WHERE projection = ANY(%s) AND position >= %s",
                    (list(PROJECTIONS), target),
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                return False
            return row is not None and row[0] == len(PROJECTIONS)

        wait_until(reached, what=f"the projections to reach position {target}")


@dataclass(frozen=True)
class Snapshot:
    """The event store's head, the seeded streams and every read-model row."""

    head: int
    streams: dict[str, tuple[Any, ...]]
    tables: dict[str, list[tuple[Any, ...]]]


def _stream(client: EventStoreDBClient, account_id: str) -> tuple[Any, ...]:
    try:
        recorded = client.get_stream(account_stream(account_id))
    except NotFound:
        return ()
    return tuple((r.id, r.stream_position, r.commit_position, bytes(r.data)) for r in recorded)


def snapshot(esdb: ServerProcess, database_url: str, accounts: Sequence[str] = SEEDED) -> Snapshot:
    """Read everything that refused input must leave unchanged (after the runner settled)."""
    wait_until_projected(esdb, database_url)
    client = EventStoreDBClient(esdb.uri)
    try:
        streams = {a: _stream(client, a) for a in accounts}
        head = int(client.get_commit_position())
    finally:
        client.close()
    tables = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in READ_MODEL_TABLES:
            query = sql.SQL("SELECT * FROM {} ORDER BY 1, 2").format(sql.Identifier(table))
            tables[table] = conn.execute(query).fetchall()
    return Snapshot(head, streams, tables)


def assert_refused_as_invalid(result: Result, *, mentions: str) -> None:
    """Exit 2, nothing on stdout, and one clear `error:` sentence on stderr naming the input."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    others = [line for line in lines if not line.startswith(("error: ", "transaction id: "))]
    assert len(errors) == 1 and not others, result.stderr
    assert mentions in errors[0].lower(), (mentions, errors[0])


def assert_usage_error(result: Result, *, says: str) -> None:
    """Exit 2 from the argument parser: its usage message on stderr, nothing on stdout."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert says in " ".join(result.stderr.split()), result.stderr
