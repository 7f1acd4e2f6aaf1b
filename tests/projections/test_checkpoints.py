"""The one checkpoint writer: forward only, in the caller's transaction."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from projections.checkpoints import advance_checkpoint, lock_checkpoint, read_checkpoints


def test_a_checkpoint_starts_at_zero_and_only_moves_forward(db: psycopg.Connection[Any]) -> None:
    assert read_checkpoints(db, ["balances", "balances__next"]) == {
        "balances": 0,
        "balances__next": 0,
    }

    with db.transaction():
        advance_checkpoint(db, "balances", 500)
    with db.transaction(), db.cursor() as cur:
        advance_checkpoint(cur, "balances", 300)
        assert lock_checkpoint(cur, "balances") == 500

    assert read_checkpoints(db, ["balances", "balances__next"]) == {
        "balances": 500,
        "balances__next": 0,
    }


def test_a_checkpoint_moves_with_its_transaction_or_not_at_all(
    db: psycopg.Connection[Any],
) -> None:
    class Abandoned(Exception):
        """Rolls the test's transaction back."""

    with pytest.raises(Abandoned), db.transaction():
        advance_checkpoint(db, "statements", 700)
        raise Abandoned

    assert read_checkpoints(db, ["statements"]) == {"statements": 0}
