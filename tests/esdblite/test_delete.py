"""Soft delete, re-creation, tombstones and stream metadata including $tb (§3.7-§3.9, §4.3)."""

from __future__ import annotations

import re

import pytest
from esdbclient import EventStoreDBClient
from esdbclient.exceptions import (
    FailedPrecondition,
    NotFound,
    StreamIsDeleted,
    WrongCurrentVersion,
)

from tests.esdblite.support import (
    ANY,
    DELETED_REVISION,
    MODES,
    NO_STREAM,
    STREAM_EXISTS,
    Collector,
    append,
    caught_up_index,
    ids,
    new_event,
    new_events,
    read_all_of_streams,
    unique,
)

EXPECTATIONS = {"ANY": ANY, "NO_STREAM": NO_STREAM, "STREAM_EXISTS": STREAM_EXISTS}


def test_a_soft_deleted_stream_reads_as_not_found_but_stays_in_all(client: EventStoreDBClient):
    s = unique()
    events = new_events(2)
    client.append_to_stream(s, current_version=NO_STREAM, events=events)
    client.set_stream_metadata(s, metadata={"owner": "tests"})

    client.delete_stream(s, current_version=1)

    with pytest.raises(NotFound, match=re.escape(f"Stream '{s}' not found")):
        client.get_stream(s)
    with pytest.raises(NotFound):
        client.get_stream(s, backwards=True)
    assert client.get_current_version(s) == NO_STREAM
    # Deletion writes only "$tb": max to the metastream, dropping the other keys.
    assert client.get_stream_metadata(s) == ({"$tb": DELETED_REVISION}, 1)
    assert ids(read_all_of_streams(client, [s])) == ids(events)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("expectation", ["NO_STREAM", "ANY", "old last revision"])
def test_re_creating_a_soft_deleted_stream_continues_its_numbering(
    client: EventStoreDBClient, mode: str, expectation: str
):
    s = unique()
    old = new_events(2)
    client.append_to_stream(s, current_version=NO_STREAM, events=old)
    client.delete_stream(s, current_version=ANY)

    e = new_event()
    expected = EXPECTATIONS.get(expectation, 1)
    append(client, mode, s, [e], expected)

    [recorded] = client.get_stream(s)
    assert (recorded.id, recorded.stream_position) == (e.id, 2)
    assert client.get_current_version(s) == 2
    metadata, _ = client.get_stream_metadata(s)
    assert metadata["$tb"] == 2
    assert ids(read_all_of_streams(client, [s])) == [*ids(old), e.id]


@pytest.mark.parametrize("expectation", ["ANY", "NO_STREAM", "STREAM_EXISTS", 0])
def test_deleting_a_stream_that_never_existed_is_not_found(
    client: EventStoreDBClient, expectation: object
):
    s = unique()
    with pytest.raises(NotFound):
        client.delete_stream(s, current_version=EXPECTATIONS.get(expectation, expectation))
    assert client.get_stream_metadata(s) == ({}, NO_STREAM)


def test_deleting_with_the_wrong_revision_is_a_wrong_version(client: EventStoreDBClient):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(2))
    with pytest.raises(WrongCurrentVersion) as excinfo:
        client.delete_stream(s, current_version=5)
    assert str(excinfo.value) == (
        f"Delete failed due to WrongExpectedVersion. Stream: {s}, "
        "Expected version: 5, Actual version: 1"
    )
    with pytest.raises(WrongCurrentVersion, match="Expected version: -1, Actual version: 1"):
        client.delete_stream(s, current_version=NO_STREAM)
    assert len(client.get_stream(s)) == 2


def test_repeated_deletes_succeed_with_any_or_the_right_revision(client: EventStoreDBClient):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(2))
    client.delete_stream(s, current_version=1)
    client.delete_stream(s, current_version=ANY)
    client.delete_stream(s, current_version=1)
    with pytest.raises(NotFound):
        client.get_stream(s)


@pytest.mark.parametrize("mode", MODES)
def test_stream_exists_on_a_soft_deleted_stream_reports_it_deleted(
    client: EventStoreDBClient, mode: str
):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(2))
    client.delete_stream(s, current_version=ANY)
    with pytest.raises(StreamIsDeleted):
        client.delete_stream(s, current_version=STREAM_EXISTS)
    expected_error = FailedPrecondition if mode == "Append" else StreamIsDeleted
    with pytest.raises(expected_error):
        append(client, mode, s, [new_event()], STREAM_EXISTS)
    with pytest.raises(NotFound):
        client.get_stream(s)


def test_a_tombstoned_stream_reports_deleted_everywhere(client: EventStoreDBClient):
    s = unique()
    events = new_events(2)
    client.append_to_stream(s, current_version=NO_STREAM, events=events)

    client.tombstone_stream(s, current_version=1)

    with pytest.raises(StreamIsDeleted):
        client.get_stream(s)
    with pytest.raises(StreamIsDeleted):
        client.get_stream(s, backwards=True)
    with pytest.raises(StreamIsDeleted):
        client.get_current_version(s)
    with pytest.raises(StreamIsDeleted):
        client.get_stream_metadata(s)
    with pytest.raises(StreamIsDeleted):
        client.delete_stream(s, current_version=ANY)
    with pytest.raises(StreamIsDeleted):
        client.tombstone_stream(s, current_version=ANY)
    recorded = read_all_of_streams(client, [s])
    assert ids(recorded[:2]) == ids(events)
    [tombstone] = recorded[2:]
    assert (tombstone.type, tombstone.stream_position) == ("$streamDeleted", DELETED_REVISION)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("expectation", ["ANY", "NO_STREAM", "STREAM_EXISTS", 0, 1])
def test_appending_to_a_tombstoned_stream_fails_whatever_the_expectation(
    client: EventStoreDBClient, mode: str, expectation: object
):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(2))
    client.tombstone_stream(s, current_version=ANY)
    expected = EXPECTATIONS.get(expectation, expectation)
    if mode == "Append":
        # Client quirk: the real FAILED_PRECONDITION "is deleted" surfaces as FailedPrecondition.
        with pytest.raises(FailedPrecondition, match=re.escape(f"Event stream '{s}' is deleted.")):
            append(client, mode, s, [new_event()], expected)
    else:
        with pytest.raises(StreamIsDeleted):
            append(client, mode, s, [new_event()], expected)
    assert len(read_all_of_streams(client, [s])) == 3


def test_tombstoning_a_stream_that_never_existed(client: EventStoreDBClient):
    s = unique()
    client.tombstone_stream(s, current_version=ANY)
    with pytest.raises(StreamIsDeleted):
        client.get_stream(s)
    other = unique()
    with pytest.raises(NotFound):
        client.tombstone_stream(other, current_version=STREAM_EXISTS)
    with pytest.raises(NotFound):
        client.get_stream(other)


def test_tombstoning_with_the_wrong_revision_is_a_wrong_version(client: EventStoreDBClient):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(1))
    with pytest.raises(WrongCurrentVersion, match="Expected version: 3, Actual version: 0"):
        client.tombstone_stream(s, current_version=3)
    assert len(client.get_stream(s)) == 1


def test_metadata_writes_to_a_tombstoned_stream_succeed_but_do_not_undelete_it(
    client: EventStoreDBClient,
):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(1))
    client.tombstone_stream(s, current_version=ANY)
    client.set_stream_metadata(s, metadata={"note": "after the tombstone"})
    with pytest.raises(StreamIsDeleted):
        client.get_stream_metadata(s)
    with pytest.raises(StreamIsDeleted):
        client.get_stream(s)


def test_stream_metadata_round_trips_with_its_own_versions(client: EventStoreDBClient):
    s = unique()
    assert client.get_stream_metadata(s) == ({}, NO_STREAM)
    client.set_stream_metadata(s, metadata={"a": 1, "nested": {"b": [1, 2]}})
    assert client.get_stream_metadata(s) == ({"a": 1, "nested": {"b": [1, 2]}}, 0)
    client.set_stream_metadata(s, metadata={"a": 2}, current_version=0)
    assert client.get_stream_metadata(s) == ({"a": 2}, 1)
    with pytest.raises(WrongCurrentVersion):
        client.set_stream_metadata(s, metadata={"a": 3}, current_version=0)
    assert client.get_stream_metadata(s) == ({"a": 2}, 1)
    # Metadata alone does not make the stream exist.
    with pytest.raises(NotFound):
        client.get_stream(s)


def test_truncate_before_hides_earlier_events(client: EventStoreDBClient):
    s = unique()
    events = new_events(5)
    client.append_to_stream(s, current_version=NO_STREAM, events=events)
    client.set_stream_metadata(s, metadata={"$tb": 3})

    assert [r.stream_position for r in client.get_stream(s)] == [3, 4]
    assert [r.stream_position for r in client.get_stream(s, backwards=True)] == [4, 3]
    assert [r.stream_position for r in client.get_stream(s, stream_position=1)] == [3, 4]
    assert client.get_current_version(s) == 4
    assert ids(read_all_of_streams(client, [s])) == ids(events)

    collector = Collector(client.subscribe_to_stream(s, include_caught_up=True))
    try:
        items = collector.wait_for(lambda items: caught_up_index(items) is not None)
    finally:
        collector.stop()
    before = items[: caught_up_index(items)]
    assert [r.stream_position for r in before] == [3, 4]
