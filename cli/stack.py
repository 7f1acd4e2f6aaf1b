"""The local stack under LEDGER_HOME: esdblite, embedded PostgreSQL and the projection runner."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.errors import ServiceUnavailableError

if TYPE_CHECKING:
    from projections.pgserver import EmbeddedPostgres

SERVICES = ("eventstore", "postgres", "runner")
DEFAULT_PORTS = {"eventstore": 2113}  # PostgreSQL has no TCP port: a Unix socket in the home
EXTERNAL_VARIABLES = ("LEDGER_EVENTSTORE_URI", "LEDGER_DATABASE_URL")


@dataclass
class ServiceState:
    """How one service of the stack is doing."""

    name: str
    pid: int | None
    address: str | None
    state: str  # running | stopped | crashed
    detail: str = ""


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _holder(port: int) -> str:
    """Who listens on a port, as far as this user can see."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN":
                if conn.pid:
                    name = psutil.Process(conn.pid).name()
                    return f"{name} (pid {conn.pid})"
                return "another process"
    except Exception:
        pass
    return "another process"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(pid: int | None) -> bool:
    """Whether a process runs (a zombie does not)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


# What a service's command line contains, to tell our process from one that reused its pid.
MARKERS = {"eventstore": b"esdblite", "postgres": b"postgres", "runner": b"projections"}


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _is_ours(pid: int, service: str, started: str | None) -> bool:
    """Whether a live pid is still the process the pid file was written for."""
    if started is not None and _start_time(pid) not in (None, started):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return MARKERS[service] in f.read()
    except OSError:
        return True  # no /proc here: trust the pid file


@contextlib.contextmanager
def _private_files() -> Iterator[None]:
    """Files and directories created meanwhile (by us or the services we spawn) are private."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


class LocalStack:
    """Starts, stops and reports the three background services, each with a pid and a log."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.logs = home / "logs"
        self.state_file = home / "stack.json"
        # esdblite runs in secure mode: its certificate and the admin's password live here.
        self.tls_dir = home / "tls"
        self.password_file = home / "eventstore-admin-password"

    def ensure_home(self) -> None:
        """Create the home with 0700 permissions (and its logs folder)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)
        self.logs.mkdir(mode=0o700, exist_ok=True)

    def ports(self) -> dict[str, int]:
        """The ports chosen at the first start, kept so that addresses stay stable."""
        try:
            return {k: int(v) for k, v in json.loads(self.state_file.read_text()).items()}
        except (FileNotFoundError, ValueError):
            return {}

    def _choose_ports(self) -> dict[str, int]:
        ports = self.ports()
        for name, preferred in DEFAULT_PORTS.items():
            if name not in ports:
                ports[name] = preferred if _port_free(preferred) else _free_port()
        self.state_file.write_text(json.dumps(ports))
        return ports

    def log_file(self, service: str) -> Path:
        """Where a service writes its log."""
        if service == "postgres":
            return self.home / "postgres" / "postgres.log"
        return self.logs / f"{service}.log"

    def _pid_file(self, service: str) -> Path:
        return self.home / f"{service}.pid"

    def _pid_record(self, service: str) -> tuple[int, str | None] | None:
        if service == "postgres":
            # PostgreSQL keeps its own pid file; a crash leaves it behind.
            try:
                text = (self.home / "postgres" / "data" / "postmaster.pid").read_text()
                return int(text.split("\n", 1)[0]), None
            except (OSError, ValueError):
                return None
        try:
            fields = self._pid_file(service).read_text().split()
            return int(fields[0]), (fields[1] if len(fields) > 1 else None)
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def _read_pid(self, service: str) -> int | None:
        """The pid the service's pid file names (alive or not)."""
        record = self._pid_record(service)
        return record[0] if record else None

    def _owned_pid(self, service: str) -> int | None:
        """The service's pid if that process is alive and is still ours (not a reused pid)."""
        record = self._pid_record(service)
        if record is None or not alive(record[0]):
            return None
        return record[0] if _is_ours(record[0], service, record[1]) else None

    def _postgres(self) -> EmbeddedPostgres:
        from projections.pgserver import EmbeddedPostgres

        return EmbeddedPostgres(self.home / "postgres" / "data")

    def _place_postgres(self) -> None:
        """As root, PostgreSQL runs as its own user, which cannot enter the 0700 home: its
        directory is one that user owns under a root-owned 0711 base, linked as home/postgres."""
        import secrets

        from projections.pgserver import prune_service_dirs, service_dir

        link = self.home / "postgres"
        if os.geteuid() != 0 or (link.is_dir() and not link.is_symlink()):
            return
        prune_service_dirs()
        # A new home gets a new directory: a home deleted and made again never meets old data.
        key = link.readlink().name if link.is_symlink() else secrets.token_hex(8)
        target = service_dir(key, self.home.resolve())
        if not link.is_symlink() or link.readlink() != target:
            link.unlink(missing_ok=True)
            link.symlink_to(target)

    def _ensure_secrets(self) -> None:
        """The node certificate and the admin password, made on the first start (files 0600)."""
        import secrets

        from esdblite.certs import ensure_node_files, write_private

        ensure_node_files(self.tls_dir)
        if not self.password_file.exists():
            write_private(self.password_file, secrets.token_urlsafe(24).encode())

    def eventstore_uri(self) -> str:
        """The URI of the local esdblite: TLS, its CA, the admin's credentials (secret: never
        print or log it). A discover URI, as a cluster's is: clients read the node's gossip and
        connect to the leader it names, so the CLI takes the same path against the local node as
        against a KurrentDB cluster (one gossip call, ~3 ms, per process that writes)."""
        from esdblite.certs import node_files

        try:
            password = self.password_file.read_text().strip()
        except FileNotFoundError:
            raise ServiceUnavailableError(
                f"the local event store in {self.home} has no credentials yet; run `ledger up`"
            ) from None
        port = self.ports().get("eventstore", 2113)
        ca = node_files(self.tls_dir).ca
        return f"esdb+discover://admin:{password}@localhost:{port}?Tls=true&tlsCAFile={ca}"

    def database_url(self) -> str:
        """The URL of the local PostgreSQL database (its Unix socket in the home)."""
        return self._postgres().url()

    def status(self) -> list[ServiceState]:
        """Each service: running, stopped (cleanly) or crashed (with how it ended)."""
        ports = self.ports()
        states = []
        for name in SERVICES:
            pid = self._read_pid(name)
            address = None
            if name == "eventstore" and "eventstore" in ports:
                address = f"localhost:{ports['eventstore']}"
            elif name == "postgres":
                address = str(self._postgres().socket_dir)
            if self._owned_pid(name) is not None:
                states.append(ServiceState(name, pid, address, "running"))
            elif pid is not None and alive(pid):
                detail = f"stale pid file: pid {pid} now belongs to another process"
                states.append(ServiceState(name, pid, address, "crashed", detail))
            elif pid is not None:
                states.append(ServiceState(name, pid, address, "crashed", self._how_it_ended(name)))
            else:
                states.append(ServiceState(name, None, address, "stopped"))
        return states

    def _how_it_ended(self, service: str) -> str:
        tail = self.log_tail(service, 3)
        last = tail.splitlines()[-1] if tail else "no log lines"
        return f"pid file left behind, process gone; last log line: {last}"

    def running(self, service: str) -> bool:
        """Whether a service is up."""
        return self._owned_pid(service) is not None

    def log_tail(self, service: str, lines: int = 15) -> str:
        """The last lines of a service's log."""
        try:
            text = self.log_file(service).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.ensure_home()
        with open(self.home / "stack.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ServiceUnavailableError(
                    "another `ledger up` is starting the local stack right now; "
                    "wait for it to finish, then run the command again"
                ) from None
            yield

    def up(self, services: tuple[str, ...] = SERVICES, note: object = None) -> list[str]:
        """Start what is not running (idempotent); all or nothing. Returns what it started."""
        started: list[str] = []
        with _private_files(), self._lock():
            ports = self._choose_ports()
            for name in ("eventstore",):
                if name in services and not self.running(name) and not _port_free(ports[name]):
                    raise ServiceUnavailableError(
                        f"cannot start {name}: port {ports[name]} is taken by "
                        f"{_holder(ports[name])}; stop it, or edit {self.state_file}"
                    )
            current = "eventstore"
            try:
                for name in SERVICES:
                    if name in services and not self.running(name):
                        current = name
                        if callable(note):
                            note(f"starting {name}…")
                        getattr(self, f"_start_{name}")()
                        started.append(name)
            except Exception as exc:
                # Whatever went wrong (a refusal or an OSError), no half-started stack remains.
                tail = self.log_tail(current)
                for name in reversed(started):
                    self._stop(name)
                reason = str(exc) if isinstance(exc, ServiceUnavailableError) else repr(exc)
                raise ServiceUnavailableError(
                    f"cannot start {current}: {reason}; stopped what had been started. "
                    f"Last lines of its log:\n{tail}"
                ) from exc
        return started

    def _service_env(self) -> dict[str, str]:
        """A service's environment: this stack's home, never external stores (the runner of a
        stack in another home, a demo's, must not serve the user's stores)."""
        env = {k: v for k, v in os.environ.items() if k not in EXTERNAL_VARIABLES}
        env["LEDGER_HOME"] = str(self.home)
        return env

    def _spawn(self, service: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.log_file(service), "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=self._service_env(),
        )
        log.close()
        # The start time lets a later command tell this process from one that reused its pid.
        self._pid_file(service).write_text(
            f"{proc.pid} {_start_time(proc.pid) or ''}".strip() + "\n"
        )
        return proc

    def _start_eventstore(self) -> None:
        from esdblite.certs import node_files

        port = self.ports()["eventstore"]
        data = self.home / "esdb"
        (data / "esdblite.port").unlink(missing_ok=True)
        self._ensure_secrets()
        tls = node_files(self.tls_dir)
        proc = self._spawn(
            "eventstore",
            [
                sys.executable,
                "-m",
                "esdblite",
                "serve",
                "--data",
                str(data),
                "--port",
                str(port),
                "--log-level",
                "INFO",
                "--certificate-file",
                str(tls.cert),
                "--certificate-private-key-file",
                str(tls.key),
                "--default-admin-password-file",
                str(self.password_file),
            ],
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (data / "esdblite.port").exists():
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise ServiceUnavailableError("the event store (esdblite) did not start")

    def _start_postgres(self) -> None:
        self._place_postgres()
        pg = self._postgres()
        pg.start()
        from projections.db import connect, migrate

        with connect(pg.url()) as conn:
            migrate(conn)

    def _start_runner(self) -> None:
        proc = self._spawn(
            "runner",
            [sys.executable, "-m", "cli.main", "projections", "run"],
        )
        time.sleep(0.3)
        if proc.poll() is not None:
            raise ServiceUnavailableError("the projection runner exited at start")

    def down(self) -> list[str]:
        """Stop every running service cleanly (runner first). Returns what it stopped."""
        stopped = []
        for name in reversed(SERVICES):
            if self._stop(name):
                stopped.append(name)
        return stopped

    def _stop(self, service: str) -> bool:
        pid = self._owned_pid(service)
        if service == "postgres":
            if pid is None:
                return False
            self._postgres().stop()
            return True
        was_running = pid is not None
        if was_running and pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        self._pid_file(service).unlink(missing_ok=True)
        return was_running

    def as_json(self) -> list[dict[str, object]]:
        """status() as plain data."""
        return [asdict(s) for s in self.status()]
