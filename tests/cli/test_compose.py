"""docker-compose.yml agrees with the application's configuration (cli.settings) and ports.

PyYAML is not a dependency, so the file keeps to a small YAML subset read by `parse_yaml`:
block mappings and sequences, JSON-style flow values, double-quoted or plain scalars, literal
block scalars (`|`) and comments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

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
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


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
    settings = Settings.model_validate(
        {k.removeprefix("LEDGER_").lower(): v for k, v in env.items()}
    )
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
