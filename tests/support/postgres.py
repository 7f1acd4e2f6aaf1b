"""PostgreSQL for the tests: one server for the session and a fresh database per test.

Set LEDGER_TEST_DATABASE_URL to a PostgreSQL server URL (a role that may create databases) to
use it instead of the embedded server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

if TYPE_CHECKING:
    from projections.pgserver import EmbeddedPostgres


def external_database_url() -> str | None:
    """The external PostgreSQL server named by LEDGER_TEST_DATABASE_URL, if any (read when asked,
    since LEDGER_TEST_CONTAINERS=1 sets it in `pytest_configure`)."""
    return os.environ.get("LEDGER_TEST_DATABASE_URL") or None


@pytest.fixture(scope="session")
def embedded_pg() -> Iterator[EmbeddedPostgres]:
    """One embedded PostgreSQL server for the session (its parent dir handed to the server's user).

    Its directory is not under pytest's basetemp: when tests run as root the server runs as
    another user, and another pytest session resets the basetemp root to 0700.
    """
    from projections.pgserver import EmbeddedPostgres

    home = Path(tempfile.mkdtemp(prefix="ledger-test-pg-"))
    server = EmbeddedPostgres(home / "data", owner_dir=home)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_url(request: pytest.FixtureRequest) -> str:
    """The session's PostgreSQL server: LEDGER_TEST_DATABASE_URL, or the embedded one."""
    external = external_database_url()
    if external:
        return external
    server: EmbeddedPostgres = request.getfixturevalue("embedded_pg")
    return server.url()


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str = "t") -> Iterator[str]:
    """A new, empty database on a server; dropped (connections and all) on leaving."""
    name = f"{prefix}_{uuid.uuid4().hex}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    with fresh_database(pg_server_url) as url:
        yield url


def waiting_for_advisory_lock(conn: psycopg.Connection[Any]) -> bool:
    """Whether a session of this database waits for an advisory lock (a runner, a replay)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    return bool(row and row[0])
