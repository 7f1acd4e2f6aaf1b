"""The commands bench's count of context switches: every thread's, not the main thread's only."""

from __future__ import annotations

import os
import threading

from bench.commands_bench import own_switches, switches

SLEEPS = 50


def _sleeper(started: threading.Event, done: threading.Event, wake: threading.Event) -> None:
    for _ in range(SLEEPS):
        wake.wait(0.001)  # each wait puts this thread to sleep: one switch at least
    started.set()
    done.wait()


def test_the_switches_of_a_thread_other_than_the_main_one_are_counted() -> None:
    # given a thread of this process that sleeps SLEEPS times and then waits, still alive
    started, done, wake = threading.Event(), threading.Event(), threading.Event()
    before_live, before_own = switches(os.getpid()), own_switches()
    thread = threading.Thread(target=_sleeper, args=(started, done, wake))
    thread.start()
    try:
        started.wait(10)
        # when both counts are read
        live, own = switches(os.getpid()), own_switches()
    finally:
        done.set()
        thread.join()
    # then both hold its sleeps (the main thread only waited once meanwhile)
    assert live - before_live >= SLEEPS
    assert own - before_own >= SLEEPS
