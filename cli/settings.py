"""Configuration from the environment (LEDGER_* variables): stores, home, clock.

A plain dataclass rather than pydantic-settings: six variables do not need it, and importing
pydantic with pydantic-settings cost a read command about 100 ms, 40% of its time."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast, get_args


def default_home() -> Path:
    """The user's data directory for the ledger (XDG on Linux)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ledger"


def _env(name: str) -> str | None:
    """LEDGER_<NAME>, or None when it is unset or empty."""
    return os.environ.get(f"LEDGER_{name.upper()}") or None


def parse_time(text: str, source: str) -> dt.datetime:
    """An ISO time (UTC when it names no zone); ValueError naming `source` otherwise."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{source}: {text!r} is not an ISO time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _seconds(name: str, default: float | None) -> float | None:
    text = _env(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"LEDGER_{name.upper()}: {text!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"LEDGER_{name.upper()}: must be more than 0 seconds, not {text}")
    return value


def _now() -> dt.datetime | None:
    text = _env("now")
    return None if text is None else parse_time(text, "LEDGER_NOW")


def _choice(name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    text = _env(name)
    if text is None:
        return default
    if text not in allowed:
        raise ValueError(f"LEDGER_{name.upper()}: {text!r} is not one of {', '.join(allowed)}")
    return text


NodePreference = Literal["leader", "follower", "random", "readonlyreplica"]
Runners = Literal["one", "per-projection"]


def _node_preference() -> NodePreference | None:
    return cast("NodePreference | None", _choice("node_preference", get_args(NodePreference), None))


def _runners() -> Runners:
    return cast("Runners", _choice("runners", get_args(Runners), "one"))


def _home() -> Path:
    text = _env("home")
    return Path(text) if text else default_home()


def _wait_timeout() -> float:
    return _seconds("wait_timeout", 10.0) or 10.0


def _pause_timeout() -> float | None:
    return _seconds("rebuild_pause_timeout", None)


@dataclass(frozen=True)
class Settings:
    """LEDGER_* environment variables, read when constructed; flags override them."""

    eventstore_uri: str | None = field(default_factory=lambda: _env("eventstore_uri"))
    database_url: str | None = field(default_factory=lambda: _env("database_url"))
    home: Path = field(default_factory=_home)
    now: dt.datetime | None = field(default_factory=_now)
    wait_timeout: float = field(default_factory=_wait_timeout)
    rebuild_pause_timeout: float | None = field(default_factory=_pause_timeout)
    # The cluster node the projections read from (esdbclient's NodePreference; commands always
    # go to the leader), and `projections run`'s processes: one runner or one per projection.
    node_preference: NodePreference | None = field(default_factory=_node_preference)
    runners: Runners = field(default_factory=_runners)

    @property
    def embedded(self) -> bool:
        """No external store configured: the local stack under the home is used."""
        return self.eventstore_uri is None and self.database_url is None

    def clock(self) -> dt.datetime:
        """Now, or the fixed time of LEDGER_NOW / --now."""
        return self.now.astimezone(dt.UTC) if self.now else dt.datetime.now(dt.UTC)
