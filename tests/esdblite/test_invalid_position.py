"""$all read from a position that starts no record fails as on EventStoreDB (spec §8.3)."""

from __future__ import annotations

import pytest
from esdbclient import EventStoreDBClient
from esdbclient.exceptions import GrpcError, UnknownError

from tests.esdblite.support import NO_FILTER, NO_STREAM, new_events, unique


def _positions(client: EventStoreDBClient) -> list[int]:
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(2))
    return [e.commit_position for e in client.get_stream(s)]


@pytest.mark.parametrize("backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize(
    ("filtering", "result"),
    [(NO_FILTER, "ReadAllResult"), ({}, "FilteredReadAllResult")],
    ids=["unfiltered", "filtered"],
)
def test_a_read_from_inside_a_record_fails_with_eventstoredbs_error(
    client: EventStoreDBClient, backwards: bool, filtering: dict[str, object], result: str
):
    first, _ = _positions(client)
    with pytest.raises(UnknownError) as raised:
        list(client.read_all(commit_position=first + 1, backwards=backwards, **filtering))
    assert f"Unexpected {result}: InvalidPosition" in str(raised.value)


def test_reads_from_record_positions_the_start_and_the_end_succeed(client: EventStoreDBClient):
    first, second = _positions(client)
    assert [
        r.commit_position for r in client.read_all(commit_position=first, limit=2, **NO_FILTER)
    ] == [first, second]
    assert list(client.read_all(commit_position=0, limit=1, **NO_FILTER))
    assert [
        r.commit_position
        for r in client.read_all(commit_position=second, backwards=True, limit=1, **NO_FILTER)
    ] == [first]
    last = client.get_commit_position(**NO_FILTER)
    end = next(iter(client.read_all(backwards=True, limit=1, **NO_FILTER)))
    assert end.commit_position == last


def test_a_subscription_from_inside_a_record_fails(client: EventStoreDBClient):
    first, _ = _positions(client)
    subscription = client.subscribe_to_all(commit_position=first + 3, **NO_FILTER)
    with pytest.raises(GrpcError) as raised:
        next(iter(subscription))
    assert "Trying to read from an invalid position." in str(raised.value)
    subscription.stop()
