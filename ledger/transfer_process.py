"""The transfer process: the one function that runs a transfer's steps to a final state.

Each step is a posting on an account (its transaction id derived from the transfer id and the
step, so a repeated step is a replay, never a second posting) followed by the record of its
outcome on the transfer's stream, appended at the revision read. Any number of processes may
run the same transfer at once: whoever records a step second finds it recorded and moves on.
An atomic multi-stream append could replace `run` where the server offers one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ledger.accounts.commands import (
    CommandMeta,
    PostTransferLeg,
    TransferStep,
    make_command,
    transfer_transaction_id,
)
from ledger.accounts.decider import find_transaction
from ledger.accounts.events import Posting
from ledger.errors import (
    AccountClosedError,
    AccountNotFoundError,
    BalanceOutOfBoundsError,
    BusinessRuleError,
    ConcurrencyConflictError,
    CurrencyMismatchError,
    StepOutsideWindowError,
)
from ledger.handler import CommandHandler, handle_now
from ledger.store import VersionConflict
from ledger.transfer_store import TransferStore
from ledger.transfers.commands import (
    AnyTransferCommand,
    RecordCredit,
    RecordCreditRefusal,
    RecordDebit,
    RecordRefund,
    RecordRejection,
    RequestTransfer,
)
from ledger.transfers.decider import (
    TransferState,
    TransferStatus,
    decide_transfer,
    evolve_transfer,
    initial_transfer_state,
    next_step,
)

log = logging.getLogger("ledger.transfers")

# A destination that refuses a credit for one of these reasons does not take the money: the
# refusal is recorded (at the revision read, so that one process decides) and the debit goes
# back. A closed account never reopens; the balance bound could let a racing credit through
# later, so the refund step looks for the credit on the destination first (see `step`).
CREDIT_REFUSALS = (
    AccountClosedError,
    AccountNotFoundError,
    CurrencyMismatchError,
    BalanceOutOfBoundsError,
)


@dataclass(frozen=True, slots=True)
class RunResult:
    """Where a run left a transfer, the $all position of its last event, and the refusal (if
    this run is the one that recorded a rejection or a failure)."""

    state: TransferState
    position: int
    refusal: BusinessRuleError | None = None
    done: bool = False
    current: bool = False


Known = tuple[TransferState, int]  # a transfer's state and the position of its last event


class TransferProcess:
    """Requests transfers and runs their steps; idempotent, and safe to race with itself."""

    def __init__(
        self,
        handler: CommandHandler,
        store: TransferStore,
        *,
        clock: Callable[[], datetime],
        actor: str,
        max_attempts: int = 12,
    ) -> None:
        self.handler = handler
        self.store = store
        self.clock = clock
        self.actor = actor
        self.max_attempts = max_attempts

    def load(self, transfer_id: str) -> tuple[TransferState, int]:
        """The transfer folded from its stream, and the $all position of its last event."""
        state, position = initial_transfer_state, 0
        for stored in self.store.read_transfer(transfer_id):
            state, position = evolve_transfer(state, stored.event), stored.commit_position
        return state, position

    def _meta(self, transfer_id: str, step: str) -> CommandMeta:
        return CommandMeta(
            correlation_id=transfer_id, causation_id=f"{transfer_id}.{step}", actor=self.actor
        )

    def request(
        self, command: RequestTransfer, known: Known | None = None
    ) -> tuple[TransferState, int, bool]:
        """Start the transfer's stream (at most once per id): (state, position, replayed).

        The same request again is a replay; another request under the same id raises
        TransferConflictError. `known`: the stream as just read, or presumed absent (saves a
        read: the append at "no stream" finds out). The request's cause is this call, so an
        identical request of another call is a conflict, never a retried write.
        """
        tid = command.transfer_id
        state, position = known if known is not None else self.load(tid)
        events = decide_transfer(command, state)
        if not events:
            return state, position, True
        try:
            position = self.store.append_transfer(
                tid,
                expected_revision=-1,
                events=events,
                meta=self._meta(tid, f"request.{uuid.uuid4().hex}"),
            )
        except VersionConflict:
            # Another process started this id first: a replay, or a conflict of content.
            state, position = self.load(tid)
            decide_transfer(command, state)
            return state, position, True
        for event in events:
            state = evolve_transfer(state, event)
        return state, position, False

    def run(self, transfer_id: str, known: Known | None = None) -> RunResult:
        """Run the transfer's steps until it is final (or its credit must wait).

        `known`: the transfer as this process just read or wrote it (saves a read)."""
        refusal: BusinessRuleError | None = None
        for _ in range(4 * self.max_attempts):
            result = self.step(transfer_id, known)
            refusal = result.refusal or refusal
            if result.done:
                return RunResult(result.state, result.position, refusal)
            known = (result.state, result.position) if result.current else None
        raise ConcurrencyConflictError(
            f"transfer {transfer_id} kept changing while its steps were being run; "
            "it is safe to retry with the same transfer id"
        )

    def step(self, transfer_id: str, known: Known | None = None) -> RunResult:
        """Do the transfer's next step and record it: one posting, one append at most.

        `done` when there is no step to do (final, or a credit that must wait); `current`
        when the returned state is the stream as this step left it. A step that another
        process recorded first is read back at the next call.
        """
        state, position = known if known is not None else self.load(transfer_id)
        step = next_step(state)
        if step is None and self._stray_debit(state):
            step = TransferStep.REFUND
        if step is None:
            return RunResult(state, position, done=True)
        if step is TransferStep.REFUND and (credited := self._credited(state)) is not None:
            # A credit that raced the refusal got through after all: the transfer completed,
            # and refunding too would create money.
            record: AnyTransferCommand | None
            record, refused = credited, None
        else:
            record, refused = self._post(state, step)
        if record is None:
            return RunResult(state, position, refused, done=True)
        events = decide_transfer(record, state)
        if not events:
            return RunResult(state, position, refused)
        try:
            position = self.store.append_transfer(
                transfer_id,
                expected_revision=state.revision,
                events=events,
                meta=self._meta(transfer_id, step.value),
            )
        except VersionConflict:
            return RunResult(state, position)  # another process recorded this step first
        for event in events:
            state = evolve_transfer(state, event)
        return RunResult(state, position, refused, current=True)

    def _credited(self, state: TransferState) -> RecordCredit | None:
        """The record of a credit posted on the destination after its refusal was recorded
        (None when there is none, or the refusal cannot have been raced)."""
        if state.status is not TransferStatus.CREDIT_REFUSED:
            return None
        destination = self.handler.load(state.to_account)
        credit = transfer_transaction_id(state.transfer_id, TransferStep.CREDIT)
        found = find_transaction(destination, credit)
        if found is None:
            return None
        posted = self.handler.store.read_one(state.to_account, revision=found.revision)
        at = posted.commit_position if posted is not None else state.posting_position
        return RecordCredit(transfer_id=state.transfer_id, now=self.clock(), posting_position=at)

    def _stray_debit(self, state: TransferState) -> bool:
        """A rejected transfer whose debit was posted anyway by a racing process (which then
        found the rejection recorded): that debit must go back."""
        if state.status is not TransferStatus.REJECTED or state.refunded:
            return False
        source = self.handler.load(state.from_account)
        debit = transfer_transaction_id(state.transfer_id, TransferStep.DEBIT)
        return find_transaction(source, debit) is not None

    def _post(
        self, state: TransferState, step: TransferStep
    ) -> tuple[AnyTransferCommand | None, BusinessRuleError | None]:
        """Post the step on its account: what to record of it, and the refusal if any."""
        to_source = step is not TransferStep.CREDIT
        account, counterparty, since = (
            (state.from_account, state.to_account, state.from_revision)
            if to_source
            else (state.to_account, state.from_account, state.to_revision)
        )
        fields = {
            "account_id": account,
            "now": self.clock(),
            "meta": self._meta(state.transfer_id, step.value),
            "transfer_id": state.transfer_id,
            "step": step,
            "counterparty": counterparty,
            "amount": state.amount,
            "currency": state.currency,
            "description": state.description,
            "since_revision": since,
        }
        tid, now = state.transfer_id, self.clock()
        searched_to = -1
        while True:
            leg = make_command(PostTransferLeg, {**fields, "searched_to": searched_to})
            try:
                outcome = handle_now(self.handler, leg, self.clock)
                balance, at = outcome.balance, outcome.commit_position
                break
            except StepOutsideWindowError as exc:
                # Too many postings since the transfer began for the window to remember them
                # all: the step is looked for in the stream itself before it is posted.
                posted, searched_to = self._search(account, leg, exc.after_revision)
                if posted is not None:
                    balance, at = posted
                    break
            except BusinessRuleError as exc:
                if step is TransferStep.DEBIT:
                    return RecordRejection(transfer_id=tid, now=now, reason=str(exc)), exc
                if step is TransferStep.CREDIT and isinstance(exc, CREDIT_REFUSALS):
                    return RecordCreditRefusal(transfer_id=tid, now=now, reason=str(exc)), exc
                log.warning("transfer %s stays in transit: %s", tid, exc)
                return None, None
        match step:
            case TransferStep.DEBIT:
                debited = RecordDebit(
                    transfer_id=tid, now=now, from_balance=balance, posting_position=at
                )
                return debited, None
            case TransferStep.CREDIT:
                return RecordCredit(transfer_id=tid, now=now, posting_position=at), None
            case TransferStep.REFUND:
                return RecordRefund(transfer_id=tid, now=now, posting_position=at), None

    def _search(
        self, account: str, leg: PostTransferLeg, after: int
    ) -> tuple[tuple[int, int] | None, int]:
        """The step's posting after revision `after` — (balance after, position) or None —
        and the last revision searched."""
        transaction_id = transfer_transaction_id(leg.transfer_id, leg.step)
        last = after
        for stored in self.handler.store.read(account, from_revision=after + 1):
            last = stored.revision
            event = stored.event
            if isinstance(event, Posting) and event.transaction_id == transaction_id:
                return (event.balance_after, stored.commit_position), last
        return None, last
