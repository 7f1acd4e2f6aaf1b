"""Suite-wide hygiene (a forced temporary home, a bounded, reproducible Hypothesis profile) and
the shared fixtures of tests/support, registered here once for every suite."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, core, settings

pytest_plugins = [
    "tests.support.containers",
    "tests.support.clock",
    "tests.support.ids",
    "tests.support.esdb",
    "tests.support.postgres",
    "tests.support.ledgers",
]

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=60,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=30, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# One seed for the whole run, printed in the header, so any failure can be replayed with
# HYPOTHESIS_SEED=<seed> make test.
SEED = int(os.environ.get("HYPOTHESIS_SEED") or random.SystemRandom().randrange(2**32))
core.global_force_seed = SEED


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Never touch the user's data directory: every test gets its own LEDGER_HOME and HOME."""
    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("LEDGER_HOME", str(home / "ledger"))
    mp.setenv("HOME", str(home))
    mp.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    for var in ("LEDGER_EVENTSTORE_URI", "LEDGER_DATABASE_URL"):
        mp.delenv(var, raising=False)
    yield home
    mp.undo()


def pytest_report_header(config: pytest.Config) -> str:
    return f"hypothesis seed: {SEED} (replay with HYPOTHESIS_SEED={SEED})"
