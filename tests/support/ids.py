"""Fresh account ids, so that tests sharing a server never see each other's accounts."""

from __future__ import annotations

import uuid

import pytest


def new_account_id(prefix: str = "acc") -> str:
    """A valid account id no other test uses (short enough to build transaction ids on)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def account_id() -> str:
    """An account id no other test uses."""
    return new_account_id()
