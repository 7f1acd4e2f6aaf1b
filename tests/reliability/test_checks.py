"""The torture run's checks catch what they claim to: violations planted by hand are reported."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from bench.torture.checks import check_commands, check_streams, unknown_outcomes
from bench.torture.model_checks import check_read_models
from bench.torture.reading import ReadModels, StreamEvent, TransferRecord
from ledger.accounts.events import AccountOpened, Posting
from ledger.transfers.events import TransferRejected, TransferRequested
from projections.names import PROJECTION_NAMES
from tests.support.streams import StreamBuilder


def record(
    op: int,
    cmd: Mapping[str, Any],
    result: str,
    stored: StreamEvent | None = None,
    **flags: Any,
) -> dict[str, Any]:
    """A client's log line for one attempt; an acknowledged one tells what the client was told."""
    line: dict[str, Any] = {"op": op, "client": 0, "cmd": dict(cmd), "result": result, **flags}
    if stored is not None:
        assert isinstance(stored.event, Posting)
        line.update(
            revision=stored.revision, position=stored.position, balance=stored.event.balance_after
        )
    return line


def deposit_cmd(tx: str, minor: int, account: str = "a") -> dict[str, Any]:
    return {"kind": "deposit", "account": account, "tx": tx, "minor": minor, "description": ""}


def models_of(streams: Mapping[str, Sequence[StreamEvent]]) -> ReadModels:
    """The read models a correct runner would have written for these streams."""
    models = ReadModels()
    daily: dict[tuple[str, dt.date], list[int]] = {}
    for account_id, events in sorted(streams.items()):
        opened = events[0].event
        assert isinstance(opened, AccountOpened)
        balance, limit = 0, opened.overdraft_limit
        for e in events:
            ev = e.event
            if isinstance(ev, Posting):
                balance = ev.balance_after
                models.statements.append(
                    (
                        account_id,
                        e.revision,
                        e.position,
                        ev.transaction_id,
                        str(ev.kind),
                        ev.amount,
                        ev.balance_after,
                        ev.description,
                        ev.occurred_at,
                        ev.transfer_id,
                        ev.counterparty,
                    )
                )
                t = daily.setdefault((ev.currency, ev.occurred_at.date()), [0, 0, 0, 0, 0, 0])
                t[{"deposit": 0, "withdrawal": 1, "reversal": 2}[str(ev.kind)]] += (
                    -ev.amount if str(ev.kind) == "withdrawal" else ev.amount
                )
                t[3] += 1
            else:
                limit = getattr(ev, "limit", limit)
        last = events[-1]
        models.balances.append(
            (
                account_id,
                opened.owner,
                opened.currency,
                balance,
                limit,
                "open",
                last.revision,
                last.position,
            )
        )
        for name in sorted(PROJECTION_NAMES):
            models.tracked.append((name, account_id, last.revision, False))
    models.daily = [(c, d, *v) for (c, d), v in sorted(daily.items())]
    models.tracked.sort()
    return models


def test_sound_streams_commands_and_read_models_pass_every_check(builder: StreamBuilder) -> None:
    builder.open("a", limit=1000)
    d1 = builder.deposit("a", "t1", 500)
    w1 = builder.withdraw("a", "t2", 1400)
    r1 = builder.reverse("a", "t3", "t2", 1400)
    builder.change_limit("a", 200, 1000)
    builder.open("b", currency="JPY")
    d2 = builder.deposit("b", "t4", 7)
    records = [
        record(0, deposit_cmd("t1", 500), "unknown"),
        record(1, deposit_cmd("t1", 500), "replayed", d1, retry=True),
        record(2, {**deposit_cmd("t2", -1400), "kind": "withdraw"}, "ok", w1),
        record(3, {**deposit_cmd("t2", -1400), "kind": "withdraw"}, "replayed", w1, duplicate=True),
        record(
            4,
            {"kind": "reverse", "account": "a", "tx": "t3", "reverses": "t2", "description": ""},
            "ok",
            r1,
        ),
        record(5, deposit_cmd("t4", 7, "b"), "ok", d2),
        record(6, deposit_cmd("t5", 9, "b"), "unknown"),
        record(7, {**deposit_cmd("t1", 500), "description": "x"}, "refused", conflicting=True),
    ]
    streams = builder.streams
    assert check_streams(streams) == []
    assert check_commands(streams, records) == []
    assert check_read_models(streams, models_of(streams)) == []
    assert unknown_outcomes(streams, records) == {
        "retried and found already written": 1,
        "never learned, not stored": 1,
    }


def test_a_posting_below_minus_the_overdraft_limit_is_reported(builder: StreamBuilder) -> None:
    builder.open("a", limit=1000)
    builder.deposit("a", "t1", 500)
    builder.withdraw("a", "t2", 1501)
    found = check_streams(builder.streams)
    assert len(found) == 1 and found[0].startswith("overdraft: a@2 (t2)")


def test_the_limit_in_force_at_the_time_of_each_posting_is_the_one_checked(
    builder: StreamBuilder,
) -> None:
    builder.open("a", limit=1000)
    builder.withdraw("a", "t1", 300)
    builder.change_limit("a", 100, 1000)
    found = check_streams(builder.streams)
    assert found == ["overdraft: a@2 sets the limit to 100 under balance -300"]
    builder.withdraw("a", "t2", 1)
    assert any(f.startswith("overdraft: a@3 (t2)") for f in check_streams(builder.streams))


def test_a_transaction_posted_twice_is_reported(builder: StreamBuilder) -> None:
    builder.open("a")
    builder.deposit("a", "t1", 500)
    builder.deposit("a", "t1", 500)
    assert check_streams(builder.streams) == [
        "duplicate: transaction t1 is posted at a@1 and again at a@2"
    ]


def test_a_broken_balance_chain_is_reported(builder: StreamBuilder) -> None:
    builder.open("a")
    builder.deposit("a", "t1", 500, after=600)
    assert check_streams(builder.streams) == ["chain: a@1 balance_after 600 != 0 + 500"]


@pytest.mark.parametrize("target", ["t2", "missing", "t3"])
def test_a_bad_reversal_is_reported(builder: StreamBuilder, target: str) -> None:
    builder.open("a", limit=5000)
    builder.deposit("a", "t2", 500)
    builder.reverse("a", "t3", "t2", -500)
    builder.reverse("a", "t4", target, -500 if target == "t2" else 500)
    found = check_streams(builder.streams)
    assert len(found) >= 1 and all(f.startswith("reversal: ") for f in found), found


def test_an_acknowledged_command_missing_from_the_store_is_reported(
    builder: StreamBuilder,
) -> None:
    builder.open("a")
    stored = builder.deposit("a", "t1", 500)
    acked_elsewhere = StreamEvent("a", 2, 999, stored.event)
    records = [record(0, deposit_cmd("t2", 500), "ok", acked_elsewhere)]
    assert "acked: t2 was acknowledged but is stored 0 times" in check_commands(
        builder.streams, records
    )


def test_an_answer_that_differs_from_the_store_is_reported(builder: StreamBuilder) -> None:
    builder.open("a")
    stored = builder.deposit("a", "t1", 500)
    line = record(0, deposit_cmd("t1", 500), "ok", stored)
    line["revision"] = 7
    found = check_commands(builder.streams, [line])
    assert found == [
        "acked: t1 (op 0) was answered (revision, position, balance) (7, 300, 500), "
        "the store has (1, 300, 500)"
    ]


def test_stored_content_that_differs_from_the_command_is_reported(
    builder: StreamBuilder,
) -> None:
    builder.open("a")
    stored = builder.deposit("a", "t1", 500)
    found = check_commands(builder.streams, [record(0, deposit_cmd("t1", 400), "ok", stored)])
    assert found == ["content: t1 stored amount 500, sent 400"]


def test_unknown_twice_refused_yet_stored_and_phantoms_are_reported(
    builder: StreamBuilder,
) -> None:
    builder.open("a")
    builder.deposit("a", "t1", 500)
    builder.deposit("a", "t1", 500)
    builder.deposit("a", "t2", 500)
    builder.deposit("a", "t3", 500)
    records = [
        record(0, deposit_cmd("t1", 500), "unknown"),
        record(1, deposit_cmd("t2", 500), "refused"),
    ]
    found = check_commands(builder.streams, records)
    assert "unknown: t1 had an unknown outcome and is stored 2x" in found
    assert "refused: t2 was refused on every attempt but is stored" in found
    assert "phantom: t3 is stored at a but nobody sent it" in found


def test_violations_seen_by_clients_are_reported(builder: StreamBuilder) -> None:
    builder.open("a")
    records = [
        record(0, deposit_cmd("t1", 5), "refused", violation="a conflicting resend was accepted"),
        record(1, deposit_cmd("t2", 5), "unexpected", error="grpc.RpcError: boom"),
    ]
    assert check_commands(builder.streams, records) == [
        "client: op 0: a conflicting resend was accepted",
        "client: op 1 got an unexpected error: grpc.RpcError: boom",
    ]


def sound_models(builder: StreamBuilder) -> ReadModels:
    builder.open("a", limit=100)
    builder.deposit("a", "t1", 500)
    builder.withdraw("a", "t2", 200)
    builder.open("b", currency="JPY")
    builder.deposit("b", "t3", 9)
    models = models_of(builder.streams)
    assert check_read_models(builder.streams, models) == []
    return models


def test_a_missing_statement_line_is_reported(builder: StreamBuilder) -> None:
    models = sound_models(builder)
    del models.statements[0]
    found = check_read_models(builder.streams, models)
    assert any(f.startswith("projection: account_statements differs") for f in found)
    assert any(f.startswith("statement: a@2 balance_after 300 != 0 + -200") for f in found)


def test_a_doubled_daily_total_is_reported(builder: StreamBuilder) -> None:
    models = sound_models(builder)
    c, d, dep, wd, rev, count, out, in_ = models.daily[0]
    models.daily[0] = (c, d, dep * 2, wd, rev, count + 1, out, in_)
    found = check_read_models(builder.streams, models)
    assert len(found) == 1 and found[0].startswith("projection: daily_totals differs")


def test_a_wrong_balance_breaks_the_projection_and_the_currency_totals(
    builder: StreamBuilder,
) -> None:
    models = sound_models(builder)
    row = list(models.balances[0])
    row[3] += 1
    models.balances[0] = tuple(row)
    found = check_read_models(builder.streams, models)
    assert any(f.startswith("projection: account_balances differs") for f in found)
    assert "totals: EUR balances sum to 301, statement amounts to 300, stored postings to 300" in (
        found
    )


def test_parked_events_and_lagging_bookkeeping_are_reported(builder: StreamBuilder) -> None:
    models = sound_models(builder)
    models.parked = 2
    models.tracked[0] = (*models.tracked[0][:2], 0, True)
    found = check_read_models(builder.streams, models)
    assert "parked: 2 events are parked" in found
    assert any(f.startswith("projection: projection_accounts differs") for f in found)


def test_a_transfer_stream_the_transfers_projection_does_not_track_is_reported(
    builder: StreamBuilder,
) -> None:
    models = sound_models(builder)
    request = TransferRequested(
        transfer_id="x1",
        occurred_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        from_account="a",
        to_account="b",
        amount=5,
        currency="EUR",
        description="",
    )
    rejected = TransferRejected(
        transfer_id="x1", occurred_at=request.occurred_at, reason="insufficient funds"
    )
    transfers = [TransferRecord("x1", 900, request), TransferRecord("x1", 901, rejected)]

    found = check_read_models(builder.streams, models, transfers)

    assert any(f.startswith("projection: projection_accounts differs") for f in found)
    models.tracked.append(("transfers", "transfer:x1", 1, False))
    assert check_read_models(builder.streams, models, transfers) == []
