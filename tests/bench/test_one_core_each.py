"""The commands bench's pinned measuring: this process on one core, the server on another, and
both as before afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from bench.commands_bench import one_core_each


def _thread_cores() -> list[set[int]]:
    return [os.sched_getaffinity(int(tid)) for tid in os.listdir("/proc/self/task")]


def test_each_process_gets_a_core_of_its_own_and_then_its_cores_back() -> None:
    # given a server process, and a thread of this process started before the pinning
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop = threading.Event()
    older = threading.Thread(target=stop.wait)
    older.start()
    cores = sorted(os.sched_getaffinity(0))
    mine, theirs = os.sched_getaffinity(0), os.sched_getaffinity(server.pid)
    try:
        # when the bench pins them
        with one_core_each(server.pid) as pinned:
            inside_mine = _thread_cores()
            inside_theirs = os.sched_getaffinity(server.pid)
            newer: list[set[int]] = []
            thread = threading.Thread(target=lambda: newer.append(os.sched_getaffinity(0)))
            thread.start()
            thread.join()
        after_mine, after_theirs = _thread_cores(), os.sched_getaffinity(server.pid)
    finally:
        stop.set()
        older.join()
        server.kill()
        server.wait()
    # then, on a machine of two cores or more, every thread of this process (the older one and
    # one started meanwhile) runs on the first core and the server on the second; on one core
    # nothing is pinned
    if len(cores) >= 2:
        assert pinned
        assert inside_mine == [{cores[0]}] * len(inside_mine)
        assert newer == [{cores[0]}]
        assert inside_theirs == {cores[1]}
    else:
        assert not pinned
        assert inside_mine == [mine] * len(inside_mine)
    # and afterwards every thread has its cores back
    assert after_mine == [mine] * len(after_mine)
    assert after_theirs == theirs
