"""Run an esdblite node: lock the data directory, recover the store, bind, announce, serve."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import grpc

from esdblite.auth import BasicAuthentication
from esdblite.cluster import GossipService, Leadership
from esdblite.reads import Notifier
from esdblite.server import add_services, new_server
from esdblite.store import Store

log = logging.getLogger("esdblite")

MIB = 1024 * 1024
PORT_FILE = "esdblite.port"
LOCK_FILE = "LOCK"


class StartupError(Exception):
    """The server cannot start (locked data directory, taken port, bad data)."""


@dataclass(frozen=True)
class Config:
    """How a node runs."""

    host: str = "localhost"
    port: int = 2113
    data_dir: Path | None = None  # None: in memory
    advertise_host: str | None = None
    advertise_port: int | None = None
    max_append_size: int = MIB
    resign_file: Path | None = None  # a test control: see esdblite.cluster.Leadership
    fsync: bool = True
    scavenge_interval: float = 0.0  # seconds between scavenges; 0: never on a schedule
    tls: TlsFiles | None = None  # None: insecure (no TLS, no authentication)
    users: tuple[tuple[str, str], ...] = ()  # secure mode's (name, password) pairs


@dataclass(frozen=True)
class TlsFiles:
    """Secure mode's node certificate (PEM chain) and its private key."""

    certificate: Path
    private_key: Path

    def credentials(self) -> grpc.ServerCredentials:
        """The server credentials, or a StartupError naming the file that cannot be read."""
        try:
            chain = self.certificate.read_bytes()
            key = self.private_key.read_bytes()
        except OSError as exc:
            raise StartupError(f"cannot read the node certificate: {exc}") from exc
        if b"-----BEGIN" not in chain or b"PRIVATE KEY-----" not in key:
            raise StartupError(
                f"{self.certificate} and {self.private_key} must hold a PEM certificate and key"
            )
        return grpc.ssl_server_credentials([(key, chain)])


class _QuietAbandonedCalls(logging.Filter):
    """grpc.aio logs harmless tracebacks when a client walks away mid-call; keep real errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "ExecuteBatchError" not in text and "_consume_request_iterator" not in text


def private_dir(path: Path) -> None:
    """Create a directory only its owner can enter (0700), and make an existing one so."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def private_file(path: Path) -> int:
    """Open (creating if needed) a file only its owner can read (0600), for writing."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def make_private(data_dir: Path) -> None:
    """Narrow the modes of a data directory and its files written by older versions."""
    private_dir(data_dir)
    for path in data_dir.iterdir():
        if path.is_file() and not path.is_symlink():
            path.chmod(0o600)


def lock_data_dir(data_dir: Path) -> IO[bytes]:
    """Hold an exclusive lock on the data directory for the life of the process."""
    make_private(data_dir)
    handle = os.fdopen(private_file(data_dir / LOCK_FILE), "ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StartupError(
            f"the data directory {data_dir} is locked by another running esdblite server"
        ) from None
    return handle


def write_port_file(data_dir: Path, port: int) -> None:
    """Publish the bound port atomically, for callers that started us with --port 0."""
    tmp = data_dir / (PORT_FILE + ".tmp")
    fd = private_file(tmp)
    with os.fdopen(fd, "w") as f:
        f.truncate()
        f.write(f"{port}\n")
    tmp.replace(data_dir / PORT_FILE)


def _add_port(
    server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None
) -> int:
    try:
        if credentials is None:
            port: int = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        log.debug("cannot bind %s: %s", address, exc)
        return 0
    return port


def bind(
    server: grpc.aio.Server,
    host: str,
    port: int,
    credentials: grpc.ServerCredentials | None = None,
) -> int:
    """Bind the port (TLS when given credentials); `localhost` means both loopbacks (127.0.0.1
    and ::1) on the same port."""
    if host != "localhost":
        return _add_port(server, f"{host}:{port}", credentials)
    bound = _add_port(server, f"127.0.0.1:{port}", credentials)
    if bound and socket.has_ipv6 and not _add_port(server, f"[::1]:{bound}", credentials):
        log.warning("IPv6 loopback ::1 is not available; listening on 127.0.0.1 only")
    return bound


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when uvloop is installed, else None (asyncio's own loop). grpc.aio
    runs on any asyncio loop; uvloop's spends less CPU per gRPC message."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def serve(config: Config) -> None:
    """Serve until SIGTERM or SIGINT."""
    for name in ("grpc._cython.cygrpc", "grpc.aio", "asyncio"):
        logging.getLogger(name).addFilter(_QuietAbandonedCalls())
    # Secure mode's settings are checked before anything is created or locked.
    credentials = config.tls.credentials() if config.tls else None
    if config.tls and not config.users:
        raise StartupError("secure mode needs the admin password (--default-admin-password-file)")
    lock = None
    temp_dir = None
    if config.data_dir is None:
        shm = Path("/dev/shm")
        temp_dir = Path(tempfile.mkdtemp(prefix="esdblite-", dir=shm if shm.is_dir() else None))
        data_dir, fsync = temp_dir, False
    else:
        data_dir, fsync = config.data_dir, config.fsync
        lock = lock_data_dir(data_dir)
    try:
        store = Store(data_dir, fsync=fsync)
    except (OSError, ValueError) as exc:
        raise StartupError(f"cannot open the store in {data_dir}: {exc}") from exc
    interceptors = [BasicAuthentication(dict(config.users))] if config.tls else []
    server = new_server(interceptors)
    loop = asyncio.get_running_loop()
    notifier = Notifier(loop)
    store.add_listener(notifier.publish_threadsafe)
    port = bind(server, config.host, config.port, credentials)
    if not port:
        store.close()
        raise StartupError(
            f"cannot listen on {config.host}:{config.port}: the port is in use or not available"
        )
    advertised = (config.advertise_host or "localhost", config.advertise_port or port)
    gossip = GossipService(*advertised)
    leadership = Leadership(*advertised, resign_file=config.resign_file)
    add_services(server, store, notifier, gossip, config.max_append_size, leadership)
    await server.start()
    # The stop signals are handled before the node says it is ready, so a SIGTERM sent as soon
    # as "ready" is read is an orderly stop, not the default action (exit -15).
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config.data_dir is not None:
        write_port_file(data_dir, port)
    print(
        f"esdblite ready esdb://localhost:{port}?Tls={'true' if config.tls else 'false'}",
        flush=True,
    )
    log.info(
        "serving %s on %s:%d (event loop: %s)",
        data_dir if lock else "in memory",
        config.host,
        port,
        type(loop).__module__,
    )
    scavenger = (
        asyncio.create_task(scavenge_on_schedule(store, config.scavenge_interval, stop))
        if config.scavenge_interval > 0
        else None
    )
    await stop.wait()
    log.info("shutting down")
    if scavenger is not None:
        await scavenger
    await server.stop(grace=1.0)
    store.close()
    if config.data_dir is not None:
        with contextlib.suppress(FileNotFoundError):
            (data_dir / PORT_FILE).unlink()
    if temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)
    if lock is not None:
        lock.close()


async def scavenge_on_schedule(store: Store, interval: float, stop: asyncio.Event) -> None:
    """Scavenge every `interval` seconds on the writer thread until the node stops."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        try:
            result = await asyncio.wrap_future(store.scavenge())
        except Exception:
            log.exception("the scheduled scavenge failed; the node keeps serving")
            continue
        log.info(
            "scavenge done: %d records removed, %d bytes of the log reclaimed",
            result.records,
            result.log_bytes,
        )


def backup(data_dir: Path, dest: Path) -> None:
    """Copy a (running) server's data consistently: the index snapshot first, then the log."""
    import sqlite3

    if not (data_dir / "events.log").exists():
        raise StartupError(f"{data_dir} holds no esdblite data")
    if dest.exists() and any(dest.iterdir()):
        raise StartupError(f"the backup destination {dest} is not empty")
    private_dir(dest)
    os.close(private_file(dest / "index.sqlite"))
    # The index is committed only after the log is durable, so a log copied after the index
    # snapshot holds every indexed record; start-up replays the rest and cuts a torn tail.
    src = sqlite3.connect(data_dir / "index.sqlite")
    dst = sqlite3.connect(dest / "index.sqlite")
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    (dest / "index.sqlite").chmod(0o600)
    with (
        open(data_dir / "events.log", "rb") as fin,
        os.fdopen(private_file(dest / "events.log"), "wb") as fout,
    ):
        shutil.copyfileobj(fin, fout, 1024 * 1024)
        fout.flush()
        os.fsync(fout.fileno())
