"""Projection runners for the tests: on a thread of their own, or caught up in this one."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

from projections.runner import Runner
from tests.support.waiting import DEADLINE


class RunnerThread:
    """A Runner on a thread: stop() sets its stop event and joins it; errors are kept."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="test-runner")

    def _run(self) -> None:
        try:
            self.runner.run()
        except BaseException as exc:
            self.error = exc

    def start(self) -> RunnerThread:
        self.thread.start()
        return self

    def stop(self, timeout: float = DEADLINE) -> None:
        """Stop the runner and wait for its thread; fail if it does not stop or had failed."""
        self.runner.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the runner did not stop"
        if self.error is not None:
            raise AssertionError(f"the runner failed: {self.error!r}") from self.error


def catch_up(database_url: str, eventstore_uri: str, **options: Any) -> Runner:
    """Run a Runner in this thread until it has caught up with the store."""
    runner = Runner(database_url, eventstore_uri, batch_ms=20.0, **options)
    runner.run(until_caught_up=True)
    return runner


RUNNER_MAIN = (
    "import sys; from projections.runner import Runner; "
    "Runner(sys.argv[1], sys.argv[2], batch_ms=20.0, heartbeat_every=float(sys.argv[3])).run()"
)


def runner_process(
    database_url: str, eventstore_uri: str, *, heartbeat_every: float
) -> subprocess.Popen[bytes]:
    """A live Runner in a child process (to be killed like a crashed one); the caller reaps it."""
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER_MAIN, database_url, eventstore_uri, str(heartbeat_every)],
        stdout=subprocess.DEVNULL,  # its log (stderr) goes to the test's captured output
    )
