"""Event serialisation, metadata and upcasting of older schema versions."""

from __future__ import annotations

import json

import pytest

from ledger.accounts.events import (
    EVENT_TYPES,
    AccountEvent,
    AccountOpened,
    MoneyDeposited,
    PostingKind,
    deserialise_event,
    encode_metadata,
    event_metadata,
    schema_version_from_metadata,
    serialise_event,
)
from ledger.accounts.upcasting import current_schema_version, upcast
from ledger.errors import CorruptEventError
from tests.ledger.scenario import (
    META,
    closed,
    deposited,
    limit_changed,
    opened,
    reversed_posting,
    withdrawn,
)

ALL_EVENTS: list[AccountEvent] = [
    opened(overdraft_limit=2500),
    deposited("t1", 500, 500, "salary ✓"),
    withdrawn("t2", 200, 300, "rent"),
    reversed_posting("r1", "t2", 200, 500),
    limit_changed(1000, 2500),
    closed(),
    deposited("t3", 5, 505, kind=PostingKind.TRANSFER_IN),
]


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda event: event.type)
def test_every_event_round_trips_through_its_stored_form(event: AccountEvent) -> None:
    event_type, data = serialise_event(event)
    assert event_type == type(event).__name__
    assert isinstance(json.loads(data), dict)
    version = schema_version_from_metadata(encode_metadata(event, META))
    assert deserialise_event(event_type, data, version) == event


def test_event_types_are_the_class_names() -> None:
    assert {type(event).__name__ for event in ALL_EVENTS} == EVENT_TYPES


def test_postings_store_integer_minor_units_kind_and_balance_after() -> None:
    _, data = serialise_event(withdrawn("t2", 200, 300, "rent"))
    stored = json.loads(data)
    assert stored["amount"] == -200
    assert stored["balance_after"] == 300
    assert stored["kind"] == "withdrawal"
    assert stored["currency"] == "EUR"
    assert stored["occurred_at"] == "2024-05-01T12:00:00Z"


def test_metadata_carries_the_audit_fields_and_the_schema_version() -> None:
    assert event_metadata(opened(), META) == {
        "correlation_id": "corr-1",
        "causation_id": "cause-1",
        "actor": "teller:alice",
        "schema_version": 2,
    }
    assert json.loads(encode_metadata(closed(), META))["schema_version"] == 1


@pytest.mark.parametrize(
    ("metadata", "version"),
    [(None, 1), (b"", 1), (b"{}", 1), ({}, 1), (b'{"schema_version": 3}', 3)],
)
def test_a_missing_schema_version_means_version_one(metadata: object, version: int) -> None:
    assert schema_version_from_metadata(metadata) == version  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "metadata", [b"not json", b"[1]", b'{"schema_version": "2"}', b'{"schema_version": 0}']
)
def test_unreadable_metadata_is_a_corrupt_event(metadata: bytes) -> None:
    with pytest.raises(CorruptEventError):
        schema_version_from_metadata(metadata)


def test_account_opened_version_1_is_read_as_the_current_event() -> None:
    v1 = json.dumps(
        {
            "account_id": "acc-1",
            "owner_name": "Alice Example",
            "currency_code": "EUR",
            "opened_at": "2024-05-01T12:00:00Z",
        }
    ).encode()
    event = deserialise_event("AccountOpened", v1, schema_version_from_metadata(b"{}"))
    assert event == AccountOpened(
        account_id="acc-1",
        owner="Alice Example",
        currency="EUR",
        overdraft_limit=0,
        occurred_at=opened().occurred_at,
    )


def test_upcasting_leaves_current_versions_alone() -> None:
    data = {"anything": 1}
    assert upcast("MoneyDeposited", data, current_schema_version("MoneyDeposited")) == data


@pytest.mark.parametrize(
    ("event_type", "data", "version"),
    [
        ("SomethingElse", b"{}", 1),
        ("MoneyDeposited", b"not json", 1),
        ("MoneyDeposited", b"[]", 1),
        ("MoneyDeposited", b'{"type": "MoneyDeposited"}', 1),
        ("AccountOpened", b'{"account_id": "acc-1"}', 1),
        ("AccountOpened", b"[]", 1),
        ("AccountOpened", serialise_event(opened())[1], 3),
        ("AccountClosed", serialise_event(opened())[1], 1),
    ],
    ids=[
        "unknown-type",
        "not-json",
        "not-an-object",
        "missing-fields",
        "v1-missing-fields",
        "v1-not-an-object",
        "future-version",
        "type-mismatch",
    ],
)
def test_unreadable_event_data_is_a_corrupt_event(
    event_type: str, data: bytes, version: int
) -> None:
    with pytest.raises(CorruptEventError):
        deserialise_event(event_type, data, version)


def test_posting_amount_signs_are_part_of_the_schema() -> None:
    with pytest.raises(ValueError):
        MoneyDeposited(**(deposited("t1", 5, 5).model_dump() | {"amount": -5}))
