"""Settings from LEDGER_* variables: values, defaults, and a clear message for a bad one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cli.settings import Settings


@pytest.fixture(autouse=True)
def _no_ledger_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EVENTSTORE_URI", "DATABASE_URL", "HOME", "NOW", "WAIT_TIMEOUT", "RUNNERS"):
        monkeypatch.delenv(f"LEDGER_{name}", raising=False)
    monkeypatch.delenv("LEDGER_REBUILD_PAUSE_TIMEOUT", raising=False)
    monkeypatch.delenv("LEDGER_NODE_PREFERENCE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", "/data")


def test_defaults_are_the_local_stack_in_the_xdg_home() -> None:
    settings = Settings()
    assert settings.embedded and settings.home == Path("/data/ledger")
    assert (settings.wait_timeout, settings.rebuild_pause_timeout, settings.now) == (
        10.0,
        None,
        None,
    )
    assert (settings.node_preference, settings.runners) == (None, "one")


def test_each_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_EVENTSTORE_URI", "esdb://localhost:2113?Tls=false")
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql:///ledger")
    monkeypatch.setenv("LEDGER_HOME", "/srv/ledger")
    monkeypatch.setenv("LEDGER_NOW", "2026-02-10T12:00:00")
    monkeypatch.setenv("LEDGER_WAIT_TIMEOUT", "2.5")
    monkeypatch.setenv("LEDGER_REBUILD_PAUSE_TIMEOUT", "30")
    monkeypatch.setenv("LEDGER_NODE_PREFERENCE", "follower")
    monkeypatch.setenv("LEDGER_RUNNERS", "per-projection")
    settings = Settings()
    assert not settings.embedded and settings.home == Path("/srv/ledger")
    assert settings.clock() == dt.datetime(2026, 2, 10, 12, tzinfo=dt.UTC)  # no zone: UTC
    assert (settings.wait_timeout, settings.rebuild_pause_timeout) == (2.5, 30.0)
    assert (settings.node_preference, settings.runners) == ("follower", "per-projection")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WAIT_TIMEOUT", "soon", "LEDGER_WAIT_TIMEOUT: 'soon' is not a number of seconds"),
        ("WAIT_TIMEOUT", "0", "LEDGER_WAIT_TIMEOUT: must be more than 0 seconds, not 0"),
        ("REBUILD_PAUSE_TIMEOUT", "-1", "must be more than 0 seconds"),
        ("NOW", "yesterday", "LEDGER_NOW: 'yesterday' is not an ISO time"),
        ("RUNNERS", "two", "LEDGER_RUNNERS: 'two' is not one of one, per-projection"),
        ("NODE_PREFERENCE", "any", "LEDGER_NODE_PREFERENCE: 'any' is not one of leader"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"LEDGER_{name}", value)
    with pytest.raises(ValueError, match=message):
        Settings()
