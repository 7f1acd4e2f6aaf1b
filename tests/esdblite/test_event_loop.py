"""The node's event loop: uvloop's when uvloop is installed (less CPU per gRPC message), else
asyncio's own; grpc.aio serves the same on either (this suite runs on whichever is installed)."""

from __future__ import annotations

import sys

import pytest

from esdblite.app import event_loop_factory
from tests.esdblite.support import read_log
from tests.support.esdb import Servers
from tests.support.waiting import wait_until


def test_without_uvloop_the_node_runs_on_asyncios_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a Python where uvloop cannot be imported
    monkeypatch.setitem(sys.modules, "uvloop", None)
    # then the node asks for no loop of its own: asyncio's default
    assert event_loop_factory() is None


def test_a_node_says_which_event_loop_it_runs_on(servers: Servers) -> None:
    # given uvloop importable or not
    expected = "asyncio" if event_loop_factory() is None else "uvloop"
    # when a node starts
    server = servers.start(None, extra_args=["--log-level", "INFO"])
    # then it serves on uvloop's loop when it can, asyncio's otherwise
    wait_until(lambda: "event loop:" in read_log(server), what="the serving line")
    assert f"(event loop: {expected}" in read_log(server)
