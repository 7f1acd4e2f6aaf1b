"""Fixtures of the reliability suite: a durable esdblite and hand-built account streams."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esdblite.process import ServerProcess
from tests.support.streams import StreamBuilder


@pytest.fixture
def durable_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """An esdblite server on a data directory, which the test may kill and start again."""
    server = ServerProcess(tmp_path / "esdb", log_file=tmp_path / "esdblite.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def builder() -> StreamBuilder:
    """A fresh hand-made set of account streams."""
    return StreamBuilder()
