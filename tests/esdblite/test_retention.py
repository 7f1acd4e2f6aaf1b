"""Stream metadata that bounds stream reads ($maxCount, $maxAge, $tb) and the scavenge that
reclaims what no stream read shows, keeping every surviving $all position."""

from __future__ import annotations

import re
from pathlib import Path

from esdbclient import EventStoreDBClient

from tests.esdblite.support import (
    ANY,
    NO_FILTER,
    NO_STREAM,
    ids,
    new_events,
    read_log,
    run_esdblite,
    snapshot,
    unique,
)
from tests.support.esdb import Servers
from tests.support.waiting import wait_until


def revisions(client: EventStoreDBClient, stream: str, **kwargs: object) -> list[int]:
    return [e.stream_position for e in client.get_stream(stream, **kwargs)]  # type: ignore[arg-type]


def test_max_count_keeps_revision_numbers_and_hides_older_events(
    client: EventStoreDBClient,
):
    s = unique()
    events = new_events(5)
    client.append_to_stream(s, current_version=NO_STREAM, events=events)
    client.set_stream_metadata(s, metadata={"$maxCount": 2})

    assert revisions(client, s) == [3, 4]
    assert ids(client.get_stream(s)) == ids(events[3:])
    assert revisions(client, s, stream_position=0) == [3, 4]
    assert revisions(client, s, backwards=True) == [4, 3]
    assert revisions(client, s, backwards=True, stream_position=2) == []
    assert client.get_current_version(s) == 4
    # $all still returns them until a scavenge.
    assert [r.id for r in client.read_all(**NO_FILTER) if r.stream_name == s] == ids(events)
    client.append_to_stream(s, current_version=4, events=new_events(1))
    assert revisions(client, s) == [4, 5]


def test_max_age_hides_events_older_than_it(client: EventStoreDBClient):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(2))
    client.set_stream_metadata(s, metadata={"$maxAge": 3600})
    assert revisions(client, s) == [0, 1]
    # With a one-second $maxAge the events vanish from stream reads once they are that old.
    t = unique()
    client.append_to_stream(t, current_version=NO_STREAM, events=new_events(2))
    client.set_stream_metadata(t, metadata={"$maxAge": 1})
    wait_until(lambda: revisions(client, t) == [], what="events older than $maxAge to vanish")
    assert revisions(client, t, backwards=True) == []


def test_truncate_before_and_metastreams_show_only_what_eventstoredb_shows(
    client: EventStoreDBClient,
):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(4))
    client.set_stream_metadata(s, metadata={"$tb": 2, "owner": "a"})
    client.set_stream_metadata(s, metadata={"$tb": 3, "owner": "b"})
    assert revisions(client, s) == [3]
    # A metastream behaves as if its $maxCount were 1.
    meta = client.get_stream("$$" + s)
    assert [m.stream_position for m in meta] == [1]


def _populate_with_retention(client: EventStoreDBClient) -> tuple[str, str, str, str]:
    capped, deleted, plain, tomb = (unique(n) for n in ("capped", "deleted", "plain", "tomb"))
    for i in range(6):
        client.append_to_stream(capped, current_version=ANY, events=new_events(1, size=20_000))
        if i == 0:
            client.set_stream_metadata(capped, metadata={"$maxCount": 2})
    client.append_to_stream(deleted, current_version=NO_STREAM, events=new_events(3, size=20_000))
    client.delete_stream(deleted, current_version=2)
    client.append_to_stream(plain, current_version=NO_STREAM, events=new_events(3))
    client.append_to_stream(tomb, current_version=NO_STREAM, events=new_events(2, size=20_000))
    client.tombstone_stream(tomb, current_version=1)
    return capped, deleted, plain, tomb


def visible(client: EventStoreDBClient, streams: list[str]) -> dict[str, object]:
    """What stream reads show: events, metadata and version of each stream."""
    shown = snapshot(client, streams)
    del shown["all"]
    return shown


def test_an_offline_scavenge_reclaims_hidden_events_and_keeps_positions(
    servers: Servers, tmp_path: Path
):
    data = tmp_path / "data"
    server = servers.start(data)
    client = servers.client(server)
    streams = list(_populate_with_retention(client))
    capped = streams[0]
    before_visible = visible(client, streams)
    before_all = [(r.id, r.commit_position) for r in client.read_all(**NO_FILTER)]
    capped_positions = [
        r.commit_position for r in client.read_all(**NO_FILTER) if r.stream_name == capped
    ]
    assert server.stop() == 0

    refused_while_running = servers.start(data)
    running = run_esdblite("scavenge", "--data", str(data))
    assert running.returncode != 0 and "running" in running.stderr
    assert refused_while_running.stop() == 0

    result = run_esdblite("scavenge", "--data", str(data))
    assert result.returncode == 0, result.stderr
    found = re.search(r"(\d+) bytes on disk before, (\d+) after", result.stdout)
    assert found, result.stdout
    before_bytes, after_bytes = int(found[1]), int(found[2])
    assert after_bytes < before_bytes - 100_000, result.stdout

    client = servers.client(servers.start(data))
    # Every stream read shows exactly what it showed before.
    assert visible(client, streams) == before_visible
    after_all = [(r.id, r.commit_position) for r in client.read_all(**NO_FILTER)]
    # Survivors keep their positions; only hidden events went, never the last of a stream.
    assert set(after_all) <= set(before_all)
    assert [p for p in after_all if p in before_all] == after_all
    gone = len(before_all) - len(after_all)
    assert gone >= 4 + 2 + 1
    assert [
        r.commit_position for r in client.read_all(**NO_FILTER) if r.stream_name == capped
    ] == capped_positions[-2:]
    # The position of a removed event is still a valid place to read $all from.
    rest = [
        r.commit_position for r in client.read_all(commit_position=capped_positions[0], **NO_FILTER)
    ]
    assert rest == [p for _, p in after_all if p > capped_positions[0]]
    # New writes continue the numbering.
    client.append_to_stream(capped, current_version=5, events=new_events(1))
    assert revisions(client, capped) == [5, 6]


def test_a_running_node_scavenges_on_its_schedule(servers: Servers, tmp_path: Path):
    data = tmp_path / "data"
    server = servers.start(data, extra_args=["--scavenge-interval", "0.2", "--log-level", "INFO"])
    client = servers.client(server)
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(5, size=50_000))
    client.set_stream_metadata(s, metadata={"$maxCount": 1})
    last = client.get_stream(s)[-1]
    wait_until(
        lambda: "scavenge done: 4 records removed" in read_log(server),
        what="the scheduled scavenge",
    )
    assert [(e.id, e.commit_position) for e in client.get_stream(s)] == [
        (last.id, last.commit_position)
    ]
    assert [r.id for r in client.read_all(**NO_FILTER) if r.stream_name == s] == [last.id]
    # The node keeps taking writes after it; a restart finds a clean log.
    client.append_to_stream(s, current_version=4, events=new_events(1))
    assert server.stop() == 0
    client = servers.client(servers.start(data))
    assert revisions(client, s) == [5]
