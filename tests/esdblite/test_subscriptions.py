"""Catch-up subscriptions to $all and streams: start points, checkpoints, caught-up, live (§3.6)."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable

import pytest
from esdbclient import EventStoreDBClient, RecordedEvent
from esdbclient.exceptions import EventStoreDBClientException, GrpcDeadlineExceeded, StreamIsDeleted

from tests.esdblite.support import (
    ANY,
    DELETED_REVISION,
    NO_FILTER,
    NO_STREAM,
    Collector,
    caught_up_index,
    ids,
    is_event,
    new_event,
    new_events,
    read_all_with_prefix,
    unique,
)
from tests.support.waiting import wait_until


def by_prefix(prefix: str) -> dict[str, object]:
    """subscribe_to_all arguments that select the streams whose names start with prefix."""
    return {"filter_include": [f"{prefix}.*"], "filter_by_stream_name": True}


def has_caught_up(items: list[RecordedEvent]) -> bool:
    return caught_up_index(items) is not None


def events_after_caught_up(items: list[RecordedEvent]) -> list[RecordedEvent]:
    index = caught_up_index(items)
    assert index is not None
    return [i for i in items[index + 1 :] if is_event(i)]


@pytest.fixture
def collect() -> Callable[..., Collector]:
    """Wraps subscriptions in Collectors and stops them all after the test."""
    collectors: list[Collector] = []

    def make(subscription: object) -> Collector:
        c = Collector(subscription)
        collectors.append(c)
        return c

    yield make
    for c in collectors:
        c.stop()


def test_subscribe_to_all_catches_up_then_delivers_live_events(
    client: EventStoreDBClient, collect: Callable[..., Collector]
):
    prefix = unique("sub")
    old = new_events(3)
    client.append_to_stream(f"{prefix}-a", current_version=NO_STREAM, events=old)
    c = collect(client.subscribe_to_all(include_caught_up=True, **by_prefix(prefix)))
    items = c.wait_for(has_caught_up, what="caught up")
    assert ids(items[: caught_up_index(items)]) == ids(old)

    live = new_events(2)
    client.append_to_stream(f"{prefix}-b", current_version=NO_STREAM, events=live)
    items = c.wait_for(lambda i: len(events_after_caught_up(i)) >= 2, what="live events")
    assert ids(events_after_caught_up(items)) == ids(live)


def test_subscribe_to_all_from_a_position_is_exclusive(
    client: EventStoreDBClient, collect: Callable[..., Collector]
):
    prefix = unique("sub")
    client.append_to_stream(f"{prefix}-a", current_version=NO_STREAM, events=new_events(3))
    _, p1, p2 = (r.commit_position for r in client.get_stream(f"{prefix}-a"))
    c = collect(
        client.subscribe_to_all(commit_position=p1, include_caught_up=True, **by_prefix(prefix))
    )
    items = c.wait_for(has_caught_up)
    assert [i.commit_position for i in items[: caught_up_index(items)]] == [p2]


def test_subscribe_to_all_from_position_zero_starts_with_the_first_record(
    client: EventStoreDBClient, collect: Callable[..., Collector]
):
    [first] = client.read_all(limit=1, **NO_FILTER)
    c = collect(client.subscribe_to_all(commit_position=0, **NO_FILTER))
    [received, *_] = c.wait_for(lambda items: len(items) >= 1)
    assert (received.id, received.commit_position) == (first.id, first.commit_position)


def test_subscribe_to_all_from_the_end_delivers_only_new_events(
    client: EventStoreDBClient, collect: Callable[..., Collector]
):
    prefix = unique("sub")
    client.append_to_stream(f"{prefix}-a", current_version=NO_STREAM, events=new_events(2))
    c = collect(client.subscribe_to_all(from_end=True, include_caught_up=True, **by_prefix(prefix)))
    # The start is captured before the confirmation, so this append must be delivered.
    e = new_event()
    client.append_to_stream(f"{prefix}-a", current_version=1, events=[e])
    items = c.wait_for(lambda i: any(is_event(x) for x in i), what="the new event")
    assert ids(x for x in items if is_event(x)) == [e.id]


def test_caught_up_arrives_even_when_everything_is_filtered_out(
    client: EventStoreDBClient, collect: Callable[..., Collector]
):
    nothing = [f"NoSuchType{uuid.uuid4().hex}"]
    c = collect(client.subscribe_to_all(filter_include=nothing, include_caught_up=True))
    items = c.wait_for(has_caught_up)
    assert not any(is_event(i) for i in items)
    c2 = collect(
        client.subscribe_to_all(from_end=True, filter_include=nothing, include_caught_up=True)
    )
    c2.wait_for(has_caught_up)


def test_checkpoints_come_at_the_requested_interval_when_nothing_matches(
    client: EventStoreDBClient, collect: Callable[..., Collector]
):
    s = unique("noise")
    window, multiplier = 2, 2
    interval = window * multiplier
    last = client.append_to_stream(s, current_version=NO_STREAM, events=new_events(3 * interval))
    c = collect(
        client.subscribe_to_all(
            filter_include=[f"NoSuchType{uuid.uuid4().hex}"],
            include_checkpoints=True,
            include_caught_up=True,
            window_size=window,
            checkpoint_interval_multiplier=multiplier,
        )
    )
    items = c.wait_for(has_caught_up, what="caught up")
    catch_up = items[: caught_up_index(items)]
    assert catch_up and all(i.is_checkpoint for i in catch_up)
    positions = [i.commit_position for i in catch_up]
    assert positions == sorted(positions)
    # The final catch-up checkpoint is at the last examined record: the last committed one.
    assert positions[-1] == last

    live_positions = []
    for n in range(3 * interval):
        live_positions.append(
            client.append_to_stream(s, current_version=3 * interval - 1 + n, events=new_event())
        )

    def live_checkpoints(items: list[RecordedEvent]) -> list[int]:
        after = items[caught_up_index(items) + 1 :]
        return [i.commit_position for i in after if i.is_checkpoint]

    items = c.wait_for(lambda i: len(live_checkpoints(i)) >= 3, what="3 live checkpoints")
    live = live_checkpoints(items)
    assert not any(is_event(i) for i in items)
    # A live checkpoint is sent at the record that completes each interval, never beyond the
    # last committed record.
    assert set(live) <= set(live_positions)
    indexes = [live_positions.index(p) for p in live]
    assert all(b - a == interval for a, b in itertools.pairwise(indexes))


def test_checkpoints_never_pass_the_last_committed_position(
    client: EventStoreDBClient, collect: Callable[..., Collector]
):
    s = unique("noise")
    c = collect(
        client.subscribe_to_all(
            from_end=True,
            filter_include=[f"NoSuchType{uuid.uuid4().hex}"],
            include_checkpoints=True,
            include_caught_up=True,
            window_size=1,
            checkpoint_interval_multiplier=1,
        )
    )
    c.wait_for(has_caught_up)
    last = 0
    for n in range(5):
        last = client.append_to_stream(s, current_version=ANY, events=new_events(n + 1))
    items = c.wait_for(
        lambda items: any(i.is_checkpoint and i.commit_position == last for i in items),
        what="a checkpoint at the last committed record",
    )
    checkpoints = [i.commit_position for i in items if i.is_checkpoint]
    assert checkpoints == sorted(checkpoints)
    assert max(checkpoints) == last


def test_concurrent_writers_are_delivered_exactly_once_in_order(
    client: EventStoreDBClient,
    make_client: Callable[[], EventStoreDBClient],
    collect: Callable[..., Collector],
):
    prefix = unique("live")
    writers, batches, batch_size = 4, 25, 2
    acked: dict[str, list[uuid.UUID]] = {}
    errors: list[BaseException] = []

    def write(stream: str, writer_client: EventStoreDBClient) -> None:
        acked[stream] = []
        try:
            for n in range(batches):
                batch = new_events(batch_size)
                version = NO_STREAM if n == 0 else n * batch_size - 1
                writer_client.append_to_stream(stream, current_version=version, events=batch)
                acked[stream].extend(ids(batch))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(f"{prefix}-{i}", make_client()), daemon=True)
        for i in range(writers)
    ]
    for t in threads:
        t.start()
    # Subscribe while the writers are busy, so the catch-up -> live switch happens under load.
    wait_until(lambda: sum(len(v) for v in acked.values()) >= 20, what="some acknowledged writes")
    c = collect(client.subscribe_to_all(**by_prefix(prefix)))
    for t in threads:
        t.join(timeout=60)
    assert not errors
    sentinel = new_event()
    client.append_to_stream(f"{prefix}-sentinel", current_version=NO_STREAM, events=[sentinel])
    items = c.wait_for(lambda items: sentinel.id in ids(items), timeout=30, what="the sentinel")

    received = [i for i in items if i.id != sentinel.id]
    assert ids(items)[-1] == sentinel.id
    assert len(received) == writers * batches * batch_size
    assert len(set(ids(received))) == len(received)
    positions = [i.commit_position for i in received]
    assert positions == sorted(positions)
    for stream, stream_ids in acked.items():
        mine = [i for i in received if i.stream_name == stream]
        assert ids(mine) == stream_ids
        assert [i.stream_position for i in mine] == list(range(len(stream_ids)))
    assert ids(read_all_with_prefix(client, prefix)) == ids(items)


def test_stream_subscription_switches_from_catch_up_to_live_without_gaps(
    client: EventStoreDBClient,
    make_client: Callable[[], EventStoreDBClient],
    collect: Callable[..., Collector],
):
    s = unique()
    total = 120
    acked: list[int] = []
    writer_client = make_client()

    def write() -> None:
        for n in range(total):
            writer_client.append_to_stream(
                s, current_version=NO_STREAM if n == 0 else n - 1, events=new_event()
            )
            acked.append(n)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    wait_until(lambda: len(acked) >= 20, what="some acknowledged writes")
    c = collect(client.subscribe_to_stream(s))
    writer.join(timeout=60)
    assert len(acked) == total
    items = c.wait_for(lambda items: len(items) >= total, timeout=30)
    assert [i.stream_position for i in items] == list(range(total))


def test_subscribe_to_a_stream_from_the_start_and_from_a_revision(
    client: EventStoreDBClient, collect: Callable[..., Collector]
):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(5))

    def catch_up(**kwargs: object) -> list[int]:
        c = collect(client.subscribe_to_stream(s, include_caught_up=True, **kwargs))
        items = c.wait_for(has_caught_up)
        return [i.stream_position for i in items[: caught_up_index(items)]]

    assert catch_up() == [0, 1, 2, 3, 4]
    assert catch_up(stream_position=2) == [3, 4]
    assert catch_up(stream_position=0) == [1, 2, 3, 4]
    assert catch_up(stream_position=4) == []


def test_subscribe_to_a_stream_from_the_end(
    client: EventStoreDBClient, collect: Callable[..., Collector]
):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(2))
    c = collect(client.subscribe_to_stream(s, from_end=True, include_caught_up=True))
    e = new_event()
    client.append_to_stream(s, current_version=1, events=[e])
    items = c.wait_for(lambda i: any(is_event(x) for x in i))
    [received] = [x for x in items if is_event(x)]
    assert (received.id, received.stream_position) == (e.id, 2)


def test_a_subscription_to_a_missing_stream_waits_for_its_creation(
    client: EventStoreDBClient, collect: Callable[..., Collector]
):
    s = unique()
    c = collect(client.subscribe_to_stream(s, include_caught_up=True))
    items = c.wait_for(has_caught_up)
    assert items[0].is_caught_up
    events = new_events(2)
    client.append_to_stream(s, current_version=NO_STREAM, events=events)
    items = c.wait_for(lambda i: len(events_after_caught_up(i)) >= 2)
    assert ids(events_after_caught_up(items)) == ids(events)


@pytest.mark.parametrize("target", ["stream", "$all"])
def test_an_event_appended_right_after_caught_up_is_delivered(
    client: EventStoreDBClient, collect: Callable[..., Collector], target: str
):
    # Repeated, because a lost wake-up between "caught up" and "wait for the next commit" is a
    # race that a single attempt may miss.
    for _ in range(20):
        s = unique()
        if target == "stream":
            subscription = client.subscribe_to_stream(s, include_caught_up=True)
        else:
            subscription = client.subscribe_to_all(
                from_end=True, include_caught_up=True, **by_prefix(s)
            )
        c = collect(subscription)
        c.wait_for(has_caught_up)
        e = new_event()
        client.append_to_stream(s, current_version=NO_STREAM, events=[e])
        items = c.wait_for(lambda i: len(events_after_caught_up(i)) >= 1, timeout=5)
        assert ids(events_after_caught_up(items)) == [e.id]
        c.stop()


def test_a_subscription_to_a_tombstoned_stream_is_deleted(client: EventStoreDBClient):
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(1))
    client.tombstone_stream(s, current_version=ANY)
    subscription = client.subscribe_to_stream(s)  # confirmed first, then ended by the server
    try:
        with pytest.raises(StreamIsDeleted):
            next(iter(subscription))
    finally:
        subscription.stop()


def test_a_tombstone_while_live_is_delivered_then_ends_the_subscription(
    client: EventStoreDBClient, collect: Callable[..., Collector]
):
    s = unique()
    e = new_event()
    client.append_to_stream(s, current_version=NO_STREAM, events=[e])
    c = collect(client.subscribe_to_stream(s, include_caught_up=True))
    c.wait_for(has_caught_up)
    client.tombstone_stream(s, current_version=0)
    error = c.wait_finished()
    assert isinstance(error, StreamIsDeleted)
    received = c.events()
    assert ids(received[:1]) == [e.id]
    [deletion] = received[1:]
    assert (deletion.type, deletion.stream_position) == ("$streamDeleted", DELETED_REVISION)


def test_stop_ends_a_subscription(client: EventStoreDBClient):
    c = Collector(client.subscribe_to_all(from_end=True, include_caught_up=True))
    c.wait_for(has_caught_up)
    c.stop()
    assert c.wait_finished() is None
    s = unique()
    client.append_to_stream(s, current_version=NO_STREAM, events=new_events(1))
    assert len(client.get_stream(s)) == 1


def test_many_open_subscriptions_all_receive_live_events(
    client: EventStoreDBClient, collect: Callable[..., Collector]
):
    prefix = unique("fan")
    s = f"{prefix}-a"
    subscriptions = [
        collect(client.subscribe_to_all(from_end=True, **by_prefix(prefix))) for _ in range(30)
    ]
    subscriptions += [collect(client.subscribe_to_stream(s)) for _ in range(10)]
    e = new_event()
    client.append_to_stream(s, current_version=NO_STREAM, events=[e])
    assert ids(client.get_stream(s)) == [e.id]
    for c in subscriptions:
        assert ids(c.wait_for(lambda items: len(items) >= 1)) == [e.id]


def test_a_subscription_with_a_deadline_ends_with_deadline_exceeded(client: EventStoreDBClient):
    s = unique()
    c = Collector(client.subscribe_to_stream(s, include_caught_up=True, timeout=1.0))
    try:
        c.wait_for(has_caught_up)
        error = c.wait_finished(timeout=15)
    finally:
        c.stop()
    assert isinstance(error, GrpcDeadlineExceeded), error
    assert isinstance(error, EventStoreDBClientException)
