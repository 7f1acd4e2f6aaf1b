"""Pipelined appends: every thread of a process shares one long-lived gRPC BatchAppend call.

esdbclient 1.1.7 opens one BatchAppend call per append and has no public API for a shared one
(its multiplexed appender is commented out), so this drives the generated stub over the client's
own channel, with esdbclient's own request builder and answer decoder: the requests on the wire
and the exceptions raised are the ones of `append_to_stream`. Each append carries a correlation
id; the server answers each once it is durable, in any order (esdb-protocol §8.4).
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
import uuid
from collections.abc import Sequence

import grpc
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.common import handle_rpc_error
from esdbclient.connection_spec import NODE_PREFERENCE_LEADER, URI_SCHEME_ESDB
from esdbclient.exceptions import (
    CancelledByClient,
    DeadlineExceeded,
    DiscoveryFailed,
    EventStoreDBClientException,
    GrpcError,
    NodeIsNotLeader,
    ServiceUnavailable,
)
from esdbclient.protos.Grpc import streams_pb2
from esdbclient.streams import BaseStreamsService

# As esdbclient's @retrygrpc, a call that fails is retried this long after, on a new call; more
# than esdbclient's once, so that a leader change (NotLeader, then a reconnection, then perhaps
# a lost connection while the new leader takes over) is ridden out.
RETRY_DELAY = 0.1
ATTEMPTS = 4
# How long close() waits for the answers still due before it cancels the call.
CLOSE_GRACE = 5.0
_UUID_BITS = (1 << 128) - 1


class _Pending:
    """One append's answer slot: set once (by the reader, or by the sweep of a call that
    ended), awaited by its caller. A lock held from birth and released by the answer is one
    wake-up of the waiting caller; a Future's Condition costs it several lock hand-offs."""

    __slots__ = ("_answered", "_error", "_position", "current_version", "stream_name")

    def __init__(self, stream_name: str, current_version: int | StreamState) -> None:
        self.stream_name = stream_name
        self.current_version = current_version
        self._answered = threading.Lock()
        self._answered.acquire()
        self._position = 0
        self._error: BaseException | None = None

    def set_result(self, position: int) -> None:
        self._position = position
        self._answer()

    def set_exception(self, error: BaseException) -> None:
        self._error = error
        self._answer()

    def _answer(self) -> None:
        # A caller that gave up (its deadline) may be answered late; only the first counts.
        with contextlib.suppress(RuntimeError):
            self._answered.release()

    def result(self, timeout: float | None) -> int:
        """The commit position; the append's error raised; TimeoutError after `timeout` s."""
        if not self._answered.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError
        self._answered.release()  # answered for good: a later look finds it so at once
        if self._error is not None:
            raise self._error
        return self._position


class _Call:
    """One BatchAppend call: its request queue, its answers still due and its reader thread."""

    def __init__(self, client: EventStoreDBClient) -> None:
        self.outbox: queue.SimpleQueue[streams_pb2.BatchAppendReq | None] = queue.SimpleQueue()
        self.pending: dict[str, _Pending] = {}
        self.lock = threading.Lock()
        self.failure: EventStoreDBClientException | None = None  # set once the call has ended
        streams = client.streams
        # esdbclient's own stub, metadata and credentials: the call is set up as its appends are.
        try:
            self.responses = streams._stub.BatchAppend(
                iter(self.outbox.get, None),
                metadata=streams._metadata(client._call_metadata, requires_leader=True),
                credentials=client._call_credentials,
            )
        except ValueError as exc:  # the client closed the channel (a reconnection, or close())
            raise ServiceUnavailable(f"cannot open a BatchAppend call: {exc}") from exc
        self.reader = threading.Thread(target=self._read, name="ledger-batch-append", daemon=True)
        self.reader.start()

    def submit(self, request: streams_pb2.BatchAppendReq, pending: _Pending) -> bool:
        """Send one append on this call; False when the call has already ended."""
        with self.lock:
            if self.failure is not None:
                return False
            self.pending[request.correlation_id.string] = pending
            self.outbox.put(request)
        return True

    def forget(self, correlation_id: str) -> None:
        """Stop waiting for one answer (its caller gave up); a late answer is then dropped."""
        with self.lock:
            self.pending.pop(correlation_id, None)

    def _read(self) -> None:
        failure: EventStoreDBClientException
        try:
            for response in self.responses:
                with self.lock:
                    pending = self.pending.pop(response.correlation_id.string, None)
                if pending is not None:
                    _settle(pending, response)
            failure = ServiceUnavailable("the BatchAppend call ended before every answer came")
        except grpc.RpcError as exc:
            failure = handle_rpc_error(exc)
            if isinstance(failure, CancelledByClient):  # close() gave up on the answers still due
                failure = ServiceUnavailable("the append pipeline was closed before it answered")
        except Exception as exc:  # never leave a caller waiting on a reader that died
            failure = ServiceUnavailable(f"the BatchAppend call failed: {exc!r}")
        with self.lock:
            self.failure = failure
            left, self.pending = list(self.pending.values()), {}
        self.outbox.put(None)  # lets gRPC's request thread end, should it still wait for one
        for pending in left:
            pending.set_exception(failure)

    def close(self, grace: float) -> None:
        """Half-close, wait for the answers still due (at most `grace`), then end the call."""
        self.outbox.put(None)
        self.reader.join(grace)
        if self.reader.is_alive():
            self.responses.cancel()
            self.reader.join()


def _settle(pending: _Pending, response: streams_pb2.BatchAppendResp) -> None:
    try:
        position = BaseStreamsService._convert_batch_append_resp(
            response, pending.stream_name, pending.current_version
        )
    except EventStoreDBClientException as exc:  # the client's mapping: WrongCurrentVersion, ...
        pending.set_exception(exc)
    except Exception as exc:  # an answer the client cannot read: as a failed call, retried
        pending.set_exception(GrpcError(f"an unreadable BatchAppend answer: {exc!r}"))
    else:
        pending.set_result(position)


class BatchAppendPipeline:
    """Appends of many threads on one BatchAppend call, opened on first use and after a failure."""

    def __init__(self, client: EventStoreDBClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._call: _Call | None = None
        self._closed = False
        # A correlation id only has to tell this call's appends apart: a counter from a random
        # start, so that an append costs no system call (uuid4 reads the kernel's randomness
        # and lets go of the GIL for it, a thread switch in a process of busy callers).
        self._correlation_ids = itertools.count(uuid.uuid4().int)

    def append(
        self,
        stream_name: str,
        *,
        current_version: int | StreamState,
        events: Sequence[NewEvent],
        timeout: float | None = None,
    ) -> int:
        """Append as `EventStoreDBClient.append_to_stream` does; return the commit position.

        Raises what it raises: WrongCurrentVersion, DeadlineExceeded, ServiceUnavailable,
        NodeIsNotLeader, ... A call that breaks is retried on a new call (at most ATTEMPTS
        tries); after a NotLeader answer or a lost connection the client first reconnects, as
        esdbclient's own appends do: to the leader named, or by discovery again. The events keep
        their ids, so an append committed before the break is not written twice.
        """
        if timeout is None:
            timeout = self.client._default_deadline
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return self._append_once(stream_name, current_version, events, timeout)
            except (GrpcError, NodeIsNotLeader):
                if attempt == ATTEMPTS:
                    raise
                time.sleep(RETRY_DELAY)
        raise AssertionError("unreachable")  # pragma: no cover

    def _append_once(
        self,
        stream_name: str,
        current_version: int | StreamState,
        events: Sequence[NewEvent],
        timeout: float | None,
    ) -> int:
        correlation_id = uuid.UUID(int=next(self._correlation_ids) & _UUID_BITS)
        request = BaseStreamsService._construct_batch_append_req(
            stream_name, current_version, events, correlation_id, timeout
        )
        pending = _Pending(stream_name, current_version)
        call = self._open_call()
        if not call.submit(request, pending):
            call = self._open_call(replacing=call)
            if not call.submit(request, pending):
                pending.set_exception(
                    call.failure or ServiceUnavailable("the BatchAppend call ended")
                )
        try:
            return pending.result(timeout)
        except TimeoutError:
            call.forget(request.correlation_id.string)
            raise DeadlineExceeded(
                f"no answer to an append to {stream_name!r} in {timeout}s"
            ) from None
        except (NodeIsNotLeader, ServiceUnavailable) as exc:
            self._reconnect(call, exc)
            raise

    def _reconnect(self, failed: _Call, exc: NodeIsNotLeader | ServiceUnavailable) -> None:
        """Reconnect once per failed call (its other callers only send again), as esdbclient's
        @autoreconnect does: to the leader a NotLeader answer names when the client connects
        to the leader through discovery, otherwise to the node(s) of the URI again."""
        with self._lock:
            if self._call is not failed or self._closed:
                return
            self._call = None
            spec = self.client.connection_spec
            if isinstance(exc, NodeIsNotLeader):
                single = spec.scheme == URI_SCHEME_ESDB and len(spec.targets) == 1
                if single or spec.options.NodePreference != NODE_PREFERENCE_LEADER:
                    return  # esdbclient follows no leader here: the append is only sent again
                target = exc.leader_grpc_target
            else:
                target = None
            try:
                self.client.reconnect(target)
            except DiscoveryFailed as discovery:
                raise ServiceUnavailable(f"cannot find the leader: {discovery}") from discovery

    def _open_call(self, replacing: _Call | None = None) -> _Call:
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("the append pipeline is closed")
            call = self._call
            if call is None or call is replacing or call.failure is not None:
                call = self._call = _Call(self.client)
            return call

    def close(self, grace: float = CLOSE_GRACE) -> None:
        """Half-close the call, let the answers still due arrive, join the reader thread."""
        with self._lock:
            self._closed = True
            call, self._call = self._call, None
        if call is not None:
            call.close(grace)
