"""Reading streams and $all: directions, start points, counts, filters, commit positions (§3.3)."""

from __future__ import annotations

import datetime
import json
import re
import uuid

import pytest
from esdbclient import EventStoreDBClient, NewEvent
from esdbclient.exceptions import NotFound

from tests.esdblite.support import (
    NO_FILTER,
    NO_STREAM,
    ids,
    new_events,
    read_all_of_streams,
    read_all_with_prefix,
    unique,
)


def revisions(records) -> list[int]:
    return [r.stream_position for r in records]


def test_a_stream_reads_forwards_backwards_from_a_revision_and_with_a_count(
    client: EventStoreDBClient,
):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(10))
    assert revisions(client.get_stream(s)) == list(range(10))
    assert revisions(client.get_stream(s, backwards=True)) == list(range(9, -1, -1))
    assert revisions(client.get_stream(s, stream_position=4)) == list(range(4, 10))
    assert revisions(client.get_stream(s, stream_position=4, backwards=True)) == [4, 3, 2, 1, 0]
    assert revisions(client.get_stream(s, limit=3)) == [0, 1, 2]
    assert revisions(client.get_stream(s, backwards=True, limit=3)) == [9, 8, 7]
    assert revisions(client.get_stream(s, stream_position=4, limit=2)) == [4, 5]


def test_reading_beyond_the_end_of_a_stream_is_empty_not_an_error(client: EventStoreDBClient):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(3))
    assert client.get_stream(s, stream_position=3) == ()
    assert client.get_stream(s, stream_position=100) == ()


def test_reading_a_stream_that_does_not_exist_is_not_found(client: EventStoreDBClient):
    s = unique()
    with pytest.raises(NotFound, match=re.escape(f"Stream '{s}' not found")):
        client.get_stream(s)
    with pytest.raises(NotFound):
        list(client.read_stream(s, backwards=True))
    assert client.get_current_version(s) == NO_STREAM


def test_recorded_events_carry_what_was_appended(client: EventStoreDBClient):
    s = unique("strøm-ü")
    json_event = NewEvent(
        type="Zahlung-eingegangen-€",
        data=json.dumps({"amount": 12, "note": "ü"}).encode(),
        metadata=b"\x00\x01custom\xff",
    )
    binary_event = NewEvent(
        type="Blob",
        data=bytes(range(256)),
        content_type="application/octet-stream",
    )
    before = datetime.datetime.now(datetime.UTC)
    client.append_to_stream(s, current_version=NO_STREAM, events=[json_event, binary_event])
    after = datetime.datetime.now(datetime.UTC)

    first, second = client.get_stream(s)
    for recorded, sent in ((first, json_event), (second, binary_event)):
        assert recorded.id == sent.id
        assert recorded.type == sent.type
        assert recorded.data == sent.data
        assert recorded.metadata == sent.metadata
        assert recorded.content_type == sent.content_type
        assert recorded.stream_name == s
        assert recorded.commit_position == recorded.prepare_position
        # "created" is in 100 ns ticks since the Unix epoch; a generous margin absorbs clock steps.
        assert recorded.recorded_at is not None
        margin = datetime.timedelta(minutes=5)
        assert before - margin <= recorded.recorded_at <= after + margin


def test_all_reads_forwards_inclusively_and_backwards_exclusively_from_a_position(
    client: EventStoreDBClient,
):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(3))
    p0, p1, p2 = (r.commit_position for r in client.get_stream(s))

    def positions(**kwargs) -> list[int]:
        return [r.commit_position for r in read_all_of_streams(client, [s], **kwargs)]

    assert positions(commit_position=p1) == [p1, p2]
    assert positions(commit_position=p1, backwards=True) == [p0]
    assert positions(commit_position=p2, backwards=True, limit=1) == [p1]
    assert positions() == [p0, p1, p2]
    assert positions(backwards=True) == [p2, p1, p0]
    assert positions(backwards=True, limit=1) == [p2]
    assert positions(limit=2) == [p0, p1]


def test_all_begins_with_a_system_event(client: EventStoreDBClient):
    [first] = client.read_all(limit=1, **NO_FILTER)
    assert first.type.startswith("$")
    assert first.commit_position is not None and first.commit_position > 0


def test_all_returns_every_record_in_position_order(client: EventStoreDBClient):
    prefix = unique("order")
    for n in range(3):
        client.append_to_stream(f"{prefix}-{n}", current_version=NO_STREAM, events=new_events(2))
    records = read_all_with_prefix(client, prefix)
    positions = [r.commit_position for r in records]
    assert len(records) == 6
    assert positions == sorted(set(positions))
    backwards = read_all_with_prefix(client, prefix, backwards=True)
    assert ids(backwards) == ids(reversed(records))


def test_the_count_of_a_filtered_all_read_counts_matching_events(client: EventStoreDBClient):
    tag = uuid.uuid4().hex
    a, b = f"A{tag}", f"B{tag}"
    s = unique()
    events = [NewEvent(type=t, data=b"{}") for t in (a, b, a, b, a, b)]
    client.append_to_stream(s, current_version=NO_STREAM, events=events)
    first_position = client.get_stream(s)[0].commit_position
    found = list(client.read_all(commit_position=first_position, filter_include=[a], limit=2))
    assert ids(found) == [events[0].id, events[2].id]


def test_event_type_filters_include_and_exclude(client: EventStoreDBClient):
    tag = uuid.uuid4().hex
    a, b = f"A{tag}", f"B{tag}"
    s1, s2 = unique(), unique()
    one = [NewEvent(type=t, data=b"{}") for t in (a, b, a)]
    two = [NewEvent(type=b, data=b"{}")]
    client.append_to_stream(s1, current_version=NO_STREAM, events=one)
    client.append_to_stream(s2, current_version=NO_STREAM, events=two)
    start = client.get_stream(s1)[0].commit_position
    mine = {s1, s2}

    included = list(client.read_all(filter_include=[a]))
    assert ids(included) == [one[0].id, one[2].id]

    excluded = [r for r in client.read_all(commit_position=start, filter_exclude=[a])]
    assert ids(r for r in excluded if r.stream_name in mine) == [one[1].id, two[0].id]

    both = list(client.read_all(commit_position=start, filter_include=[a, b]))
    assert ids(both) == [*ids(one), *ids(two)]


def test_stream_name_filters_use_search_semantics(client: EventStoreDBClient):
    p = uuid.uuid4().hex
    # The client sends ^{p}x|{p}y$: only the first alternative is anchored at the start and
    # only the last at the end, and matching is a search, not a full match.
    matching = [f"{p}x-tail", f"head-{p}y"]
    not_matching = [f"head-{p}x", f"{p}y-tail"]
    for name in [*matching, *not_matching]:
        client.append_to_stream(name, current_version=NO_STREAM, events=new_events(1))
    start = client.get_stream(matching[0])[0].commit_position

    found = client.read_all(
        commit_position=start, filter_include=[f"{p}x", f"{p}y"], filter_by_stream_name=True
    )
    assert [r.stream_name for r in found] == matching


def test_the_default_filter_excludes_system_events(client: EventStoreDBClient):
    s = unique()
    normal = NewEvent(type="Normal", data=b"{}")
    persistent_config = NewEvent(type="PersistentConfig1", data=b"{}")
    client.append_to_stream(s, current_version=NO_STREAM, events=[normal, persistent_config])
    client.set_stream_metadata(s, metadata={"k": "v"})
    start = client.get_stream(s)[0].commit_position

    default = [r for r in client.read_all(commit_position=start) if s in r.stream_name]
    assert ids(default) == [normal.id]

    unfiltered = [r for r in client.read_all(commit_position=start, **NO_FILTER)]
    mine = [(r.stream_name, r.type) for r in unfiltered if s in r.stream_name]
    assert mine == [(s, "Normal"), (s, "PersistentConfig1"), (f"$${s}", "$metadata")]


def test_get_commit_position_reports_the_last_matching_event(client: EventStoreDBClient):
    s = unique()
    position = client.append_to_stream(s, current_version=NO_STREAM, events=new_events(2))
    assert client.get_commit_position() == position
    # A $metadata event is a system event, excluded by the default filter.
    client.set_stream_metadata(s, metadata={"k": "v"})
    assert client.get_commit_position() == position
    assert client.get_commit_position(**NO_FILTER) > position
    assert client.get_commit_position(filter_include=[f"NoSuchType{uuid.uuid4().hex}"]) == 0
