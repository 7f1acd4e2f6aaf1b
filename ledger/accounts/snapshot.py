"""Account snapshots: a compact, versioned JSON encoding of State. Pure, no I/O."""

from __future__ import annotations

import base64
from itertools import accumulate
from operator import add
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ledger.accounts.decider import State, Status
from ledger.accounts.events import PostingKind
from ledger.accounts.window import ROW_BYTES, WINDOW_SIZE, TransactionWindow

# Version 2 added the account's last event time (the time-order rule needs it). A version 1
# snapshot cannot say that time, so it is ignored and the stream is folded from the start;
# the next snapshot the handler writes is of version 2. Version 3 added the transaction ids
# of the reversals in the window ("already reversed by ..."), which version 2 cannot say.
SNAPSHOT_VERSION = 3

_KIND_CODES = {
    PostingKind.DEPOSIT: "d",
    PostingKind.WITHDRAWAL: "w",
    PostingKind.REVERSAL: "r",
    PostingKind.TRANSFER_IN: "i",
    PostingKind.TRANSFER_OUT: "o",
    PostingKind.TRANSFER_REFUND: "f",
}
_KINDS_BY_CODE = {code: kind for kind, code in _KIND_CODES.items()}


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class _Account(_Strict):
    status: Status
    account_id: str
    owner: str
    currency: str
    overdraft_limit: int
    opening_limit: int
    balance: int
    last_event_at: AwareDatetime | None


class _Window(_Strict):
    # Columns rather than one object per posting keep a full window well under 1 MiB:
    # digests are packed as base64, revisions are stored as gaps, and balances_after as the
    # (almost always zero) drift from previous balance_after + amount.
    digests: str
    kinds: str
    revision_gaps: list[int]
    amounts: list[int]
    balance_drifts: list[int]
    reversals: list[Annotated[list[int], Field(min_length=2, max_length=2)]]
    reversal_ids: list[str]  # the transaction id of each of `reversals`' reversing rows


class _Snapshot(_Strict):
    snapshot_version: int
    revision: int
    account: _Account
    window: _Window


def state_to_snapshot(state: State) -> bytes:
    """Encode a state as snapshot JSON that records the revision it covers."""
    rows = state.window.rows()
    gaps: list[int] = []
    drifts: list[int] = []
    revision, balance = -1, 0
    for index, row in enumerate(rows):
        gaps.append(row.revision - revision)
        drifts.append(row.balance_after - (balance + row.amount) if index else row.balance_after)
        revision, balance = row.revision, row.balance_after
    snapshot = _Snapshot(
        snapshot_version=SNAPSHOT_VERSION,
        revision=state.revision,
        account=_Account(
            status=state.status,
            account_id=state.account_id,
            owner=state.owner,
            currency=state.currency,
            overdraft_limit=state.overdraft_limit,
            opening_limit=state.opening_limit,
            balance=state.balance,
            last_event_at=state.last_event_at,
        ),
        window=_Window(
            digests=base64.b64encode(
                b"".join(row.id_digest + row.content_digest for row in rows)
            ).decode("ascii"),
            kinds="".join(_KIND_CODES[row.kind] for row in rows),
            revision_gaps=gaps,
            amounts=[row.amount for row in rows],
            balance_drifts=drifts,
            reversals=[
                [index, row.reverses] for index, row in enumerate(rows) if row.reverses >= 0
            ],
            reversal_ids=[row.name or "" for row in rows if row.reverses >= 0],
        ),
    )
    return snapshot.model_dump_json().encode("utf-8")


def state_from_snapshot(data: bytes) -> State | None:
    """Decode snapshot JSON; None if it is unreadable or of another snapshot version."""
    try:
        return _decode(data)
    except Exception:
        # A snapshot is only a cache of the event stream: whatever is wrong with it, the
        # caller folds the events from the start instead.
        return None


def _decode(data: bytes) -> State | None:
    snapshot = _Snapshot.model_validate_json(data)
    if snapshot.snapshot_version != SNAPSHOT_VERSION:
        return None
    window = snapshot.window
    digests = base64.b64decode(window.digests, validate=True)
    count = len(window.kinds)
    lengths = {len(window.revision_gaps), len(window.amounts), len(window.balance_drifts)}
    if count > WINDOW_SIZE or lengths != {count} or len(digests) != count * ROW_BYTES:
        return None
    if len(window.reversal_ids) != len(window.reversals):
        return None
    reverses, names = {}, {}
    for (index, target), name in zip(window.reversals, window.reversal_ids, strict=True):
        if not 0 <= target < index < count:
            return None
        reverses[index] = target
        if name:
            names[index] = name
    if count and min(window.revision_gaps) < 1:
        return None
    revisions = list(accumulate(window.revision_gaps, initial=-1))[1:]
    if revisions and revisions[-1] > snapshot.revision:
        return None
    # balance_after[0] is stored whole; later ones as drift from balance_after + amount.
    steps = list(map(add, window.amounts, window.balance_drifts))
    if steps:
        steps[0] = window.balance_drifts[0]
    window_state = TransactionWindow.from_columns(
        digests,
        list(map(_KINDS_BY_CODE.__getitem__, window.kinds)),
        revisions,
        window.amounts,
        list(accumulate(steps)),
        reverses,
        names,
    )
    account = snapshot.account
    return State(
        status=account.status,
        account_id=account.account_id,
        owner=account.owner,
        currency=account.currency,
        overdraft_limit=account.overdraft_limit,
        opening_limit=account.opening_limit,
        balance=account.balance,
        revision=snapshot.revision,
        window=window_state,
        last_event_at=account.last_event_at,
    )
