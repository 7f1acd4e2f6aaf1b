"""Reads what a run left behind: every account stream from $all and every read model's rows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg
from esdbclient import EventStoreDBClient

from ledger.accounts.events import (
    AccountEvent,
    deserialise_event,
    schema_version_from_metadata,
)
from ledger.streams import ACCOUNT_STREAM_PREFIX, TRANSFER_STREAM_PREFIX
from ledger.transfers.events import AnyTransferEvent, deserialise_transfer_event


@dataclass(frozen=True)
class StreamEvent:
    """An account event as stored: its stream revision and its $all commit position."""

    account_id: str
    revision: int
    position: int
    event: AccountEvent


Streams = dict[str, list[StreamEvent]]


@dataclass(frozen=True)
class TransferRecord:
    """A transfer event as stored, with its $all commit position."""

    transfer_id: str
    position: int
    event: AnyTransferEvent


def read_transfers(uri: str) -> list[TransferRecord]:
    """Every transfer event, in $all order."""
    client = EventStoreDBClient(uri)
    try:
        return [
            TransferRecord(
                r.stream_name[len(TRANSFER_STREAM_PREFIX) :],
                r.commit_position or 0,
                deserialise_transfer_event(r.type, bytes(r.data)),
            )
            for r in client.read_all(
                filter_include=[TRANSFER_STREAM_PREFIX + ".*"], filter_by_stream_name=True
            )
            if r.stream_name.startswith(TRANSFER_STREAM_PREFIX)
        ]
    finally:
        client.close()


def read_streams(uri: str) -> Streams:
    """Every account stream, read from $all (so that no stream can be overlooked)."""
    client = EventStoreDBClient(uri)
    streams: Streams = defaultdict(list)
    try:
        for recorded in client.read_all(
            filter_include=[ACCOUNT_STREAM_PREFIX + ".*"], filter_by_stream_name=True
        ):
            account_id = recorded.stream_name[len(ACCOUNT_STREAM_PREFIX) :]
            version = schema_version_from_metadata(recorded.metadata)
            event = deserialise_event(recorded.type, recorded.data, version)
            position = recorded.commit_position
            if position is None:
                raise RuntimeError(f"{recorded.stream_name} was read from $all without a position")
            streams[account_id].append(
                StreamEvent(account_id, recorded.stream_position, position, event)
            )
    finally:
        client.close()
    return dict(streams)


@dataclass
class ReadModels:
    """The rows of the read models, as plain tuples."""

    balances: list[tuple[Any, ...]] = field(default_factory=list)
    statements: list[tuple[Any, ...]] = field(default_factory=list)
    daily: list[tuple[Any, ...]] = field(default_factory=list)
    tracked: list[tuple[Any, ...]] = field(default_factory=list)
    parked: int = 0


def read_models(conn: psycopg.Connection[Any]) -> ReadModels:
    """Everything the projections wrote."""

    def rows(query: str) -> list[tuple[Any, ...]]:
        return list(conn.execute(query.encode()).fetchall())

    return ReadModels(
        balances=rows(
            "SELECT account_id, owner, currency, balance, overdraft_limit, status, last_revision,"
            " last_position FROM account_balances ORDER BY account_id"
        ),
        statements=rows(
            "SELECT account_id, revision, position, transaction_id, kind, amount, balance_after,"
            " description, occurred_at, transfer_id, counterparty FROM account_statements"
            " ORDER BY account_id, revision"
        ),
        daily=rows(
            "SELECT currency, day, deposited, withdrawn, reversed, count, transferred_out,"
            " transferred_in FROM daily_totals ORDER BY currency, day"
        ),
        tracked=rows(
            "SELECT projection, account_id, last_revision, parked FROM projection_accounts"
            " ORDER BY projection, account_id"
        ),
        parked=int(rows("SELECT count(*) FROM parked_events")[0][0]),
    )
