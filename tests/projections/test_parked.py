"""Poison events: parked with the rest of their account while others flow; replayed after a fix."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from esdbclient import EventStoreDBClient, NewEvent

import projections.parked
from esdblite.process import ServerProcess
from ledger.accounts import upcasting
from ledger.accounts.events import AccountEvent, MoneyDeposited, encode_metadata, serialise_event
from ledger.eventstore import AccountEventStore
from ledger.service import Ledger
from ledger.streams import account_stream
from ledger.writemodel import write_model_fold
from projections.applier import Applier
from projections.consistency import wait_for_position
from projections.names import PROJECTION_NAMES
from projections.parked import list_parked, replay_parked
from projections.queries import get_balance
from projections.status import read_status
from projections.verify import verify
from tests.support.clock import T0
from tests.support.feed import META, Feed, metadata, project
from tests.support.ids import new_account_id
from tests.support.postgres import waiting_for_advisory_lock
from tests.support.runners import RunnerThread
from tests.support.waiting import DEADLINE, eventually


def v99_data(event: AccountEvent) -> bytes:
    """MoneyDeposited as a (hypothetical) schema version 99 writer stored it."""
    data = json.loads(serialise_event(event)[1])
    data["amount_minor"] = data.pop("amount")
    return json.dumps(data).encode()


def release_reading_v99(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fix: a release at MoneyDeposited version 100 whose upcasters read versions 1 to 99.

    Registering an upcaster from 99 alone is not enough: upcast() refuses any version above the
    current one, so the current version moves past 99 and every step up to it is registered.
    """
    versions = upcasting.CURRENT_SCHEMA_VERSIONS
    monkeypatch.setitem(versions, "MoneyDeposited", 100)
    steps = upcasting._UPCASTERS
    for version in range(1, 98):
        monkeypatch.setitem(steps, ("MoneyDeposited", version), lambda data: data)

    def to_v99(data: upcasting.Data) -> upcasting.Data:
        return {k: v for k, v in data.items() if k != "amount"} | {"amount_minor": data["amount"]}

    def from_v99(data: upcasting.Data) -> upcasting.Data:
        rest = {k: v for k, v in data.items() if k != "amount_minor"}
        return rest | {"amount": data["amount_minor"]}

    monkeypatch.setitem(steps, ("MoneyDeposited", 98), to_v99)
    monkeypatch.setitem(steps, ("MoneyDeposited", 99), from_v99)


def deposit_event(account_id: str, amount: int, balance_after: int, tx: str) -> MoneyDeposited:
    return MoneyDeposited(
        account_id=account_id,
        transaction_id=tx,
        amount=amount,
        currency="EUR",
        description="",
        balance_after=balance_after,
        occurred_at=T0,
    )


def raw_append(
    client: EventStoreDBClient, account_id: str, revision: int, event: MoneyDeposited, v99: bool
) -> int:
    """Append around the ledger, as a writer of schema version 99 (or a current one) would."""
    if v99:
        new = NewEvent(type=event.type, data=v99_data(event), metadata=metadata(99))
    else:
        event_type, data = serialise_event(event)
        new = NewEvent(type=event_type, data=data, metadata=encode_metadata(event, META))
    return client.append_to_stream(
        account_stream(account_id), current_version=revision - 1, events=[new]
    )


def statement_rows(conn: psycopg.Connection[Any], account_id: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT revision, amount, balance_after FROM account_statements WHERE account_id = %s"
        " ORDER BY revision",
        (account_id,),
    ).fetchall()


def test_a_poison_event_parks_its_account_until_replayed_after_a_fix(
    servers: Callable[..., ServerProcess],
    make_ledger: Callable[..., Ledger],
    make_store: Callable[[str], AccountEventStore],
    start_runner: Callable[..., RunnerThread],
    db: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = servers()
    ledger, poisoned, healthy = make_ledger(server.uri), new_account_id(), new_account_id()
    ledger.open_account(poisoned, "Owner", "EUR")
    ledger.open_account(healthy, "Owner", "EUR")
    start_runner(server.uri, batch_size=4)
    client = EventStoreDBClient(server.uri)
    try:
        raw_append(client, poisoned, 1, deposit_event(poisoned, 500, 500, "tx-v99"), v99=True)
        for i in range(3):
            ledger.deposit(healthy, "1.00", f"tx-{i}")
        raw_append(client, poisoned, 2, deposit_event(poisoned, 100, 600, "tx-a"), v99=False)
        last = raw_append(client, poisoned, 3, deposit_event(poisoned, 200, 800, "tx-b"), False)
    finally:
        client.close()
    for i in range(3, 6):
        outcome = ledger.deposit(healthy, "1.00", f"tx-{i}")

    assert wait_for_position(db, max(last, outcome.commit_position), timeout=DEADLINE)
    flowing = get_balance(db, healthy)
    assert flowing is not None and (flowing.balance, flowing.last_revision) == (600, 6)
    stuck = get_balance(db, poisoned)
    assert stuck is not None and (stuck.balance, stuck.last_revision) == (0, 0)
    assert statement_rows(db, poisoned) == []
    parked = list_parked(db)
    assert {(p.account_id, p.revision, p.projection) for p in parked} == {
        (poisoned, rev, name) for rev in (1, 2, 3) for name in PROJECTION_NAMES
    }
    assert all("schema version 99" in p.error for p in parked if p.revision == 1)
    assert [p.revision for p in list_parked(db, poisoned)][:: len(PROJECTION_NAMES)] == [1, 2, 3]
    assert list_parked(db, healthy) == []
    assert {s.parked for s in read_status(db)} == {3}

    release_reading_v99(monkeypatch)
    result = replay_parked(db, poisoned)

    assert result.applied == dict.fromkeys(PROJECTION_NAMES, 3)
    assert result.parked == dict.fromkeys(PROJECTION_NAMES, 0)
    assert list_parked(db) == []
    assert statement_rows(db, poisoned) == [(1, 500, 500), (2, 100, 600), (3, 200, 800)]
    again = make_ledger(server.uri).deposit(poisoned, "1.50", "tx-c")
    assert (again.revision, again.balance) == (4, 950)
    assert wait_for_position(db, again.commit_position, timeout=DEADLINE)
    assert statement_rows(db, poisoned)[-1] == (4, 150, 950)
    assert verify(db, write_model_fold(make_store(server.uri))) == []
    totals = db.execute("SELECT sum(count), sum(deposited) FROM daily_totals").fetchone()
    assert totals == (4 + 6, 950 + 600)


def test_a_replay_that_still_fails_parks_the_events_again(db: psycopg.Connection) -> None:
    feed, acc = Feed(), new_account_id()
    feed.open(acc)
    feed.append(acc, deposit_event(acc, 500, 500, "tx-v99"), metadata=metadata(99), encode=v99_data)
    feed.deposit(acc, "1.00", "tx-1")
    project(db, feed.events)

    result = replay_parked(db)

    assert result.applied == dict.fromkeys(PROJECTION_NAMES, 0)
    assert result.parked == dict.fromkeys(PROJECTION_NAMES, 2)
    assert [p.revision for p in list_parked(db)] == [1] * len(PROJECTION_NAMES) + [2] * len(
        PROJECTION_NAMES
    )
    assert statement_rows(db, acc) == []


def test_an_event_only_one_projection_cannot_store_parks_it_there_only(
    db: psycopg.Connection,
) -> None:
    # PostgreSQL text cannot hold NUL: statements fail on the description, the others do not.
    feed, acc, other = Feed(), new_account_id(), new_account_id()
    feed.open(acc)
    feed.open(other)
    feed.deposit(other, "1.00", "tx-1")
    nul = deposit_event(acc, 500, 500, "tx-nul").model_copy(update={"description": "a\x00b"})
    feed.append(acc, nul)
    feed.deposit(acc, "1.00", "tx-2")
    feed.deposit(other, "2.00", "tx-2")

    result = project(db, feed.events)

    assert result.parked == {"balances": 0, "statements": 2, "daily_totals": 0, "transfers": 0}
    assert {(p.projection, p.revision) for p in list_parked(db)} == {
        ("statements", 1),
        ("statements", 2),
    }
    assert statement_rows(db, acc) == []
    assert statement_rows(db, other) == [(1, 100, 100), (2, 200, 300)]
    row = get_balance(db, acc)
    assert row is not None and (row.balance, row.last_revision) == (600, 2)
    assert db.execute("SELECT count FROM daily_totals").fetchone() == (4,)


def test_an_event_parked_while_a_replay_starts_is_not_lost(
    db: psycopg.Connection,
    make_conn: Callable[[], psycopg.Connection],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed, acc = Feed(), new_account_id()
    feed.open(acc)
    feed.append(acc, deposit_event(acc, 500, 500, "tx-v99"), metadata=metadata(99), encode=v99_data)
    feed.deposit(acc, "1.00", "tx-1")
    project(db, feed.events)
    release_reading_v99(monkeypatch)
    late = feed.deposit(acc, "2.00", "tx-2")
    live_conn, watcher = make_conn(), make_conn()
    live = threading.Thread(target=project, args=(live_conn, late), daemon=True)

    class LiveBatchMeanwhile(Applier):
        """The live runner's next batch, with the account's next event, lands mid-replay."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            live.start()
            eventually(
                lambda: not live.is_alive() or waiting_for_advisory_lock(watcher),
                "the live batch to commit or to wait for the replay",
            )

    monkeypatch.setattr(projections.parked, "Applier", LiveBatchMeanwhile)

    replay_parked(db, acc)
    live.join(DEADLINE)

    assert not live.is_alive()
    assert list_parked(db) == []
    assert statement_rows(db, acc) == [(1, 500, 500), (2, 100, 600), (3, 200, 800)]
