"""The torture run (short mode): nothing is lost, doubled or overdrawn while services are killed.

TORTURE_SEED=<n> picks another seed; a failure names the directory holding the fault schedule
and the operation log (`python -m bench.torture --replay <dir>/run.json` runs it again).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from bench.torture.schedule import CUT, ESDB, LONG_OPS, RUNNER, Config, fault_schedule
from bench.torture.session import run


def test_the_fault_schedule_follows_from_the_seed_and_kills_each_service_twice() -> None:
    config = Config()
    schedule = config.faults()
    assert schedule == Config().faults()
    assert schedule != Config(seed=config.seed + 1).faults()
    kinds = Counter(f.kind for f in schedule)
    assert kinds[ESDB] >= 2 and kinds[RUNNER] >= 2 and kinds[CUT] >= 2
    assert all(0 < f.at_op < config.ops for f in schedule)
    assert [f.at_op for f in schedule] == sorted(f.at_op for f in schedule)


def test_the_long_mode_runs_at_least_20000_operations_with_several_kills_of_each() -> None:
    config = Config.long()
    kinds = Counter(f.kind for f in config.faults())
    assert config.ops == LONG_OPS >= 20_000
    assert kinds[ESDB] >= 4 and kinds[RUNNER] >= 4 and kinds[CUT] >= 4


def test_a_replayed_run_keeps_its_schedule() -> None:
    schedule = tuple(fault_schedule(7, 1000, 3))
    config = Config(ops=1000, seed=99, schedule=schedule)
    assert config.faults() == list(schedule)


@pytest.mark.slow
def test_money_is_never_created_lost_doubled_or_overdrawn_while_services_are_killed(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Config(seed=int(os.environ.get("TORTURE_SEED") or Config().seed))
    artifacts = tmp_path_factory.mktemp("torture-artifacts")

    report = run(config, artifacts_root=artifacts)

    with capsys.disabled():
        print("\n" + report.summary())
    replay = f"fault schedule and operation log for replay: {report.artifacts}"
    assert report.violations == [], f"{len(report.violations)} violations; {replay}"
    assert report.faults[ESDB] >= 2 and report.faults[RUNNER] >= 2, replay
    assert report.faults[CUT] >= 2, replay
    assert report.operations == config.ops
    # The run has to have tested something: faults hit commands in flight, duplicates were
    # answered from the store, and the rules refused commands.
    assert report.results["unknown"] >= 1
    assert report.results["replayed"] >= 1
    assert report.results["refused"] >= 1
