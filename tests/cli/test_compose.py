"""docker-compose.yml agrees with the application's configuration (cli.settings) and ports.

PyYAML is not a dependency, so the file keeps to a small YAML subset read by `parse_yaml`:
block mappings and sequences, JSON-style flow values, double-quoted or plain scalars, literal
block scalars (`|`) and comments.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from esdbclient.connection_spec import ConnectionSpec

from cli.settings import Settings
from cli.stack import DEFAULT_PORTS

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _scalar(text: str) -> Any:
    text = text.strip()
    if text.startswith(("[", "{", '"')):
        return json.loads(text)
    if text.isdigit():
        return int(text)
    return text


def _strip_comment(line: str) -> str:
    in_quotes = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == "#" and not in_quotes and (i == 0 or line[i - 1] == " "):
            return line[:i].rstrip()
    return line.rstrip()


def parse_yaml(text: str) -> Any:
    """Parse the YAML subset described in the module docstring."""
    lines = text.splitlines()
    pos = 0

    def indent_of(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    def next_content() -> int | None:
        nonlocal pos
        while pos < len(lines) and not _strip_comment(lines[pos]).strip():
            pos += 1
        return indent_of(lines[pos]) if pos < len(lines) else None

    def literal_block(parent_indent: int) -> str:
        nonlocal pos
        body: list[str] = []
        block_indent: int | None = None
        while pos < len(lines):
            line = lines[pos]
            if line.strip() and indent_of(line) <= parent_indent:
                break
            if line.strip() and block_indent is None:
                block_indent = indent_of(line)
            body.append(line[block_indent or 0 :] if line.strip() else "")
            pos += 1
        return "\n".join(body).rstrip("\n") + "\n"

    def node(indent: int) -> Any:
        nonlocal pos
        first = _strip_comment(lines[pos]).strip()
        if first.startswith("- "):
            items = []
            while next_content() == indent and _strip_comment(lines[pos]).strip().startswith("- "):
                items.append(_scalar(_strip_comment(lines[pos]).strip()[2:]))
                pos += 1
            return items
        mapping: dict[str, Any] = {}
        while next_content() == indent:
            key, sep, rest = _strip_comment(lines[pos]).strip().partition(":")
            assert sep, f"line {pos + 1}: expected `key: value`"
            pos += 1
            rest = rest.strip()
            if rest == "|":
                mapping[key] = literal_block(indent)
            elif rest:
                mapping[key] = _scalar(rest)
            else:
                child = next_content()
                assert child is not None and child > indent, f"line {pos + 1}: empty value"
                mapping[key] = node(child)
        return mapping

    start = next_content()
    return node(start or 0)


def _env_names() -> set[str]:
    return {f"LEDGER_{f.name}".upper() for f in dataclasses.fields(Settings)}


def settings_from(env: dict[str, Any]) -> Settings:
    """The settings a process with exactly these LEDGER_* variables reads."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("LEDGER_")]:
            mp.delenv(name)
        for name, value in env.items():
            mp.setenv(name, str(value))
        return Settings()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = parse_yaml(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def test_the_parser_reads_the_yaml_subset_the_compose_file_uses() -> None:
    text = (
        'a:\n  b: "x: y"  # comment\n  c: 5\n  d:\n    - "1:1"\n    - plain\n'
        '  e: ["CMD", "x"]\n  f: |\n    line one\n      indented\n  g: {}\n'
    )
    assert parse_yaml(text) == {
        "a": {
            "b": "x: y",
            "c": 5,
            "d": ["1:1", "plain"],
            "e": ["CMD", "x"],
            "f": "line one\n  indented\n",
            "g": {},
        }
    }


def test_compose_has_the_event_store_the_read_database_and_the_runner(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"eventstore", "postgres", "runner"}
    assert "eventstore" in services["eventstore"]["image"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["runner"]["command"] == ["projections", "run"]
    assert 'ENTRYPOINT ["ledger"]' in services["runner"]["build"]["dockerfile_inline"]
    assert set(services["runner"]["depends_on"]) == {"eventstore", "postgres"}


def test_the_event_store_is_an_insecure_single_node_with_a_data_volume(
    compose: dict[str, Any],
) -> None:
    eventstore = compose["services"]["eventstore"]
    env = eventstore["environment"]
    assert env["EVENTSTORE_INSECURE"] == "true"
    assert env["EVENTSTORE_CLUSTER_SIZE"] == "1"
    assert env["EVENTSTORE_RUN_PROJECTIONS"] == "None"
    volumes = {v.split(":")[0]: v.split(":")[1] for v in eventstore["volumes"]}
    assert volumes["eventstore-data"] == "/var/lib/eventstore"
    assert "eventstore-data" in compose["volumes"]
    assert "postgres-data" in compose["volumes"]


def test_runner_environment_uses_only_the_settings_variables(compose: dict[str, Any]) -> None:
    env = compose["services"]["runner"]["environment"]
    names = _env_names()
    assert {"LEDGER_EVENTSTORE_URI", "LEDGER_DATABASE_URL"} <= set(env)
    assert set(env) <= names, f"unknown variables: {set(env) - names}"
    # Both given: the settings choose external services, never the embedded stack.
    settings = settings_from(env)
    assert not settings.embedded


def test_runner_addresses_match_the_services_and_their_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["runner"]["environment"]
    esdb = urlsplit(env["LEDGER_EVENTSTORE_URI"])
    assert esdb.scheme == "esdb"
    assert esdb.query == "Tls=false"
    assert esdb.hostname == "eventstore"
    assert f"127.0.0.1:{esdb.port}:{esdb.port}" in services["eventstore"]["ports"]
    assert esdb.port == DEFAULT_PORTS["eventstore"] == 2113

    db = urlsplit(env["LEDGER_DATABASE_URL"])
    pg_env = services["postgres"]["environment"]
    assert db.scheme == "postgresql"
    assert db.hostname == "postgres"
    assert db.port == 5432
    assert f"127.0.0.1:{db.port}:5432" in services["postgres"]["ports"]
    assert db.username == pg_env["POSTGRES_USER"]
    assert db.password == pg_env["POSTGRES_PASSWORD"]
    assert db.path == "/" + pg_env["POSTGRES_DB"]


def test_the_host_side_example_in_the_header_matches_the_published_ports(
    compose: dict[str, Any],
) -> None:
    header = [line for line in COMPOSE.read_text().splitlines() if line.startswith("#   export")]
    exported = dict(line.removeprefix("#   export ").split("=", 1) for line in header)
    assert set(exported) == {"LEDGER_EVENTSTORE_URI", "LEDGER_DATABASE_URL"} <= _env_names()
    esdb = urlsplit(json.loads(exported["LEDGER_EVENTSTORE_URI"]))
    db = urlsplit(json.loads(exported["LEDGER_DATABASE_URL"]))
    services = compose["services"]
    assert (esdb.hostname, db.hostname) == ("localhost", "localhost")
    assert f"127.0.0.1:{esdb.port}:2113" in services["eventstore"]["ports"]
    assert f"127.0.0.1:{db.port}:5432" in services["postgres"]["ports"]
    runner_db = urlsplit(services["runner"]["environment"]["LEDGER_DATABASE_URL"])
    assert (db.username, db.password, db.path) == (
        runner_db.username,
        runner_db.password,
        runner_db.path,
    )


def test_every_published_port_is_bound_to_the_loopback_only(compose: dict[str, Any]) -> None:
    published = [p for s in compose["services"].values() for p in s.get("ports", [])]
    assert published, "compose publishes no port"
    for port in published:
        host, _, rest = str(port).partition(":")
        assert host == "127.0.0.1" and rest.count(":") == 1, port


CLUSTER = COMPOSE.with_name("docker-compose.cluster.yml")
NODES = ("node1", "node2", "node3")


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    document = parse_yaml(CLUSTER.read_text())
    assert isinstance(document, dict)
    return document


def _published(service: dict[str, Any]) -> dict[int, int]:
    """Container port → host port of the ports a service publishes on the loopback."""
    published = {}
    for port in service.get("ports", []):
        host, host_port, container_port = str(port).split(":")
        assert host == "127.0.0.1", port
        published[int(container_port)] = int(host_port)
    return published


def test_the_cluster_has_three_nodes_postgres_and_two_runners(cluster: dict[str, Any]) -> None:
    services = cluster["services"]
    assert set(services) == {*NODES, "postgres", "runner1", "runner2"}
    for name in NODES:
        assert services[name]["image"].startswith("kurrentplatform/kurrentdb:")
        assert f"{name}-data" in cluster["volumes"]
    assert services["postgres"]["image"].startswith("postgres:16")
    for runner in ("runner1", "runner2"):
        assert services[runner]["command"] == ["projections", "run"]
        assert 'ENTRYPOINT ["ledger"]' in services[runner]["build"]["dockerfile_inline"]
        assert set(services[runner]["depends_on"]) == {*NODES, "postgres"}


def test_each_node_is_an_insecure_member_of_a_three_node_cluster_seeded_by_the_others(
    cluster: dict[str, Any],
) -> None:
    services = cluster["services"]
    address = {n: services[n]["networks"]["cluster"]["ipv4_address"] for n in NODES}
    assert len(set(address.values())) == 3
    for name in NODES:
        env = services[name]["environment"]
        assert env["KURRENTDB_CLUSTER_SIZE"] == "3"
        assert env["KURRENTDB_INSECURE"] == "true"
        assert env["KURRENTDB_DISCOVER_VIA_DNS"] == "false"
        assert env["KURRENTDB_RUN_PROJECTIONS"] == "None"
        assert env["KURRENTDB_REPLICATION_IP"] == address[name]
        seeds = set(env["KURRENTDB_GOSSIP_SEED"].split(","))
        assert seeds == {f"{address[other]}:2113" for other in NODES if other != name}
        # Clients are sent to the published port of each node, on the loopback.
        assert env["KURRENTDB_ADVERTISE_HOST_TO_CLIENT_AS"] == "localhost"
        advertised = int(env["KURRENTDB_ADVERTISE_NODE_PORT_TO_CLIENT_AS"])
        assert _published(services[name]) == {2113: advertised}


def test_the_runners_discover_the_cluster_through_every_node_and_read_from_followers(
    cluster: dict[str, Any],
) -> None:
    services = cluster["services"]
    node_ports = {_published(services[n])[2113] for n in NODES}
    names = _env_names()
    for runner in ("runner1", "runner2"):
        env = services[runner]["environment"]
        assert set(env) <= names, f"unknown variables: {set(env) - names}"
        settings = settings_from(env)
        assert not settings.embedded
        assert settings.node_preference == "follower"
        # The runners share the host's network, where the nodes advertise themselves. Several
        # targets in an esdb:// URI are gossip seeds (esdb+discover:// takes one DNS name).
        assert services[runner]["network_mode"] == "host"
        esdb = urlsplit(env["LEDGER_EVENTSTORE_URI"])
        assert (esdb.scheme, esdb.query) == ("esdb", "Tls=false")
        assert ConnectionSpec(env["LEDGER_EVENTSTORE_URI"]).targets == [
            f"localhost:{port}" for port in sorted(node_ports)
        ]
        targets = [t.split(":") for t in esdb.netloc.split(",")]
        assert {host for host, _ in targets} == {"localhost"}
        assert {int(port) for _, port in targets} == node_ports
        db = urlsplit(env["LEDGER_DATABASE_URL"])
        pg_env = services["postgres"]["environment"]
        assert (db.hostname, _published(services["postgres"])[5432]) == ("localhost", db.port)
        assert (db.username, db.password, db.path) == (
            pg_env["POSTGRES_USER"],
            pg_env["POSTGRES_PASSWORD"],
            "/" + pg_env["POSTGRES_DB"],
        )


def test_the_cluster_header_exports_what_the_runners_use(cluster: dict[str, Any]) -> None:
    header = [line for line in CLUSTER.read_text().splitlines() if line.startswith("#   export")]
    exported = {
        k: json.loads(v) for k, v in (h.removeprefix("#   export ").split("=", 1) for h in header)
    }
    runner = cluster["services"]["runner1"]["environment"]
    assert exported == {k: runner[k] for k in ("LEDGER_EVENTSTORE_URI", "LEDGER_DATABASE_URL")}


def test_every_port_of_the_cluster_is_published_on_the_loopback_only(
    cluster: dict[str, Any],
) -> None:
    published = [p for s in cluster["services"].values() for p in s.get("ports", [])]
    assert len(published) == 4
    for service in cluster["services"].values():
        _published(service)
