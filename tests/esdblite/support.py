"""Helpers for the esdblite suite: events, appends by RPC, waiting, subscriptions, log frames."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from esdbclient import EventStoreDBClient, NewEvent, RecordedEvent, StreamState
from esdbclient.exceptions import NotFound, StreamIsDeleted

from esdblite.process import ServerProcess
from tests.support.esdb import external_esdb_uri

# Run the protocol tests against a real EventStoreDB by pointing LEDGER_TEST_ESDB_URI at it.
EXTERNAL_URI = external_esdb_uri()
INTERNALS_REASON = (
    "needs esdblite internals (its process, data files or crash injection); "
    "LEDGER_TEST_ESDB_URI points at an external EventStoreDB"
)

NO_STREAM = StreamState.NO_STREAM
ANY = StreamState.ANY
STREAM_EXISTS = StreamState.EXISTS

MAX_APPEND_SIZE = 1_048_576
DELETED_REVISION = 2**63 - 1
LOG_HEADER_SIZE = 16
CRASH_EXIT_CODE = 86

# The two append RPCs report errors differently (spec §3.1, §3.2), so most write rules are
# checked through both.
MODES = ("Append", "BatchAppend")

NO_FILTER: dict[str, Any] = {"filter_include": (), "filter_exclude": ()}

T = TypeVar("T")


def unique(prefix: str = "s") -> str:
    """A stream name (or name prefix) no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex}"


def new_events(count: int, type_: str = "Happened", size: int = 0) -> list[NewEvent]:
    """Fresh events with distinct ids and JSON data (padded to at least `size` bytes)."""
    events = []
    for i in range(count):
        body = {"i": i, "nonce": uuid.uuid4().hex}
        if size:
            body["pad"] = "x" * size
        events.append(NewEvent(type=type_, data=json.dumps(body).encode()))
    return events


def new_event(type_: str = "Happened") -> NewEvent:
    """One fresh event."""
    return new_events(1, type_)[0]


def append(
    client: EventStoreDBClient,
    mode: str,
    stream: str,
    events: Sequence[NewEvent],
    current_version: int | StreamState,
    timeout: float | None = None,
) -> int:
    """Append through the RPC named by `mode` and return the commit position the client reports."""
    if mode == "Append":
        if len(events) == 1:
            return client.append_to_stream(
                stream, current_version=current_version, events=events[0], timeout=timeout
            )
        # The client sends several events through Append only from its service layer.
        return client.streams.append(
            stream_name=stream,
            current_version=current_version,
            events=list(events),
            timeout=timeout,
        )
    assert mode == "BatchAppend", mode
    return client.append_to_stream(
        stream, current_version=current_version, events=list(events), timeout=timeout
    )


def ids(records: Iterable[Any]) -> list[uuid.UUID]:
    """The event ids of events or recorded events, in order."""
    return [r.id for r in records]


def read_stream_state(client: EventStoreDBClient, stream: str) -> Any:
    """A stream's visible events, or the word for why there are none."""
    try:
        return [(r.id, r.stream_position, r.commit_position) for r in client.get_stream(stream)]
    except NotFound:
        return "not found"
    except StreamIsDeleted:
        return "deleted"


def read_all_of_streams(
    client: EventStoreDBClient, names: Iterable[str], **kwargs: Any
) -> list[RecordedEvent]:
    """$all records of the given streams only (a stream-name filter, so system events pass)."""
    include = [_regex_escape(n) for n in names]
    return list(client.read_all(filter_include=include, filter_by_stream_name=True, **kwargs))


def read_all_with_prefix(
    client: EventStoreDBClient, prefix: str, **kwargs: Any
) -> list[RecordedEvent]:
    """$all records of every stream whose name starts with `prefix`."""
    return list(
        client.read_all(
            filter_include=[_regex_escape(prefix) + ".*"], filter_by_stream_name=True, **kwargs
        )
    )


def _regex_escape(name: str) -> str:
    # Stream names built by unique() hold only [a-z0-9-]; escape anything else for safety.
    return "".join(c if c.isalnum() or c in "-_" else "\\" + c for c in name)


def is_event(item: RecordedEvent) -> bool:
    """True for a real event, false for a checkpoint or a caught-up marker."""
    return not item.is_checkpoint and not item.is_caught_up


class Collector:
    """Drains a catch-up subscription on a daemon thread so a test can wait on what arrived."""

    def __init__(self, subscription: Any) -> None:
        self.subscription = subscription
        self.items: list[RecordedEvent] = []
        self.error: BaseException | None = None
        self.finished = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            for item in self.subscription:
                with self._cond:
                    self.items.append(item)
                    self._cond.notify_all()
        except BaseException as exc:  # the test inspects it
            with self._cond:
                self.error = exc
        finally:
            with self._cond:
                self.finished = True
                self._cond.notify_all()

    def wait_for(
        self,
        predicate: Callable[[list[RecordedEvent]], bool],
        *,
        timeout: float = 10.0,
        what: str = "the subscription",
    ) -> list[RecordedEvent]:
        """Block until `predicate(items)` holds; fail on timeout or if the subscription ended."""
        with self._cond:
            self._cond.wait_for(lambda: predicate(self.items) or self.finished, timeout)
            if predicate(self.items):
                return list(self.items)
            raise AssertionError(
                f"{what}: condition not met (finished={self.finished}, error={self.error!r}, "
                f"{len(self.items)} items received)"
            )

    def wait_finished(self, *, timeout: float = 15.0) -> BaseException | None:
        """Block until the subscription ends; return the error it ended with, if any."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.finished, timeout):
                raise AssertionError(f"subscription still running after {timeout} s")
            return self.error

    def events(self) -> list[RecordedEvent]:
        """The events received so far (no checkpoints, no caught-up markers)."""
        with self._cond:
            return [i for i in self.items if is_event(i)]

    def stop(self) -> None:
        """Cancel the subscription and wait for the draining thread."""
        self.subscription.stop()
        self._thread.join(timeout=10)


def caught_up_index(items: Sequence[RecordedEvent]) -> int | None:
    """Index of the first caught-up marker, if one arrived."""
    return next((i for i, item in enumerate(items) if item.is_caught_up), None)


def grpc_target(uri: str) -> str:
    """host:port of an esdb:// URI, for raw gRPC channels and sockets."""
    return urlparse(uri).netloc


def host_and_port(uri: str) -> tuple[str, int]:
    """The host (without IPv6 brackets) and the port of an esdb:// URI."""
    parsed = urlparse(uri)
    assert parsed.hostname is not None and parsed.port is not None, uri
    return parsed.hostname, parsed.port


@dataclass(frozen=True)
class Frame:
    """One framed record of DIR/events.log."""

    offset: int
    payload: bytes

    @property
    def end(self) -> int:
        """Offset just after the frame."""
        return self.offset + 12 + len(self.payload)


def parse_frames(path: Path) -> tuple[list[Frame], int]:
    """The valid frames from the start of the log, and the offset where the valid prefix ends.

    Layout (server contract): a 16-byte header, then frames of
    [u32 len][u32 crc32][payload][u32 len], all little-endian.
    """
    data = path.read_bytes()
    offset = LOG_HEADER_SIZE
    frames = []
    while offset + 12 <= len(data):
        length, crc = struct.unpack_from("<II", data, offset)
        end = offset + 12 + length
        if length == 0 or end > len(data):
            break
        payload = data[offset + 8 : offset + 8 + length]
        (trailer,) = struct.unpack_from("<I", data, offset + 8 + length)
        if trailer != length or zlib.crc32(payload) != crc:
            break
        frames.append(Frame(offset, payload))
        offset = end
    return frames, offset


def frame(payload: bytes, *, crc: int | None = None) -> bytes:
    """Bytes of one log frame, with a correct CRC unless one is given."""
    crc = zlib.crc32(payload) if crc is None else crc
    return struct.pack("<II", len(payload), crc) + payload + struct.pack("<I", len(payload))


def read_log(server: ServerProcess) -> str:
    """What a stopped (or running) server has written to stderr so far."""
    assert server.log_file is not None
    return server.log_file.read_text(errors="replace")


def snapshot(client: EventStoreDBClient, streams: Iterable[str]) -> dict[str, Any]:
    """Everything a client can observe about $all and some streams, for before/after comparisons."""
    records = [
        (
            r.id,
            r.commit_position,
            r.prepare_position,
            r.stream_name,
            r.stream_position,
            r.type,
            r.data,
            r.metadata,
            r.content_type,
            r.recorded_at,
        )
        for r in client.read_all(**NO_FILTER)
    ]
    state: dict[str, Any] = {"all": records}
    for s in streams:
        state[f"events of {s}"] = read_stream_state(client, s)
        try:
            state[f"metadata of {s}"] = client.get_stream_metadata(s)
        except StreamIsDeleted:
            state[f"metadata of {s}"] = "deleted"
        try:
            state[f"version of {s}"] = client.get_current_version(s)
        except StreamIsDeleted:
            state[f"version of {s}"] = "deleted"
    return state


def flip_byte(path: Path, at: int) -> None:
    """Corrupt one byte of a file in place (every bit of it inverted)."""
    with path.open("r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


def run_esdblite(*args: str) -> subprocess.CompletedProcess[str]:
    """Run an esdblite command (backup, scavenge, repair) to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "esdblite", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
