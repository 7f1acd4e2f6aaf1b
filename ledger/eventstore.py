"""The esdbclient adapter of the EventStore protocol: account and snapshot streams."""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import (
    DeadlineExceeded,
    DiscoveryFailed,
    GrpcError,
    NodeIsNotLeader,
    NotFound,
    ServiceUnavailable,
    WrongCurrentVersion,
)

from ledger.accounts.commands import CommandMeta
from ledger.accounts.events import AccountEvent
from ledger.errors import ServiceUnavailableError
from ledger.pipeline import BatchAppendPipeline
from ledger.store import EncodedEvent, StoredEvent, VersionConflict, decode_event, encode_events
from ledger.streams import (
    ACCOUNT_STREAM_PREFIX,
    TRANSFER_STREAM_PREFIX,
    account_stream,
    snapshot_stream,
    transfer_stream,
)
from ledger.transfer_store import (
    StoredTransferEvent,
    decode_transfer_event,
    encode_transfer_events,
)
from ledger.transfers.events import AnyTransferEvent

log = logging.getLogger("ledger.eventstore")

SNAPSHOT_EVENT_TYPE = "AccountSnapshot"
# Only the newest snapshot is ever read; the one before it is kept in case the newest is bad.
SNAPSHOTS_KEPT = 2


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except (ServiceUnavailable, DeadlineExceeded) as exc:
        raise ServiceUnavailableError(
            f"the event store did not answer while {what} ({type(exc).__name__})"
        ) from exc
    except NodeIsNotLeader as exc:
        raise ServiceUnavailableError(
            f"the event store node is not the leader while {what} (an election that outlasted "
            "the resends, or an esdb:// URI naming one follower: name the cluster with "
            "esdb+discover:// or several esdb:// gossip seeds to follow the leader)"
        ) from exc
    except DiscoveryFailed as exc:
        raise ServiceUnavailableError(
            f"no leader of the event store cluster found while {what}: {exc}"
        ) from exc
    except GrpcError as exc:
        raise ServiceUnavailableError(f"the event store failed while {what}: {exc}") from exc


def with_node_preference(uri: str, preference: str) -> str:
    """`uri` with its `NodePreference` query option (esdbclient's, case-insensitive) set."""
    parts = urllib.parse.urlsplit(uri)
    query = [
        (key, value)
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() != "nodepreference"
    ]
    query.append(("NodePreference", preference))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def redact_credentials(text: str, uri: str | None = None) -> str:
    """`text` with the password of `uri` (default: of `text` itself) replaced by `***`."""
    try:
        password = urllib.parse.urlsplit(uri if uri is not None else text).password
    except ValueError:
        password = None
    if password:
        text = text.replace(password, "***")
        quoted = urllib.parse.quote(password, safe="")
        if quoted != password:
            text = text.replace(quoted, "***")
    return text


class AccountEventStore:
    """The EventStore of an EventStoreDB-compatible server, through esdbclient.

    Pipelined (the default), the appends of every thread share one long-lived BatchAppend call
    (ledger.pipeline); otherwise each append is its own call, as esdbclient makes it.
    """

    def __init__(self, client: EventStoreDBClient, *, pipelined: bool = True) -> None:
        self.client = client
        self._pipeline = BatchAppendPipeline(client) if pipelined else None
        self._capped: set[str] = set()  # snapshot streams whose $maxCount this process checked

    @classmethod
    def connect(cls, uri: str, *, pipelined: bool = True) -> AccountEventStore:
        """Connect to an EventStoreDB-compatible server: to the leader of a cluster whatever
        NodePreference the URI asks for (that is the read side's), since commands read the
        revision they append at (a single-node esdb:// URI makes no call until the first use).
        """
        try:
            return cls(EventStoreDBClient(with_node_preference(uri, "leader")), pipelined=pipelined)
        except Exception as exc:
            shown, reason = redact_credentials(uri), redact_credentials(str(exc), uri)
            raise ServiceUnavailableError(
                f"cannot use the event store at {shown}: {reason}"
            ) from None

    def close(self) -> None:
        """Close the connection: the append call first (its answers still due), then the channel."""
        if self._pipeline is not None:
            self._pipeline.close()
        self.client.close()

    def read(self, account_id: str, *, from_revision: int = 0) -> list[StoredEvent]:
        """The account's events from a revision on; empty when the stream does not exist."""
        with _translated("reading an account"):
            try:
                recorded = self.client.get_stream(
                    account_stream(account_id),
                    stream_position=from_revision if from_revision > 0 else None,
                )
            except NotFound:
                return []
        return [self._decode(r) for r in recorded]

    def read_one(self, account_id: str, *, revision: int) -> StoredEvent | None:
        """The event at one revision of the account, if there is one."""
        with _translated("reading an account"):
            try:
                recorded = self.client.get_stream(
                    account_stream(account_id), stream_position=revision, limit=1
                )
            except NotFound:
                return None
        return self._decode(recorded[0]) if recorded else None

    def current_revision(self, account_id: str) -> int:
        """The revision of the account's newest event (-1 when the stream does not exist)."""
        with _translated("reading an account"):
            version = self.client.get_current_version(account_stream(account_id))
        return version if isinstance(version, int) else -1

    def read_all(self, *, from_position: int = 0) -> Iterator[tuple[str, StoredEvent]]:
        """(account id, event) of every account event in $all order, from a position on."""
        with _translated("reading $all"):
            recorded = self.client.read_all(
                commit_position=from_position or None,
                filter_include=[ACCOUNT_STREAM_PREFIX + ".*"],
                filter_by_stream_name=True,
            )
            try:
                for r in recorded:
                    # The filter is a regular expression that may match inside a name too.
                    if r.stream_name.startswith(ACCOUNT_STREAM_PREFIX):
                        yield r.stream_name[len(ACCOUNT_STREAM_PREFIX) :], self._decode(r)
            finally:
                # Stop the server-side read before the caller can close the channel.
                recorded.stop()

    @staticmethod
    def _decode(recorded: Any) -> StoredEvent:
        return decode_event(
            recorded.stream_position,
            recorded.commit_position or 0,
            recorded.type,
            recorded.data,
            recorded.metadata,
        )

    def append(
        self,
        account_id: str,
        *,
        expected_revision: int,
        events: Sequence[AccountEvent],
        meta: CommandMeta,
    ) -> int:
        """Append at exactly the revision read (-1: a new stream); return the commit position."""
        encoded = encode_events(
            account_id, expected_revision=expected_revision, events=events, meta=meta
        )
        return self._append(
            account_stream(account_id), encoded, expected_revision, "appending to an account"
        )

    def _append(
        self, stream: str, encoded: Sequence[EncodedEvent], expected_revision: int, what: str
    ) -> int:
        """Append encoded events at exactly the revision read (-1: a new stream), on the
        pipelined call when there is one; a wrong revision is a VersionConflict."""
        new_events = [
            NewEvent(
                id=e.id,
                type=e.type,
                data=e.data,
                metadata=e.metadata,
                content_type="application/json",
            )
            for e in encoded
        ]
        current = StreamState.NO_STREAM if expected_revision < 0 else expected_revision
        append = self.client.append_to_stream if self._pipeline is None else self._pipeline.append
        with _translated(what):
            try:
                return append(stream, current_version=current, events=new_events)
            except WrongCurrentVersion as exc:
                raise VersionConflict(str(exc)) from exc

    def read_snapshot(self, account_id: str) -> bytes | None:
        """The newest snapshot's data, or None. A failure here only costs a full replay."""
        try:
            recorded = self.client.get_stream(snapshot_stream(account_id), backwards=True, limit=1)
        except NotFound:
            return None
        except Exception as exc:
            log.warning("cannot read the snapshot of %s (full replay instead): %s", account_id, exc)
            return None
        return bytes(recorded[0].data) if recorded else None

    def write_snapshot(self, account_id: str, data: bytes) -> None:
        """Store a snapshot, best effort: a failure is logged and never fails a command."""
        stream = snapshot_stream(account_id)
        try:
            self.client.append_to_stream(
                stream,
                current_version=StreamState.ANY,
                events=[NewEvent(type=SNAPSHOT_EVENT_TYPE, data=data)],
            )
            if stream not in self._capped:
                self._cap(stream)
                self._capped.add(stream)
        except Exception as exc:
            log.warning("cannot write the snapshot of %s: %s", account_id, exc)

    def _cap(self, stream: str) -> None:
        """Keep only the newest snapshots: `$maxCount` on the stream, set once (a scavenge of
        the event store then reclaims the older ones)."""
        metadata, _ = self.client.get_stream_metadata(stream)
        if metadata.get("$maxCount") != SNAPSHOTS_KEPT:
            self.client.set_stream_metadata(
                stream, metadata={**metadata, "$maxCount": SNAPSHOTS_KEPT}
            )

    def commit_position(self) -> int:
        """The commit position of the newest event in the store (0 when none)."""
        with _translated("reading the store's position"):
            return int(self.client.get_commit_position())

    def read_transfer(self, transfer_id: str) -> list[StoredTransferEvent]:
        """The transfer's events; empty when its stream does not exist."""
        with _translated("reading a transfer"):
            try:
                recorded = self.client.get_stream(transfer_stream(transfer_id))
            except NotFound:
                return []
        return [
            decode_transfer_event(r.stream_position, r.commit_position or 0, r.type, r.data)
            for r in recorded
        ]

    def append_transfer(
        self,
        transfer_id: str,
        *,
        expected_revision: int,
        events: Sequence[AnyTransferEvent],
        meta: CommandMeta,
    ) -> int:
        """Append at exactly the revision read (-1: a new stream); return the commit position."""
        encoded = encode_transfer_events(
            transfer_id, expected_revision=expected_revision, events=events, meta=meta
        )
        return self._append(
            transfer_stream(transfer_id), encoded, expected_revision, "appending to a transfer"
        )

    def read_all_transfers(
        self, *, from_position: int = 0
    ) -> Iterator[tuple[str, StoredTransferEvent]]:
        """(transfer id, event) of every transfer event in $all order, from a position on."""
        with _translated("reading $all"):
            recorded = self.client.read_all(
                commit_position=from_position or None,
                filter_include=[TRANSFER_STREAM_PREFIX + ".*"],
                filter_by_stream_name=True,
            )
            try:
                for r in recorded:
                    if r.stream_name.startswith(TRANSFER_STREAM_PREFIX):
                        yield (
                            r.stream_name[len(TRANSFER_STREAM_PREFIX) :],
                            decode_transfer_event(
                                r.stream_position, r.commit_position or 0, r.type, r.data
                            ),
                        )
            finally:
                recorded.stop()
