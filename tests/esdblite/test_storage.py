"""esdblite on a data directory: restarts, signals, the lock, the port, the log layout, backups."""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from pathlib import Path

import pytest
from esdbclient.exceptions import StreamIsDeleted, WrongCurrentVersion

from esdblite.process import ServerStartError
from tests.esdblite.support import (
    ANY,
    LOG_HEADER_SIZE,
    NO_FILTER,
    NO_STREAM,
    Collector,
    ids,
    new_events,
    parse_frames,
    read_log,
    run_esdblite,
    snapshot,
    unique,
)
from tests.support.esdb import Servers
from tests.support.waiting import wait_until


def populate(client) -> tuple[list[str], dict[str, list]]:
    """Streams in every state a restart must preserve."""
    kept, meta, deleted, recreated, tombstoned = (
        unique(n) for n in ("kept", "meta", "deleted", "recreated", "tombstoned")
    )
    written = {kept: new_events(3), meta: new_events(1)}
    client.append_to_stream(kept, current_version=NO_STREAM, events=written[kept])
    client.append_to_stream(meta, current_version=NO_STREAM, events=written[meta])
    client.set_stream_metadata(meta, metadata={"owner": "ledger", "$maxAge": 3600})
    client.append_to_stream(deleted, current_version=NO_STREAM, events=new_events(2))
    client.delete_stream(deleted, current_version=ANY)
    client.append_to_stream(recreated, current_version=NO_STREAM, events=new_events(2))
    client.delete_stream(recreated, current_version=1)
    client.append_to_stream(recreated, current_version=NO_STREAM, events=new_events(1))
    client.append_to_stream(tombstoned, current_version=NO_STREAM, events=new_events(1))
    client.tombstone_stream(tombstoned, current_version=ANY)
    return [kept, meta, deleted, recreated, tombstoned], written


def test_a_restart_preserves_events_positions_metadata_and_deletions(
    servers: Servers, tmp_path: Path
):
    data = tmp_path / "data"
    server = servers.start(data)
    client = servers.client(server)
    streams, written = populate(client)
    kept = streams[0]
    before = snapshot(client, streams)
    assert before[f"events of {streams[2]}"] == "not found"
    assert before[f"events of {streams[4]}"] == "deleted"

    assert server.stop() == 0
    restarted = servers.start(data)
    client = servers.client(restarted)

    after = snapshot(client, streams)
    assert after == before
    # The seed is written once, on the first start only.
    seeds = [r for r in after["all"] if r[3] == "$$$scavenges"]
    assert len(seeds) == 1 and after["all"][0] == seeds[0]
    # The idempotency index survives: an identical retry returns the original position.
    original = before[f"events of {kept}"][-1][2]
    assert (
        client.append_to_stream(kept, current_version=NO_STREAM, events=written[kept]) == original
    )
    with pytest.raises(WrongCurrentVersion):
        client.append_to_stream(kept, current_version=NO_STREAM, events=new_events(1))
    with pytest.raises(StreamIsDeleted):
        client.append_to_stream(streams[4], current_version=ANY, events=new_events(1))
    position = client.append_to_stream(kept, current_version=2, events=new_events(1))
    assert position > before["all"][-1][1]


def test_a_deleted_index_is_rebuilt_from_the_log(servers: Servers, tmp_path: Path):
    data = tmp_path / "data"
    server = servers.start(data)
    client = servers.client(server)
    streams, written = populate(client)
    before = snapshot(client, streams)
    assert server.stop() == 0
    assert (data / "index.sqlite").exists()
    for path in data.glob("index.sqlite*"):
        path.unlink()

    restarted = servers.start(data)
    client = servers.client(restarted)
    assert snapshot(client, streams) == before
    kept = streams[0]
    original = before[f"events of {kept}"][-1][2]
    assert (
        client.append_to_stream(kept, current_version=NO_STREAM, events=written[kept]) == original
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_shuts_the_server_down_cleanly_even_with_open_calls(
    servers: Servers, tmp_path: Path, sig: signal.Signals
):
    data = tmp_path / "data"
    server = servers.start(data)
    client = servers.client(server)
    s = unique()
    events = new_events(3)
    client.append_to_stream(s, current_version=NO_STREAM, events=events)
    subscription = Collector(client.subscribe_to_all(from_end=True, include_caught_up=True))
    subscription.wait_for(lambda items: len(items) >= 1)

    assert server.proc is not None
    os.killpg(server.proc.pid, sig)
    assert server.proc.wait(timeout=15) == 0
    server.stop()
    subscription.wait_finished()
    subscription.stop()

    restarted = servers.start(data)
    assert ids(servers.client(restarted).get_stream(s)) == ids(events)


def test_a_second_server_on_the_same_data_directory_is_refused(servers: Servers, tmp_path: Path):
    data = tmp_path / "data"
    first = servers.start(data)
    client = servers.client(first)
    s = unique()
    events = new_events(2)
    client.append_to_stream(s, current_version=NO_STREAM, events=events)

    second = servers.new(data)
    with pytest.raises(ServerStartError):
        second.start(timeout=15)
    assert second.proc is not None and second.proc.returncode != 0
    assert "locked" in read_log(second).lower()

    client.append_to_stream(s, current_version=1, events=new_events(1))
    assert len(client.get_stream(s)) == 3


@pytest.mark.parametrize("holder", ["another esdblite", "a plain socket"])
def test_a_server_on_a_taken_port_is_refused(servers: Servers, holder: str):
    sock = None
    if holder == "another esdblite":
        first = servers.start()
        port = first.bound_port
    else:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::", 0))
        except OSError:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("0.0.0.0", 0))
        sock.listen()
        port = sock.getsockname()[1]
    try:
        second = servers.new(port=port)
        with pytest.raises(ServerStartError):
            second.start(timeout=15)
        assert second.proc is not None and second.proc.returncode != 0
        assert "port" in read_log(second).lower()
    finally:
        if sock is not None:
            sock.close()
    if holder == "another esdblite":
        client = servers.client(first)
        s = unique()
        client.append_to_stream(s, current_version=NO_STREAM, events=new_events(1))
        assert len(client.get_stream(s)) == 1


def test_positions_are_frame_offsets_in_the_durable_log(servers: Servers, tmp_path: Path):
    data = tmp_path / "data"
    server = servers.start(data)
    assert int((data / "esdblite.port").read_text().strip()) == server.bound_port
    client = servers.client(server)
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(3, size=100))
    client.append_to_stream(s, current_version=2, events=new_events(1))
    client.set_stream_metadata(s, metadata={"k": "v"})

    records = list(client.read_all(**NO_FILTER))
    first = records[0]
    assert (first.type, first.stream_name, first.commit_position) == (
        "$metadata",
        "$$$scavenges",
        LOG_HEADER_SIZE,
    )
    log = data / "events.log"
    frames, valid_end = parse_frames(log)
    # Acknowledged writes are in the file already, and the file is a clean run of frames.
    assert valid_end == log.stat().st_size
    positions = [r.commit_position for r in records]
    assert set(positions) <= {f.offset for f in frames}
    assert len(records) == 6
    assert (data / "index.sqlite").exists()


def run_backup(source: Path, destination: Path) -> None:
    result = run_esdblite("backup", "--data", str(source), str(destination))
    assert result.returncode == 0, result.stderr


def test_a_backup_of_a_running_server_is_a_consistent_prefix(servers: Servers, tmp_path: Path):
    source, copy = tmp_path / "source", tmp_path / "copy"
    server = servers.start(source)
    client = servers.client(server)
    writer_client = servers.client(server)
    s = unique()
    acked: list[list[uuid.UUID]] = []
    attempted: list[list[uuid.UUID]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            while not stop.is_set():
                batch = new_events(2)
                attempted.append(ids(batch))
                version = NO_STREAM if not acked else 2 * len(acked) - 1
                writer_client.append_to_stream(s, current_version=version, events=batch)
                acked.append(ids(batch))
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        wait_until(lambda: len(acked) >= 20, what="20 acknowledged batches")
        acknowledged_before = [i for batch in list(acked) for i in batch]
        run_backup(source, copy)
        target = len(acked) + 5
        wait_until(lambda: len(acked) >= target, what="more writes after the backup")
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not errors

    source_all = snapshot(client, [])["all"]
    copy_client = servers.client(servers.start(copy))
    copy_all = snapshot(copy_client, [])["all"]
    assert copy_all == source_all[: len(copy_all)]

    copied = ids(copy_client.get_stream(s))
    assert copied[: len(acknowledged_before)] == acknowledged_before
    attempted_ids = [i for batch in attempted for i in batch]
    assert copied == attempted_ids[: len(copied)]
    assert len(copied) % 2 == 0, "a batch was copied in part"
    # The copy is a working store of its own.
    position = copy_client.append_to_stream(
        s, current_version=len(copied) - 1, events=new_events(1)
    )
    assert position > copy_all[-1][1]


def test_a_backup_of_a_stopped_server_is_complete(servers: Servers, tmp_path: Path):
    source, copy = tmp_path / "source", tmp_path / "copy"
    server = servers.start(source)
    client = servers.client(server)
    streams, _ = populate(client)
    before = snapshot(client, streams)
    assert server.stop() == 0
    run_backup(source, copy)
    assert snapshot(servers.client(servers.start(copy)), streams) == before
