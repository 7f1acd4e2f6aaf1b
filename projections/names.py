"""The live projections' names (a light module: status and waits need no projection code)."""

from __future__ import annotations

PROJECTION_NAMES = ("balances", "statements", "daily_totals")
