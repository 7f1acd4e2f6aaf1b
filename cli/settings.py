"""Configuration from the environment (pydantic-settings): stores, home, clock."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """The user's data directory for the ledger (XDG on Linux)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ledger"


class Settings(BaseSettings):
    """LEDGER_* environment variables; flags override them."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    eventstore_uri: str | None = Field(default=None, description="esdb:// URI of an external store")
    database_url: str | None = Field(default=None, description="PostgreSQL URL of the read side")
    node_preference: Literal["leader", "follower", "random", "readonlyreplica"] | None = Field(
        default=None,
        description="cluster node the projections read from (esdbclient's NodePreference; "
        "commands always go to the leader)",
    )
    home: Path = Field(default_factory=default_home, description="local stack and logs")
    now: dt.datetime | None = Field(default=None, description="fixes the clock (demos, tests)")
    wait_timeout: float = Field(default=10.0, gt=0, description="seconds for --wait")
    rebuild_pause_timeout: float | None = Field(
        default=None, gt=0, description="seconds a rebuild may pause live projections"
    )
    runners: Literal["one", "per-projection"] = Field(
        default="one", description="`projections run`: one runner, or one process per projection"
    )

    @field_validator("now", mode="after")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value

    @property
    def embedded(self) -> bool:
        """No external store configured: the local stack under the home is used."""
        return self.eventstore_uri is None and self.database_url is None

    def clock(self) -> dt.datetime:
        """Now, or the fixed time of LEDGER_NOW / --now."""
        return self.now.astimezone(dt.UTC) if self.now else dt.datetime.now(dt.UTC)
