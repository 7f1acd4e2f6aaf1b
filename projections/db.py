"""PostgreSQL access for the read side: connections, versioned migrations, advisory lock keys."""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from typing import Any

import psycopg

from ledger.errors import ServiceUnavailableError

MIGRATION_LOCK = 0x1ED6E5  # serialises migrations between processes


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection; callers open explicit transactions with `conn.transaction()`."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise ServiceUnavailableError(
            f"cannot connect to PostgreSQL: {str(exc).strip().splitlines()[0]}"
        ) from exc


def migrations() -> list[tuple[int, str, str]]:
    """The versioned SQL files, in order: (version, name, text)."""
    found = []
    for entry in resources.files("projections.migrations").iterdir():
        match = re.fullmatch(r"(\d+)_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text()))
    return sorted(found)


def migrate(conn: psycopg.Connection[tuple[Any, ...]]) -> list[int]:
    """Apply every migration not applied yet, once, in order; return the versions applied."""
    applied: list[int] = []
    known = {version for version, _, _ in migrations()}
    try:
        with conn.transaction():
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        if known <= done:
            return applied  # the common case: one read, no lock
    except psycopg.errors.UndefinedTable:
        pass
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, text in migrations():
            if version in done:
                continue
            conn.execute(text.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            applied.append(version)
    return applied


def lock_key(name: str) -> int:
    """A stable 63-bit advisory lock key for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1
