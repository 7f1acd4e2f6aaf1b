"""The one list of live projections, by name (light: status and waits load no projection code)."""

from __future__ import annotations

# Each name is also the module projections/<name>.py that defines the projection as PROJECTION;
# projections.applier.PROJECTIONS loads them in this order.
PROJECTION_NAMES = ("balances", "statements", "daily_totals", "transfers")

TRANSFERS_SLOT = "process:transfers"
"""The transfer process manager's checkpoint slot (and lease): not a projection, but followed by
the runners, and shown by status with its lag like one."""
