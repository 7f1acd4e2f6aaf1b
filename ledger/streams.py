"""Stream names of the write model (no client import, so that the read side stays light)."""

from __future__ import annotations

ACCOUNT_STREAM_PREFIX = "account-"
SNAPSHOT_STREAM_PREFIX = "snapshot-"


def account_stream(account_id: str) -> str:
    """The write-model stream of an account."""
    return ACCOUNT_STREAM_PREFIX + account_id


def snapshot_stream(account_id: str) -> str:
    """Snapshots live apart: never an account stream, never matched by `^account-`."""
    return SNAPSHOT_STREAM_PREFIX + account_id


TRANSFER_STREAM_PREFIX = "transfer-"


def transfer_stream(transfer_id: str) -> str:
    """The stream of one transfer's process: its request and each step's outcome."""
    return TRANSFER_STREAM_PREFIX + transfer_id
