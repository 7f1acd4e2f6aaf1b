"""A bad frame before the log's tail stops the server; only `esdblite repair` cuts it."""

from __future__ import annotations

from pathlib import Path

import pytest

from esdblite.process import ServerStartError
from tests.esdblite.support import (
    ANY,
    NO_FILTER,
    NO_STREAM,
    flip_byte,
    ids,
    new_events,
    parse_frames,
    read_log,
    run_esdblite,
    unique,
)
from tests.support.esdb import Servers


@pytest.mark.parametrize("index", ["kept", "deleted"])
def test_a_bad_frame_in_the_middle_of_the_log_refuses_to_start_and_cuts_nothing(
    servers: Servers, tmp_path: Path, index: str
):
    data = tmp_path / "data"
    log = data / "events.log"
    server = servers.start(data)
    client = servers.client(server)
    s = unique()
    for _ in range(4):
        client.append_to_stream(s, current_version=ANY, events=new_events(1))
    assert server.stop() == 0
    frames, _ = parse_frames(log)
    victim = frames[-3]
    flip_byte(log, victim.offset + 8 + len(victim.payload) // 2)
    size = log.stat().st_size
    if index == "deleted":
        for path in data.glob("index.sqlite*"):
            path.unlink()

    refused = servers.new(data)
    with pytest.raises(ServerStartError):
        refused.start()
    assert refused.proc is not None and refused.proc.returncode != 0
    message = read_log(refused)
    assert f"corrupt at offset {victim.offset}" in message
    assert "checksum mismatch" in message
    assert "esdblite repair" in message
    assert log.stat().st_size == size, "nothing may be cut without `esdblite repair`"


def test_repair_backs_up_then_cuts_at_the_bad_frame(servers: Servers, tmp_path: Path):
    data = tmp_path / "data"
    log = data / "events.log"
    server = servers.start(data)
    client = servers.client(server)
    s = unique()
    kept = new_events(2)
    client.append_to_stream(s, current_version=NO_STREAM, events=kept)
    client.append_to_stream(s, current_version=1, events=new_events(1))
    client.append_to_stream(s, current_version=2, events=new_events(1))
    assert server.stop() == 0
    frames, _ = parse_frames(log)
    victim = frames[-2]
    flip_byte(log, victim.offset + 8 + len(victim.payload) // 2)
    original = log.read_bytes()

    backup_dir = tmp_path / "before-repair"
    result = run_esdblite("repair", "--data", str(data), "--backup", str(backup_dir))
    assert result.returncode == 0, result.stderr
    assert f"bad frame at offset {victim.offset}" in result.stdout
    assert f"cut the log at offset {victim.offset}" in result.stdout
    assert f"{len(original) - victim.offset} bytes dropped" in result.stdout
    assert (
        "at least 1 intact records after the bad frame (2 records were in the index)"
        in result.stdout
    )
    # The backup holds the log as it was, corruption included.
    assert (backup_dir / "events.log").read_bytes() == original
    assert (backup_dir / "index.sqlite").exists()
    assert log.stat().st_size == victim.offset

    client = servers.client(servers.start(data))
    assert ids(client.get_stream(s)) == ids(kept)
    assert client.append_to_stream(s, current_version=1, events=new_events(1)) >= victim.offset
    assert list(client.read_all(**NO_FILTER))


def test_repair_of_a_sound_log_changes_nothing(servers: Servers, tmp_path: Path):
    data = tmp_path / "data"
    server = servers.start(data)
    servers.client(server).append_to_stream(
        unique(), current_version=NO_STREAM, events=new_events(2)
    )
    assert server.stop() == 0
    before = (data / "events.log").read_bytes()
    result = run_esdblite("repair", "--data", str(data))
    assert result.returncode == 0, result.stderr
    assert "nothing to repair" in result.stdout
    assert (data / "events.log").read_bytes() == before
    assert not list(tmp_path.glob("data.backup-*"))
