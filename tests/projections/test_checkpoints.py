"""The one list of projections and the one checkpoint writer (forward only, in a transaction)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psycopg
import pytest

from projections.applier import PROJECTIONS
from projections.checkpoints import advance_checkpoint, lock_checkpoint, read_checkpoints
from projections.names import PROJECTION_NAMES

LIGHT = (
    "import sys\n"
    "import projections.names\n"
    "heavy = ('psycopg', 'pydantic', 'ledger', 'projections.')\n"
    "print(sorted(m for m in sys.modules if m.startswith(heavy) and m != 'projections.names'))\n"
)


def test_every_listed_projection_is_loaded_in_order_under_its_own_name() -> None:
    assert list(PROJECTIONS) == list(PROJECTION_NAMES)
    assert [p.name for p in PROJECTIONS.values()] == list(PROJECTION_NAMES)


def test_the_list_of_names_loads_no_projection_code() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", LIGHT], capture_output=True, text=True, check=True
    )

    assert loaded.stdout.strip() == "[]"


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
