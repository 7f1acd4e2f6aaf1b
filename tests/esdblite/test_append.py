"""Append and BatchAppend: expected revisions, idempotent retries, positions (§3.1, §3.2, §4)."""

from __future__ import annotations

import itertools
import re

import pytest
from esdbclient import EventStoreDBClient, NewEvent
from esdbclient.exceptions import NotFound, WrongCurrentVersion

from tests.esdblite.support import (
    ANY,
    MODES,
    NO_STREAM,
    STREAM_EXISTS,
    append,
    ids,
    new_event,
    new_events,
    read_all_of_streams,
    unique,
)

pytestmark = pytest.mark.parametrize("mode", MODES)


def wev(text: str):  # a pytest.raises context
    return pytest.raises(WrongCurrentVersion, match=f"^{re.escape(text)}$")


def test_no_stream_creates_the_stream_at_revision_zero(client: EventStoreDBClient, mode: str):
    s = unique()
    e = new_event()
    position = append(client, mode, s, [e], NO_STREAM)
    [recorded] = client.get_stream(s)
    assert recorded.id == e.id
    assert recorded.stream_position == 0
    assert recorded.commit_position == position > 0
    assert client.get_current_version(s) == 0


def test_no_stream_on_an_existing_stream_is_a_wrong_version(client: EventStoreDBClient, mode: str):
    s = unique()
    append(client, mode, s, [new_event()], NO_STREAM)
    with wev("Stream position of last event is 0 not StreamState.NO_STREAM"):
        append(client, mode, s, [new_event()], NO_STREAM)
    assert len(client.get_stream(s)) == 1


def test_any_appends_whether_or_not_the_stream_exists(client: EventStoreDBClient, mode: str):
    s = unique()
    first, second = new_events(2)
    append(client, mode, s, [first], ANY)
    append(client, mode, s, [second], ANY)
    assert [(r.id, r.stream_position) for r in client.get_stream(s)] == [
        (first.id, 0),
        (second.id, 1),
    ]


def test_stream_exists_on_a_missing_stream_says_it_does_not_exist(
    client: EventStoreDBClient, mode: str
):
    s = unique()
    with wev(f"Stream '{s}' does not exist"):
        append(client, mode, s, [new_event()], STREAM_EXISTS)
    with pytest.raises(NotFound):
        client.get_stream(s)


def test_stream_exists_on_an_existing_stream_appends(client: EventStoreDBClient, mode: str):
    s = unique()
    append(client, mode, s, [new_event()], NO_STREAM)
    e = new_event()
    append(client, mode, s, [e], STREAM_EXISTS)
    assert client.get_stream(s)[-1].id == e.id
    assert client.get_current_version(s) == 1


def test_an_exact_revision_must_be_the_last_revision(client: EventStoreDBClient, mode: str):
    s = unique()
    append(client, mode, s, new_events(3), NO_STREAM)
    append(client, mode, s, [new_event()], 2)
    assert client.get_current_version(s) == 3
    with wev("Stream position of last event is 3 not 10"):
        append(client, mode, s, [new_event()], 10)
    with wev("Stream position of last event is 3 not 1"):
        append(client, mode, s, [new_event()], 1)
    assert client.get_current_version(s) == 3


def test_an_exact_revision_on_a_missing_stream_says_it_does_not_exist(
    client: EventStoreDBClient, mode: str
):
    s = unique()
    with wev(f"Stream '{s}' does not exist"):
        append(client, mode, s, [new_event()], 0)
    with pytest.raises(NotFound):
        client.get_stream(s)


@pytest.mark.parametrize("expectation", ["NO_STREAM", "ANY", "STREAM_EXISTS", "exact"])
def test_an_identical_retry_returns_the_original_position_and_writes_nothing(
    client: EventStoreDBClient, mode: str, expectation: str
):
    s = unique()
    if expectation == "NO_STREAM":
        expected: int | object = NO_STREAM
    else:
        append(client, mode, s, [new_event()], NO_STREAM)
        expected = {"ANY": ANY, "STREAM_EXISTS": STREAM_EXISTS, "exact": 0}[expectation]
    batch = new_events(2)
    original = append(client, mode, s, batch, expected)
    again = append(client, mode, s, batch, expected)
    assert again == original
    recorded = client.get_stream(s)
    assert ids(recorded[-2:]) == ids(batch)
    assert recorded[-1].commit_position == original
    assert len(read_all_of_streams(client, [s])) == len(recorded)


@pytest.mark.parametrize("expectation", ["ANY", "exact"])
def test_a_retry_that_only_partly_overlaps_is_a_wrong_version(
    client: EventStoreDBClient, mode: str, expectation: str
):
    s = unique()
    e1, e2, e3 = new_events(3)
    append(client, mode, s, [e1, e2], NO_STREAM)
    with pytest.raises(WrongCurrentVersion):
        # The first id was written, a later one was not: a corrupted idempotent retry.
        append(client, mode, s, [e1, e3], ANY if expectation == "ANY" else NO_STREAM)
    with pytest.raises(WrongCurrentVersion):
        append(client, mode, s, [e2, e3], ANY if expectation == "ANY" else 0)
    assert ids(client.get_stream(s)) == [e1.id, e2.id]


WORKED_EXAMPLES = [
    # (request ids, expected revision, outcome): spec §4.1 "Worked examples".
    (["e1"], NO_STREAM, ("position of", 0)),
    (["e1", "e2"], NO_STREAM, ("position of", 1)),
    (["e2", "e3"], 0, ("position of", 2)),
    (["e2", "e3", "e4"], 0, ("wrong version", "Stream position of last event is 2 not 0")),
    (
        ["new"],
        NO_STREAM,
        ("wrong version", "Stream position of last event is 2 not StreamState.NO_STREAM"),
    ),
    (["new"], 10, ("wrong version", "Stream position of last event is 2 not 10")),
]


@pytest.mark.parametrize(
    ("request_ids", "expected", "outcome"),
    WORKED_EXAMPLES,
    ids=[f"{'+'.join(r)}@{e}" for r, e, _ in WORKED_EXAMPLES],
)
def test_worked_examples(
    client: EventStoreDBClient,
    mode: str,
    request_ids: list[str],
    expected: object,
    outcome: tuple[str, object],
):
    s = unique()
    e1, e2, e3, e4, new = new_events(5)
    client.append_to_stream(s, current_version=NO_STREAM, events=[e1, e2, e3])
    positions = [r.commit_position for r in client.get_stream(s)]
    by_name: dict[str, NewEvent] = {"e1": e1, "e2": e2, "e3": e3, "e4": e4, "new": new}
    request = [by_name[name] for name in request_ids]

    kind, value = outcome
    if kind == "position of":
        assert append(client, mode, s, request, expected) == positions[value]
    else:
        with wev(str(value)):
            append(client, mode, s, request, expected)
    assert ids(client.get_stream(s)) == [e1.id, e2.id, e3.id]


def test_worked_example_stream_exists_on_a_stream_that_never_existed(
    client: EventStoreDBClient, mode: str
):
    s = unique()
    with wev(f"Stream '{s}' does not exist"):
        append(client, mode, s, [new_event()], STREAM_EXISTS)


def test_positions_are_positive_and_strictly_increasing(client: EventStoreDBClient, mode: str):
    s = unique()
    returned = [append(client, mode, s, [new_event()], ANY) for _ in range(5)]
    assert returned[0] > 0
    assert returned == sorted(set(returned))
    recorded = client.get_stream(s)
    assert [r.commit_position for r in recorded] == returned
    assert all(r.prepare_position == r.commit_position for r in recorded)
    assert [r.commit_position for r in read_all_of_streams(client, [s])] == returned


def test_a_multi_event_append_returns_the_last_events_position(
    client: EventStoreDBClient, mode: str
):
    s = unique()
    result = append(client, mode, s, new_events(3), NO_STREAM)
    first, middle, last = client.get_stream(s)
    assert 0 < first.commit_position < middle.commit_position < last.commit_position == result
    assert [r.stream_position for r in (first, middle, last)] == [0, 1, 2]


def test_positions_are_log_offsets_not_a_dense_counter(client: EventStoreDBClient, mode: str):
    s = unique()
    append(client, mode, s, new_events(3, size=300), NO_STREAM)
    append(client, mode, s, new_events(1, size=300), 2)
    positions = [r.commit_position for r in client.get_stream(s)]
    # Each record occupies at least its data in the log, so neighbours are further apart.
    assert all(b - a > 300 for a, b in itertools.pairwise(positions))
