"""Fixtures of the read-side suite: migrated connections to the test's database, live runners."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from projections.db import connect, migrate
from projections.runner import Runner
from tests.support.esdb import Servers
from tests.support.runners import RunnerThread


@pytest.fixture
def make_conn(database_url: str) -> Iterator[Callable[[], psycopg.Connection[Any]]]:
    """A factory of autocommit connections to the test database (migrated), closed after."""
    made: list[psycopg.Connection[Any]] = []

    def make() -> psycopg.Connection[Any]:
        conn = connect(database_url)
        made.append(conn)
        return conn

    try:
        migrate(make())
        yield make
    finally:
        for conn in made:
            conn.close()


@pytest.fixture
def db(make_conn: Callable[[], psycopg.Connection[Any]]) -> psycopg.Connection[Any]:
    """An autocommit connection to the migrated test database."""
    return make_conn()


@pytest.fixture
def start_runner(database_url: str, servers: Servers) -> Iterator[Callable[..., RunnerThread]]:
    """Start live Runners on threads (all stopped and joined after the test, before the servers)."""
    started: list[RunnerThread] = []

    def start(eventstore_uri: str, **options: Any) -> RunnerThread:
        options.setdefault("batch_ms", 20.0)
        thread = RunnerThread(Runner(database_url, eventstore_uri, **options))
        started.append(thread)
        return thread.start()

    try:
        yield start
    finally:
        errors = []
        for thread in reversed(started):
            try:
                thread.stop()
            except AssertionError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
