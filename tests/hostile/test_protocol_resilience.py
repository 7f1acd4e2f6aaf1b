"""Whole-server resilience: clients that give up mid-append, a catastrophic filter regex and
random bytes on the port must not stop esdblite from serving everybody else.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import grpc
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.protos.Grpc import streams_pb2
from hypothesis import given
from hypothesis import strategies as st

from esdblite.process import ServerProcess
from tests.hostile.protocol import FUZZ, STREAMS, Target, append_requests, proposed


def test_appends_whose_clients_gave_up_do_not_stop_later_appends(tmp_path: Path) -> None:
    # Clients that stop waiting (a deadline here; a dropped connection does the same) while
    # their append is queued or being committed: the server must go on committing writes.
    with ServerProcess(tmp_path / "esdb", log_file=tmp_path / "esdblite.log") as server:
        channel = grpc.insecure_channel(f"localhost:{server.bound_port}")
        append = channel.stream_unary(
            f"/{STREAMS}/Append",
            request_serializer=streams_pb2.AppendReq.SerializeToString,
            response_deserializer=streams_pb2.AppendResp.FromString,
        )

        def impatient(client: int, round_: int) -> None:
            for i in range(40):
                with contextlib.suppress(grpc.RpcError):
                    stream = f"impatient-{round_}-{client}-{i}"
                    append(
                        iter(append_requests(stream, "any", [proposed()])),
                        timeout=(1 + i % 8) / 1000,
                    )

        try:
            for round_ in range(10):
                threads = [threading.Thread(target=impatient, args=(c, round_)) for c in range(8)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                try:
                    append(
                        iter(append_requests(f"patient-{round_}", "no_stream", [proposed()])),
                        timeout=5,
                    )
                except grpc.RpcError as exc:
                    log = (tmp_path / "esdblite.log").read_text(errors="replace")
                    tail = "\n".join(log.splitlines()[-4:])
                    raise AssertionError(
                        f"after 8 clients x 40 appends with 1-8 ms deadlines (round {round_}), "
                        f"a new append failed with {exc.code().name}; the server log ends "
                        f"with:\n{tail}"
                    ) from None
        finally:
            channel.close()


def test_a_catastrophic_filter_regex_fails_its_own_read_and_nobody_elses(tmp_path: Path) -> None:
    # "(a|aa)+" backtracks exponentially on a long run of a's that does not end the match: without
    # a budget one such read would hold the server's event loop for hours.
    event = [NewEvent(type="A", data=b"{}")]
    with ServerProcess(log_file=tmp_path / "esdblite.log") as server:
        client = EventStoreDBClient(server.uri)
        other = EventStoreDBClient(server.uri)
        try:
            client.append_to_stream("a" * 60 + "!", current_version=StreamState.ANY, events=event)
            outcome: list[BaseException | None] = []

            def read_with_runaway_filter() -> None:
                try:
                    list(
                        client.read_all(
                            filter_include=["(a|aa)+"], filter_by_stream_name=True, timeout=60
                        )
                    )
                    outcome.append(None)
                except BaseException as exc:  # the outcome is what is tested
                    outcome.append(exc)

            reader = threading.Thread(target=read_with_runaway_filter, daemon=True)
            reader.start()
            other.append_to_stream("unrelated", current_version=StreamState.ANY, events=event)
            reader.join(60)
            assert not reader.is_alive(), "the read with a runaway regex never ended"
            assert outcome and outcome[0] is not None, "a runaway regex read returned normally"
            assert "Invalid filter" in str(outcome[0]), f"unclear error: {outcome[0]!r}"
            # The server is still serving everyone: a well-behaved filter read sees both streams.
            names = {
                e.stream_name
                for e in other.read_all(
                    filter_include=["a+!", "unrelated"], filter_by_stream_name=True, timeout=10
                )
            }
            assert names == {"a" * 60 + "!", "unrelated"}
        finally:
            other.close()
            client.close()


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@FUZZ
@given(
    prefix=st.sampled_from([b"", HTTP2_PREFACE, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]),
    body=st.binary(max_size=4096),
)
def test_random_bytes_on_the_port_leave_the_server_serving(
    target: Target, prefix: bytes, body: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", target.server.bound_port or 0), timeout=2) as s:
        try:
            s.sendall(prefix + body)
            s.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline and s.recv(65536):
                pass
        except OSError:
            pass  # the server may close or reset the connection: that is an answer too
    assert target.server.proc is not None and target.server.proc.poll() is None
    assert target.read(target.canary) == target.canary_events


def test_the_server_is_intact_after_all_of_it(target: Target) -> None:
    target.assert_intact()
