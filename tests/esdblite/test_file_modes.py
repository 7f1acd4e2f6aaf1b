"""esdblite's data and backups are private to their owner whatever the umask (0700 / 0600)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.esdblite.support import NO_STREAM, new_events, run_esdblite, unique
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


def assert_private(directory: Path, *names: str) -> None:
    """The directory is 0700, every file in it 0600, and the named files are there."""
    found = modes(directory)
    assert set(names) <= set(found), found
    assert found == {".": 0o700} | {name: 0o600 for name in found if name != "."}


def test_a_data_directory_and_its_files_are_private(
    umask_022: None, servers: Servers, tmp_path: Path
):
    data = tmp_path / "data"
    server = servers.start(data)
    servers.client(server).append_to_stream(
        unique(), current_version=NO_STREAM, events=new_events(3)
    )
    assert_private(
        data,
        "events.log",
        "index.sqlite",
        "index.sqlite-wal",
        "index.sqlite-shm",
        "esdblite.port",
        "LOCK",
    )
    assert server.stop() == 0
    assert_private(data, "events.log", "index.sqlite", "stats.json")

    copy = tmp_path / "copy"
    result = run_esdblite("backup", "--data", str(data), str(copy))
    assert result.returncode == 0, result.stderr
    assert_private(copy, "events.log", "index.sqlite")


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
    servers.start(data)
    assert_private(data, "events.log", "index.sqlite", "LOCK")
