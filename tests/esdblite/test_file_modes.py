"""esdblite's data and backups are private to their owner whatever the umask (0700 / 0600)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.esdblite.support import NO_STREAM, new_events, unique
from tests.support.esdb import Servers


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual permissive umask, inherited by the servers and commands a test starts."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(directory: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(directory.stat().st_mode)}
    found.update({p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()})
    return found


def test_a_data_directory_and_its_files_are_private(
    umask_022: None, servers: Servers, tmp_path: Path
):
    data = tmp_path / "data"
    server = servers.start(data)
    servers.client(server).append_to_stream(
        unique(), current_version=NO_STREAM, events=new_events(3)
    )
    running = modes(data)
    assert {
        "events.log",
        "index.sqlite",
        "index.sqlite-wal",
        "index.sqlite-shm",
        "esdblite.port",
        "LOCK",
    } <= set(running)
    assert running == {".": 0o700} | {name: 0o600 for name in running if name != "."}
    assert server.stop() == 0
    stopped = modes(data)
    assert stopped == {".": 0o700} | {name: 0o600 for name in stopped if name != "."}

    copy = tmp_path / "copy"
    result = subprocess.run(
        [sys.executable, "-m", "esdblite", "backup", "--data", str(data), str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    copied = modes(copy)
    assert {"events.log", "index.sqlite"} <= set(copied)
    assert copied == {".": 0o700} | {name: 0o600 for name in copied if name != "."}


def test_a_data_directory_left_open_by_an_older_version_is_narrowed(
    umask_022: None, servers: Servers, tmp_path: Path
):
    data = tmp_path / "data"
    server = servers.start(data)
    servers.client(server).append_to_stream(
        unique(), current_version=NO_STREAM, events=new_events(1)
    )
    assert server.stop() == 0
    data.chmod(0o755)
    for path in data.iterdir():
        path.chmod(0o644)
    server = servers.start(data)
    found = modes(data)
    assert found == {".": 0o700} | {name: 0o600 for name in found if name != "."}
