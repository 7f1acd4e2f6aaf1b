"""Upcaster registry: rewrites the JSON of older event schema versions into the current one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.errors import CorruptEventError

Data = dict[str, Any]
Upcaster = Callable[[Data], Data]

# The schema version of a stored event lives in its metadata under "schema_version". An event
# stored without one is read as version 1, the version every event type started at, so that
# events written before versioning stay readable. Upcasters work on plain dicts, one version
# step at a time, so a v1 event passes v1 -> v2 -> ... -> current in order.
# The version the current event classes describe; event types not listed are at version 1.
CURRENT_SCHEMA_VERSIONS: dict[str, int] = {"AccountOpened": 2}
DEFAULT_SCHEMA_VERSION = 1

_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def current_schema_version(event_type: str) -> int:
    """The schema version new events of this type are written with."""
    return CURRENT_SCHEMA_VERSIONS.get(event_type, DEFAULT_SCHEMA_VERSION)


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function turning version from_version of event_type into the next version."""

    def register(function: Upcaster) -> Upcaster:
        _UPCASTERS[(event_type, from_version)] = function
        return function

    return register


def upcast(event_type: str, data: Data, schema_version: int) -> Data:
    """Bring event data of any known older version up to the current version."""
    target = current_schema_version(event_type)
    if not 1 <= schema_version <= target:
        raise CorruptEventError(
            f"{event_type} schema version {schema_version} is not readable "
            f"(this code reads versions 1 to {target})"
        )
    for version in range(schema_version, target):
        step = _UPCASTERS.get((event_type, version))
        if step is None:
            raise CorruptEventError(f"no upcaster from {event_type} version {version}")
        try:
            data = step(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptEventError(
                f"{event_type} version {version} data cannot be upcast: {exc!r}"
            ) from exc
    return data


@upcaster("AccountOpened", from_version=1)
def _account_opened_v1_to_v2(data: Data) -> Data:
    # Version 1 named the fields owner_name, currency_code and opened_at, and accounts had
    # no overdraft: such an account's limit is zero.
    return {
        "account_id": data["account_id"],
        "owner": data["owner_name"],
        "currency": data["currency_code"],
        "overdraft_limit": 0,
        "occurred_at": data["opened_at"],
    }
