"""Start, stop and kill an esdblite server in a child process (used by tests, bench and the CLI)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

READY_PREFIX = "esdblite ready "


class ServerStartError(RuntimeError):
    """The esdblite server did not announce readiness."""


class ServerProcess:
    """An esdblite server in its own process group, on a data directory (or in memory)."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int = 0,
        host: str = "localhost",
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.host = host
        self.env = env or {}
        self.extra_args = extra_args or []
        self.log_file = log_file
        self.proc: subprocess.Popen[str] | None = None
        self.bound_port: int | None = None
        self._log: IO[str] | None = None

    @property
    def uri(self) -> str:
        """The esdb:// URI of the running server."""
        if self.bound_port is None:
            raise ServerStartError("the server is not running")
        return f"esdb://localhost:{self.bound_port}?Tls=false"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        args = [sys.executable, "-m", "esdblite", "serve", "--host", self.host]
        # Restarting on the same data reuses the port clients already know.
        port = self.bound_port if self.bound_port is not None else self.port
        args += ["--port", str(port)]
        args += ["--data", str(self.data_dir)] if self.data_dir else ["--memory"]
        return args + self.extra_args

    def start(self, timeout: float = 20.0) -> ServerProcess:
        """Start the server and wait for its readiness line."""
        env = {**os.environ, **self.env}
        stderr: IO[str] | int = subprocess.DEVNULL
        if self.log_file is not None:
            self._log = open(self.log_file, "a")  # noqa: SIM115 - closed in stop()
            stderr = self._log
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.1):
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith(READY_PREFIX):
                self.bound_port = int(line.rsplit(":", 1)[1].split("?")[0])
                return self
        code = self.proc.poll()
        self.kill()
        raise ServerStartError(f"esdblite did not become ready (exit code {code})")

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the server with SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        return self._finish()

    def kill(self) -> int | None:
        """Kill the server's process group with SIGKILL (a crash)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self.proc.wait()
        return self._finish()

    def restart(self) -> ServerProcess:
        """Start again on the same data directory and port."""
        self.stop()
        return self.start()

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def _finish(self) -> int | None:
        assert self.proc is not None
        code = self.proc.returncode
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._log:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
