"""Real EventStoreDB and PostgreSQL through testcontainers, when LEDGER_TEST_CONTAINERS=1.

`export_container_services()` starts both containers and exports LEDGER_TEST_ESDB_URI and
LEDGER_TEST_DATABASE_URL, which the shared event store and database fixtures read; this
plugin's `pytest_configure` calls it before any test is collected. Without
LEDGER_TEST_CONTAINERS=1 nothing is started and the default suite runs on esdblite and the
embedded PostgreSQL; with it but no Docker engine answering, the container test is skipped with
the engine's error and the rest runs as by default.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

ESDB_IMAGE = "docker.eventstore.com/eventstore/eventstore:24.10"
POSTGRES_IMAGE = "postgres:16"
ESDB_PORT = 2113
SKIP_REASON = "LEDGER_TEST_CONTAINERS is not set (no Docker engine here)"


def pytest_configure(config: pytest.Config) -> None:
    """With LEDGER_TEST_CONTAINERS=1, start EventStoreDB and PostgreSQL containers first."""
    stop = export_container_services()
    if stop is not None:
        config.add_cleanup(stop)


def containers_requested() -> bool:
    """Whether the run asked for real containers."""
    return os.environ.get("LEDGER_TEST_CONTAINERS") == "1"


def skip_reason() -> str | None:
    """Why the container tests cannot run here, or None when they can."""
    if not containers_requested():
        return SKIP_REASON
    return os.environ.get("LEDGER_TEST_CONTAINERS_PROBLEM") or None


def docker_problem() -> str | None:
    """Why no Docker engine can be used, or None when one answers."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:
        return f"LEDGER_TEST_CONTAINERS=1 but no Docker engine answers: {exc}"
    return None


def export_container_services() -> Callable[[], None] | None:
    """Start the containers and export their addresses; return how to stop them (or None
    when containers were not requested or addresses were given explicitly)."""
    if not containers_requested():
        return None
    if os.environ.get("LEDGER_TEST_ESDB_URI") and os.environ.get("LEDGER_TEST_DATABASE_URL"):
        return None
    problem = docker_problem()
    if problem is not None:
        # The container test is skipped with this reason; the rest runs on esdblite.
        os.environ["LEDGER_TEST_CONTAINERS_PROBLEM"] = problem
        return None
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    eventstore = (
        DockerContainer(ESDB_IMAGE)
        .with_envs(
            EVENTSTORE_INSECURE="true",
            EVENTSTORE_CLUSTER_SIZE="1",
            EVENTSTORE_RUN_PROJECTIONS="None",
            EVENTSTORE_MEM_DB="true",
        )
        .with_exposed_ports(ESDB_PORT)
        .waiting_for(HttpWaitStrategy(ESDB_PORT, "/health/live").for_status_code(204))
    )
    postgres = PostgresContainer(POSTGRES_IMAGE, driver=None)
    eventstore.start()
    try:
        postgres.start()
    except BaseException:
        eventstore.stop()
        raise
    host = eventstore.get_container_host_ip()
    port = eventstore.get_exposed_port(ESDB_PORT)
    os.environ["LEDGER_TEST_ESDB_URI"] = f"esdb://{host}:{port}?Tls=false"
    os.environ["LEDGER_TEST_DATABASE_URL"] = postgres.get_connection_url(driver=None)

    def stop() -> None:
        for var in ("LEDGER_TEST_ESDB_URI", "LEDGER_TEST_DATABASE_URL"):
            os.environ.pop(var, None)
        try:
            postgres.stop()
        finally:
            eventstore.stop()

    return stop
