"""The services under test: PostgreSQL, esdblite and the projection runner, killed and restarted."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from bench.torture.proxy import CuttableProxy
from bench.torture.schedule import CUT, ESDB, RUNNER
from esdblite.process import ServerProcess, ServerStartError
from projections.pgserver import EmbeddedPostgres


class Services:
    """PostgreSQL (kept up); esdblite on a durable data dir and the runner, both killable; a
    proxy between the clients and esdblite whose connections can be cut."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.pg = EmbeddedPostgres(work / "pg" / "data", owner_dir=work / "pg")
        self.esdb = ServerProcess(work / "esdb", log_file=work / "esdblite.log")
        self.proxy: CuttableProxy | None = None
        self.esdb_epoch = 0  # bumped whenever esdblite is killed or started
        self.runner: subprocess.Popen[bytes] | None = None
        self.database_url = ""
        self.problems: list[str] = []

    def start(self) -> None:
        """Start PostgreSQL with a fresh database, esdblite, the proxy and the runner."""
        (self.work / "pg").mkdir(parents=True, exist_ok=True)
        self.pg.start()
        with psycopg.connect(self.pg.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE torture")
        self.database_url = self.pg.url("torture")
        self.esdb.start()
        assert self.esdb.bound_port is not None
        self.proxy = CuttableProxy(self.esdb.bound_port)
        self.start_runner()

    @property
    def eventstore_uri(self) -> str:
        return self.esdb.uri

    @property
    def client_uri(self) -> str:
        """Where the clients connect: through the proxy."""
        assert self.proxy is not None
        return self.proxy.uri

    def cli_env(self) -> dict[str, str]:
        """The environment of a `ledger` process that uses these services."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env.update(
            LEDGER_EVENTSTORE_URI=self.eventstore_uri,
            LEDGER_DATABASE_URL=self.database_url,
            LEDGER_HOME=str(self.work / "home"),
        )
        return env

    def start_runner(self) -> None:
        """Start `ledger projections run` in a session of its own: a kill takes all of it."""
        with open(self.work / "runner.log", "ab") as log:
            self.runner = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "projections", "run"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.cli_env(),
                start_new_session=True,
            )

    def kill(self, kind: str, down_s: float = 0.0) -> None:
        """SIGKILL a service (its whole process group), or cut the clients' connections."""
        if kind == CUT:
            assert self.proxy is not None
            self.proxy.cut(down_s)
            return
        if kind == ESDB:
            self.esdb_epoch += 1
            self.esdb.kill()
            return
        assert self.runner is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.runner.pid, signal.SIGKILL)
        self.runner.wait()

    def restart(self, kind: str) -> None:
        """Start a killed service again (esdblite on the same data dir and port)."""
        if kind == CUT:
            return  # the proxy accepts connections again by itself
        if kind == RUNNER:
            self.start_runner()
            return
        self.esdb_epoch += 1
        for attempt in range(10):
            try:
                self.esdb.start()
                return
            except ServerStartError:
                if attempt == 9:
                    raise
                time.sleep(0.5)

    def watch(self, down: set[str]) -> None:
        """Notice a service that died although no fault killed it (then restart it)."""
        if ESDB not in down and self.esdb.proc is not None and self.esdb.proc.poll() is not None:
            self.problems.append(f"esdblite exited by itself with code {self.esdb.proc.returncode}")
            self.esdb.kill()
            self.restart(ESDB)
        if RUNNER not in down and self.runner is not None and self.runner.poll() is not None:
            tail = log_tail(self.work / "runner.log")
            self.problems.append(
                f"the projection runner exited by itself with code {self.runner.returncode}; "
                f"last log lines: {tail}"
            )
            self.start_runner()

    def stop(self) -> None:
        """Stop everything: the runner gently, then the proxy, esdblite and PostgreSQL."""
        if self.runner is not None and self.runner.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.runner.pid, signal.SIGTERM)
            try:
                self.runner.wait(15)
            except subprocess.TimeoutExpired:
                self.kill(RUNNER)
        if self.proxy is not None:
            self.proxy.close()
        self.esdb.stop()
        self.pg.stop()


def log_tail(path: Path, lines: int = 8) -> str:
    """The last lines of a log file, joined on one line (empty when there is no file)."""
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
