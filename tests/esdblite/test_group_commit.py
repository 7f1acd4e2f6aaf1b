"""Group commit: concurrent writes share one fsync, a lone writer never waits, and a group's
answers reach an event loop in one call."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from esdblite import store as store_module
from esdblite.index import Index
from esdblite.log import EventLog
from esdblite.rules import ANY, NO_STREAM
from esdblite.store import Store
from esdblite.writer import (
    ProposedEvent,
    StoreFailure,
    Writer,
    WriteRequest,
    WriteResult,
    settle,
)
from tests.support.waiting import wait_until

# Long enough that a writer which waited for it could never answer within ANSWER_TIMEOUT.
LONG_LINGER = 600.0
ANSWER_TIMEOUT = 60.0


def new_append() -> WriteRequest:
    event = ProposedEvent(uuid.uuid4().bytes, "MoneyDeposited", True, b"", b'{"amount":1}')
    return WriteRequest("append", f"s-{uuid.uuid4().hex}", NO_STREAM, [event])


def test_writes_arriving_one_by_one_after_concurrent_groups_share_one_fsync(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a writer whose recent groups held three writes, and an unbounded wait for more
    monkeypatch.setattr(store_module, "LINGER_SECONDS", LONG_LINGER)
    store._recent_group = 3
    groups, fsyncs = store.stats["groups"], store.stats["fsyncs"]
    # when three writes arrive one after the other, the later ones once the writer holds the
    # first
    futures = [store.write(new_append())]
    wait_until(store._queue.empty, timeout=ANSWER_TIMEOUT)
    futures += [store.write(new_append()) for _ in range(2)]
    results = [f.result(timeout=ANSWER_TIMEOUT) for f in futures]
    # then they were committed together, in their order, with one fsync
    assert store.stats["groups"] == groups + 1
    assert store.stats["fsyncs"] == fsyncs + 1
    positions = [r.position for r in results]
    assert positions == sorted(positions)


def test_a_lone_writer_never_waits_for_company(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a writer that has only seen one write at a time, and a wait that would never end
    monkeypatch.setattr(store_module, "LINGER_SECONDS", LONG_LINGER)
    groups = store.stats["groups"]
    # when writes come one at a time, each awaited before the next
    for _ in range(3):
        # then each is answered (a writer that waited would not answer in time)
        store.write(new_append()).result(timeout=ANSWER_TIMEOUT)
    assert store.stats["groups"] == groups + 3


def test_a_wait_that_runs_out_makes_the_writer_stop_waiting(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a writer expecting four writes a group, with a short wait
    monkeypatch.setattr(store_module, "LINGER_SECONDS", 0.01)
    store._recent_group = 4
    # when one write comes alone, it is committed once the wait runs out
    store.write(new_append()).result(timeout=ANSWER_TIMEOUT)
    # then the next lone write does not wait at all (a wait now would never end)
    monkeypatch.setattr(store_module, "LINGER_SECONDS", LONG_LINGER)
    store.write(new_append()).result(timeout=ANSWER_TIMEOUT)


def test_a_groups_answers_awaited_on_a_loop_are_settled_on_that_loops_thread() -> None:
    # given requests awaited on an event loop running in its own thread, and one awaited
    # by a plain thread
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        on_loop = [new_append(), new_append()]
        for request in on_loop:
            request.loop = loop
        plain = new_append()
        seen: list[int] = []
        for request in on_loop:
            request.future.add_done_callback(lambda _: seen.append(threading.get_ident()))
        # when the writer settles the group: a result, a refusal, and the plain one
        failure = RuntimeError("refused")
        settle(
            [(on_loop[0], WriteResult(0, 10)), (on_loop[1], failure), (plain, WriteResult(1, 20))]
        )
        # then the plain one is settled at once, the others on the loop's thread
        assert plain.future.result(timeout=0) == WriteResult(1, 20)
        assert on_loop[0].future.result(timeout=ANSWER_TIMEOUT) == WriteResult(0, 10)
        assert on_loop[1].future.exception(timeout=ANSWER_TIMEOUT) is failure
        assert seen == [runner.ident, runner.ident]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(timeout=ANSWER_TIMEOUT)
        loop.close()


def test_answers_for_a_closed_loop_are_settled_at_once_and_given_up_ones_are_skipped() -> None:
    # given a request whose loop is closed and one whose caller gave up
    loop = asyncio.new_event_loop()
    loop.close()
    orphan, given_up = new_append(), new_append()
    orphan.loop = loop
    given_up.future.cancel()
    # when the writer settles them
    settle([(orphan, WriteResult(0, 10)), (given_up, WriteResult(1, 20))])
    # then the first is answered without its loop, the second left as its caller left it
    assert orphan.future.result(timeout=0) == WriteResult(0, 10)
    assert given_up.future.cancelled()


class RecordingLog(EventLog):
    """A real event log that also remembers every write it was given."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, fsync=False)
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(data)
        return super().write(data)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    """A writer on a fresh log and index, driven synchronously by the test."""
    w = Writer(RecordingLog(tmp_path / "events.log"), Index(tmp_path / "index.sqlite"), print)
    try:
        yield w
    finally:
        w.index.close()
        w.log.close()


def append_to(stream: str, expected: int, *event_ids: bytes) -> WriteRequest:
    events = [ProposedEvent(i, "MoneyDeposited", True, b"", b"{}") for i in event_ids]
    return WriteRequest("append", stream, expected, events)


def test_a_retry_in_the_same_group_is_answered_as_the_first_write(writer: Writer) -> None:
    # given a group holding a write and its retry (same event ids) on a new stream
    ids = (uuid.uuid4().bytes, uuid.uuid4().bytes)
    first, retry = append_to("retried", ANY, *ids), append_to("retried", ANY, *ids)
    # when the writer commits the group
    writer.commit([first, retry])
    # then the retry sees the first write's rows: it is answered as it, and nothing is doubled
    assert retry.future.result(timeout=0) == first.future.result(timeout=0)
    rows = writer.index.db.execute("SELECT revision FROM events WHERE stream = 'retried'")
    assert sorted(revision for (revision,) in rows) == [0, 1]


def test_a_group_whose_rows_the_index_refuses_writes_nothing_to_the_log(writer: Writer) -> None:
    # given an index that refuses the rows of one stream
    writer.index.db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.stream = 'refused' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    end = writer.log.end
    group = [
        append_to("accepted", NO_STREAM, uuid.uuid4().bytes),
        append_to("refused", ANY, uuid.uuid4().bytes),
    ]
    # when the writer commits a group holding them and another write
    writer.commit(group)
    # then the whole group fails before anything of it reaches the log
    for request in group:
        assert isinstance(request.future.exception(timeout=0), StoreFailure)
    assert isinstance(writer.log, RecordingLog)
    assert writer.log.writes == []
    assert writer.log.end == end
