"""Durability at named failure points: crash injection, torn or corrupt tails, kill -9."""

from __future__ import annotations

import os
import struct
import threading
import uuid
from pathlib import Path

import pytest
from esdbclient import EventStoreDBClient
from esdbclient.exceptions import EventStoreDBClientException

from esdblite.process import ServerProcess
from tests.esdblite.support import (
    CRASH_EXIT_CODE,
    NO_FILTER,
    NO_STREAM,
    flip_byte,
    frame,
    ids,
    new_events,
    parse_frames,
    read_all_with_prefix,
    read_log,
    read_stream_state,
    unique,
)
from tests.support.esdb import Servers
from tests.support.waiting import wait_until


def crash_env(point: str, after: int | None = None) -> dict[str, str]:
    env = {"ESDBLITE_CRASH_AT": point}
    if after is not None:
        env["ESDBLITE_CRASH_AFTER"] = str(after)
    return env


def wait_for_crash(server: ServerProcess) -> None:
    assert server.proc is not None
    assert server.proc.wait(timeout=15) == CRASH_EXIT_CODE


def assert_clean_log(data: Path) -> None:
    """The log is exactly a run of valid frames: nothing torn is left behind."""
    log = data / "events.log"
    _, valid_end = parse_frames(log)
    assert valid_end == log.stat().st_size


def test_a_crash_in_the_middle_of_a_batch_leaves_none_of_it(servers: Servers, tmp_path: Path):
    data = tmp_path / "data"
    server = servers.start(data, env=crash_env("mid_batch", after=1))
    client = servers.client(server)
    s = unique()
    committed = new_events(3)
    committed_position = client.append_to_stream(s, current_version=NO_STREAM, events=committed)
    torn = new_events(5)
    with pytest.raises(EventStoreDBClientException):
        client.append_to_stream(s, current_version=2, events=torn)
    wait_for_crash(server)
    frames, _ = parse_frames(data / "events.log")
    ends = {f.offset: f.end for f in frames}
    assert committed_position in ends, "the acknowledged batch is not in the log"
    size_at_crash = (data / "events.log").stat().st_size
    assert size_at_crash > ends[committed_position], "no part of the batch reached the log"

    restarted = servers.start(data)
    assert "truncat" in read_log(restarted).lower()
    assert (data / "events.log").stat().st_size < size_at_crash
    assert_clean_log(data)
    client = servers.client(restarted)
    assert ids(client.get_stream(s)) == ids(committed)
    # The batch the client never saw acknowledged can be sent again and lands whole.
    position = client.append_to_stream(s, current_version=2, events=torn)
    assert position > committed_position
    assert ids(client.get_stream(s)) == ids(committed) + ids(torn)


def test_a_crash_before_fsync_is_unacknowledged_and_all_or_nothing(
    servers: Servers, tmp_path: Path
):
    data = tmp_path / "data"
    # No ESDBLITE_CRASH_AFTER: the first client batch crashes; seeding does not count.
    server = servers.start(data, env=crash_env("before_fsync"))
    client = servers.client(server)
    s = unique()
    batch = new_events(4)
    with pytest.raises(EventStoreDBClientException):
        client.append_to_stream(s, current_version=NO_STREAM, events=batch)
    wait_for_crash(server)

    restarted = servers.start(data)
    assert_clean_log(data)
    client = servers.client(restarted)
    state = read_stream_state(client, s)
    if state == "not found":
        version: object = NO_STREAM
    else:
        assert [(i, r) for i, r, _ in state] == [(e.id, n) for n, e in enumerate(batch)]
        version = 3
    [first] = client.read_all(limit=1, **NO_FILTER)
    assert first.stream_name == "$$$scavenges"
    client.append_to_stream(s, current_version=version, events=new_events(1))


def test_a_crash_after_fsync_keeps_the_whole_unacknowledged_batch(servers: Servers, tmp_path: Path):
    data = tmp_path / "data"
    server = servers.start(data, env=crash_env("after_fsync", after=2))
    client = servers.client(server)
    s = unique()
    b1, b2, b3 = new_events(2), new_events(2), new_events(2)
    client.append_to_stream(s, current_version=NO_STREAM, events=b1)
    client.append_to_stream(s, current_version=1, events=b2)
    with pytest.raises(EventStoreDBClientException):
        client.append_to_stream(s, current_version=3, events=b3)
    wait_for_crash(server)

    restarted = servers.start(data)
    client = servers.client(restarted)
    recorded = client.get_stream(s)
    assert ids(recorded) == ids(b1) + ids(b2) + ids(b3)
    assert [r.stream_position for r in recorded] == list(range(6))
    assert client.get_current_version(s) == 5
    # The client's retry of the unacknowledged batch is idempotent: the original position.
    assert client.append_to_stream(s, current_version=3, events=b3) == recorded[-1].commit_position
    assert len(client.get_stream(s)) == 6


@pytest.mark.parametrize("last_batch_size", [1, 3], ids=["single-event", "three-event"])
def test_a_corrupt_last_record_is_cut_off_at_restart(
    servers: Servers, tmp_path: Path, last_batch_size: int
):
    data = tmp_path / "data"
    log = data / "events.log"
    server = servers.start(data)
    client = servers.client(server)
    s = unique()
    kept = new_events(2)
    client.append_to_stream(s, current_version=NO_STREAM, events=kept)
    kept_positions = [r.commit_position for r in client.get_stream(s)]
    client.append_to_stream(s, current_version=1, events=new_events(last_batch_size))
    lost_first_position = client.get_stream(s)[2].commit_position
    assert server.stop() == 0

    frames, valid_end = parse_frames(log)
    assert valid_end == log.stat().st_size
    last = frames[-1]
    flip_byte(log, last.offset + 8 + len(last.payload) // 2)

    restarted = servers.start(data)
    assert "truncat" in read_log(restarted).lower()
    assert_clean_log(data)
    assert log.stat().st_size <= lost_first_position
    client = servers.client(restarted)
    recorded = client.get_stream(s)
    assert ids(recorded) == ids(kept)
    assert [r.commit_position for r in recorded] == kept_positions
    assert client.get_current_version(s) == 1
    position = client.append_to_stream(s, current_version=1, events=new_events(1))
    assert position > kept_positions[-1]


JUNK = {
    "random bytes": os.urandom(333),
    "a huge length": struct.pack("<II", 0x7FFF_FFF0, 0) + b"partial",
    "a frame with a bad crc": frame(b"not a record", crc=12345),
    "zeros": bytes(4096),
}


@pytest.mark.parametrize("junk", list(JUNK), ids=list(JUNK))
def test_junk_after_the_last_record_is_cut_off_at_restart(
    servers: Servers, tmp_path: Path, junk: str
):
    data = tmp_path / "data"
    log = data / "events.log"
    server = servers.start(data)
    client = servers.client(server)
    s = unique()
    events = new_events(3)
    client.append_to_stream(s, current_version=NO_STREAM, events=events)
    before = list(client.read_all(**NO_FILTER))
    assert server.stop() == 0
    clean_size = log.stat().st_size
    with log.open("ab") as f:
        f.write(JUNK[junk])

    restarted = servers.start(data)
    assert "truncat" in read_log(restarted).lower()
    assert log.stat().st_size == clean_size
    client = servers.client(restarted)
    after = list(client.read_all(**NO_FILTER))
    assert [(r.id, r.commit_position) for r in after] == [(r.id, r.commit_position) for r in before]
    position = client.append_to_stream(s, current_version=2, events=new_events(1))
    assert position >= clean_size
    assert_clean_log(data)


def test_kill_9_during_concurrent_appends_keeps_every_acknowledged_event(
    servers: Servers, tmp_path: Path
):
    data = tmp_path / "data"
    server = servers.start(data)
    prefix = unique("kill")
    streams = [f"{prefix}-{n}" for n in range(4)]
    acked: dict[str, list[uuid.UUID]] = {s: [] for s in streams}
    acked_positions: dict[str, list[int]] = {s: [] for s in streams}
    in_flight: dict[str, list[uuid.UUID]] = {s: [] for s in streams}
    stop = threading.Event()

    def write(stream: str, writer: EventStoreDBClient) -> None:
        while not stop.is_set():
            batch = new_events(3)
            in_flight[stream] = ids(batch)
            version = len(acked[stream]) - 1 if acked[stream] else NO_STREAM
            try:
                position = writer.append_to_stream(stream, current_version=version, events=batch)
            except EventStoreDBClientException:
                return
            acked[stream].extend(ids(batch))
            acked_positions[stream].append(position)
            in_flight[stream] = []

    threads = [
        threading.Thread(target=write, args=(s, servers.client(server)), daemon=True)
        for s in streams
    ]
    for t in threads:
        t.start()
    try:
        wait_until(
            lambda: sum(len(v) for v in acked.values()) >= 300, what="300 acknowledged events"
        )
        server.kill()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)

    restarted = servers.start(data)
    assert_clean_log(data)
    client = servers.client(restarted)
    total = 0
    for s in streams:
        state = read_stream_state(client, s)
        recorded = [] if state == "not found" else state
        got = [i for i, _, _ in recorded]
        # Every acknowledged event, in order, exactly once; the unacknowledged batch whole or
        # not at all.
        assert got[: len(acked[s])] == acked[s]
        assert got[len(acked[s]) :] in ([], in_flight[s])
        assert [r for _, r, _ in recorded] == list(range(len(got)))
        by_id = {i: p for i, _, p in recorded}
        batch_ends = [acked[s][3 * n + 2] for n in range(len(acked_positions[s]))]
        assert [by_id[i] for i in batch_ends] == acked_positions[s]
        total += len(got)
    everything = read_all_with_prefix(client, prefix)
    positions = [r.commit_position for r in everything]
    assert len(everything) == total
    assert positions == sorted(set(positions))
