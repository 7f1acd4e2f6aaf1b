"""Secure mode (§8.1): TLS with a node certificate and basic authentication, held against the real
esdbclient — what works with the credentials and the CA, and each refusal EventStoreDB gives."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import GrpcError, NotFound, ServiceUnavailable, SSLError

from esdblite.auth import authenticate
from esdblite.certs import Authority, new_authority, node_certificate, write_private
from esdblite.process import ServerProcess
from tests.esdblite.support import unique

PASSWORD = "correct-horse-battery"


@dataclass(frozen=True)
class Node:
    """A secure esdblite and the files a client needs to trust it."""

    server: ServerProcess
    ca_file: Path

    def uri(self, userinfo: str = f"admin:{PASSWORD}@", query: str = "") -> str:
        port = self.server.bound_port
        return f"esdb://{userinfo}localhost:{port}?Tls=true&tlsCAFile={self.ca_file}{query}"


def _start(
    directory: Path,
    ca: Authority,
    *,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
    not_after: dt.datetime | None = None,
) -> Node:
    directory.mkdir(mode=0o700, parents=True)
    key_pem, cert_pem = node_certificate(
        ca,
        hosts,
        not_before=None if not_after is None else not_after - dt.timedelta(days=30),
        not_after=not_after,
    )
    files = {"node.key": key_pem, "node.pem": cert_pem, "ca.pem": ca.cert_pem}
    for name, data in files.items():
        write_private(directory / name, data)
    write_private(directory / "password", f"{PASSWORD}\n".encode())
    server = ServerProcess(
        extra_args=[
            "--certificate-file",
            str(directory / "node.pem"),
            "--certificate-private-key-file",
            str(directory / "node.key"),
            "--default-admin-password-file",
            str(directory / "password"),
        ]
    ).start()
    return Node(server, directory / "ca.pem")


@pytest.fixture(scope="module")
def authority() -> Authority:
    return new_authority("test CA")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, authority: Authority) -> Iterator[Node]:
    """A secure node with a certificate for localhost, 127.0.0.1 and ::1."""
    started = _start(tmp_path_factory.mktemp("secure") / "tls", authority)
    try:
        yield started
    finally:
        started.server.stop()


class AnonymousClient(EventStoreDBClient):
    """esdbclient over TLS without call credentials: an anonymous caller."""

    def construct_call_credentials(
        self, username: str | None, password: str | None
    ) -> grpc.CallCredentials | None:
        return None


def _append(client: EventStoreDBClient, stream: str) -> int:
    event = NewEvent(type="Tested", data=b"{}")
    return client.append_to_stream(stream, current_version=StreamState.ANY, events=[event])


def _rpc_error(error: GrpcError) -> grpc.RpcError:
    cause = error.args[0]
    assert isinstance(cause, grpc.RpcError), error
    return cause


def _stream_exists(node: Node, stream: str) -> bool:
    with EventStoreDBClient(node.uri()) as client:
        try:
            client.get_stream(stream)
        except NotFound:
            return False
    return True


def test_the_admin_with_the_ca_appends_reads_and_subscribes(node: Node) -> None:
    stream = unique("secure")
    with EventStoreDBClient(node.uri()) as client:
        _append(client, stream)
        assert [e.type for e in client.get_stream(stream)] == ["Tested"]
        assert any(e.stream_name == stream for e in client.read_all(limit=1000))
        subscription = client.subscribe_to_stream(stream)
        try:
            assert next(iter(subscription)).stream_name == stream
        finally:
            subscription.stop()
        [member] = client.read_gossip()
        assert (member.address, member.port) == ("localhost", node.server.bound_port)


def test_discovery_reads_gossip_over_tls_with_the_credentials(node: Node) -> None:
    uri = node.uri().replace("esdb://", "esdb+discover://", 1)
    stream = unique("discover")
    with EventStoreDBClient(uri) as client:
        _append(client, stream)
        assert len(client.get_stream(stream)) == 1


def test_a_wrong_password_is_unauthenticated_and_writes_nothing(node: Node) -> None:
    stream = unique("wrong-password")
    wrong = node.uri(userinfo="admin:not-the-password@")
    with EventStoreDBClient(wrong) as client, pytest.raises(GrpcError) as raised:
        _append(client, stream)
    error = _rpc_error(raised.value)
    assert (error.code(), error.details()) == (grpc.StatusCode.UNAUTHENTICATED, "Unauthenticated")
    assert not _stream_exists(node, stream)


def test_an_unknown_user_is_unauthenticated(node: Node) -> None:
    unknown = node.uri(userinfo=f"mallory:{PASSWORD}@")
    with EventStoreDBClient(unknown) as client, pytest.raises(GrpcError) as raised:
        client.get_stream(unique("x"))
    assert _rpc_error(raised.value).code() == grpc.StatusCode.UNAUTHENTICATED


def test_an_anonymous_caller_is_denied_access_but_may_read_gossip(node: Node) -> None:
    stream = unique("anonymous")
    with AnonymousClient(node.uri()) as client:
        assert len(client.read_gossip()) == 1
        with pytest.raises(GrpcError) as raised:
            _append(client, stream)
        with pytest.raises(GrpcError) as raised_read:
            list(client.read_all(limit=1))
    for error in (_rpc_error(raised.value), _rpc_error(raised_read.value)):
        assert (error.code(), error.details()) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "Access Denied",
        )
        assert ("exception", "access-denied") in tuple(error.trailing_metadata() or ())
    assert not _stream_exists(node, stream)


def test_a_client_that_does_not_trust_the_ca_fails_the_handshake(node: Node) -> None:
    uri = f"esdb://admin:{PASSWORD}@localhost:{node.server.bound_port}?Tls=true"
    with EventStoreDBClient(uri) as client, pytest.raises(SSLError) as raised:
        _append(client, unique("untrusted"))
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)


def test_a_client_trusting_another_ca_fails_the_handshake(node: Node, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(new_authority("another CA").cert_pem)
    uri = f"esdb://admin:{PASSWORD}@localhost:{node.server.bound_port}?Tls=true&tlsCAFile={other}"
    with EventStoreDBClient(uri) as client, pytest.raises(SSLError):
        _append(client, unique("other-ca"))


def test_a_plain_text_client_cannot_talk_to_a_secure_node(node: Node) -> None:
    uri = f"esdb://localhost:{node.server.bound_port}?Tls=false"
    with EventStoreDBClient(uri) as client, pytest.raises(ServiceUnavailable):
        _append(client, unique("plain"))


def test_an_expired_certificate_is_refused(tmp_path: Path, authority: Authority) -> None:
    expired = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    node = _start(tmp_path / "tls", authority, not_after=expired)
    try:
        with EventStoreDBClient(node.uri()) as client, pytest.raises(SSLError) as raised:
            _append(client, unique("expired"))
    finally:
        node.server.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)


def test_a_certificate_for_another_host_name_is_refused(
    tmp_path: Path, authority: Authority
) -> None:
    node = _start(tmp_path / "tls", authority, hosts=("db.example.com",))
    try:
        with EventStoreDBClient(node.uri()) as client, pytest.raises(ServiceUnavailable):
            _append(client, unique("mismatch"))
    finally:
        node.server.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--certificate-file", "cert.pem"], "needs both --certificate-file"),
        (["--default-admin-password-file", "pw"], "needs secure mode"),
        (
            ["--certificate-file", "cert.pem", "--certificate-private-key-file", "key.pem"],
            "needs the admin password",
        ),
    ],
)
def test_secure_mode_is_all_or_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "esdblite", "serve", "--memory", "--port", "0", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 1
    assert message in done.stderr


def test_basic_credentials_are_checked_exactly() -> None:
    users = {"admin": "pw:with:colons"}
    header = "Basic YWRtaW46cHc6d2l0aDpjb2xvbnM="  # admin:pw:with:colons
    assert authenticate(users, header) == "admin"
    assert authenticate(users, None) == ""
    assert authenticate(users, "Basic YWRtaW46cHc=") is None  # admin:pw
    assert authenticate(users, "Basic !!!") is None
    assert authenticate(users, "Bearer abc") is None
    assert authenticate(users, "Basic YWRtaW4=") is None  # admin (no colon)
