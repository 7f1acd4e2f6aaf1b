"""Waiting for a condition with a deadline (never a bare sleep), and retries after a restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ledger.errors import ServiceUnavailableError

DEADLINE = 30.0  # seconds any awaited condition gets before the test fails
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float = DEADLINE, what: str = "it") -> T:
    """Poll `predicate` until it returns something truthy (returned); fail at the deadline."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        pause.wait(0.02)


def eventually(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Poll a condition until it holds; fail the test at the deadline."""
    wait_until(condition, timeout=timeout, what=what)


def retry_while_unavailable(call: Callable[[], T], timeout: float = DEADLINE) -> T:
    """Call until the event store answers: after a restart, gRPC may still be backing off.

    Only for idempotent calls (commands carry their transaction id, so a retry posts once).
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        try:
            return call()
        except ServiceUnavailableError:
            if time.monotonic() > deadline:
                raise
            pause.wait(0.05)
