"""Audit entries: the metadata's actor, correlation and causation, and what a bad one gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ledger.accounts.events import AccountOpened
from ledger.audit import audit_entry
from ledger.store import StoredEvent

OPENED = AccountOpened(
    account_id="acc-1",
    owner="Ann",
    currency="EUR",
    overdraft_limit=0,
    occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def test_the_audit_fields_come_from_the_stored_metadata() -> None:
    metadata = b'{"actor": "cli:ann", "correlation_id": "c1", "causation_id": "k1", "x": 1}'
    entry = audit_entry("acc-1", StoredEvent(0, 77, OPENED, metadata))
    assert (entry.revision, entry.position, entry.transaction_id) == (0, 77, None)
    assert (entry.actor, entry.correlation_id, entry.causation_id) == ("cli:ann", "c1", "k1")


@pytest.mark.parametrize("metadata", [b"", b"not json", b"[1, 2]", b'{"actor": 5}'])
def test_metadata_written_by_another_tool_leaves_the_fields_unknown(metadata: bytes) -> None:
    entry = audit_entry("acc-1", StoredEvent(0, 77, OPENED, metadata))
    assert (entry.actor, entry.correlation_id, entry.causation_id) == (None, None, None)
    assert entry.event == OPENED
