"""What commands share: settings, output and flags, and the wiring to the stores they use.

Heavy modules (esdbclient, psycopg, the ledger's handler) are imported inside the functions
here, only when a command needs them: `ledger --help` and `ledger balance` must start fast."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from cli.render import Output
from cli.settings import Settings

if TYPE_CHECKING:
    import psycopg

    from cli.stack import LocalStack
    from ledger.service import Ledger
    from ledger.writemodel import WriteModelFold
    from projections.statement_view import BalanceRow


@dataclass
class Context:
    """What every command shares: settings, output, flags."""

    settings: Settings
    output: Output
    debug: bool
    # What a command opened that must be closed before the process exits: an event store's
    # append call and channel are closed in order, not left to the interpreter's shutdown.
    closing: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


def context(ctx: typer.Context, json_mode: bool = False) -> Context:
    """The shared context of a command, with its output in JSON mode or not."""
    obj: Context = ctx.obj
    obj.output.json_mode = json_mode
    return obj


def local_stack(obj: Context) -> LocalStack:
    """The local stack under the configured home (whether it runs or not)."""
    from cli.stack import LocalStack

    return LocalStack(obj.settings.home)


def ensure_stack(obj: Context, needs: tuple[str, ...]) -> None:
    """When a service the command needs is down, start whatever of the local stack is down
    (unless external services are configured): a command never leaves it half started, as a
    database nobody projects into. A service the command does not need is left as it is (a
    read goes on answering while a crashed event store shows in `ledger status`)."""
    if not obj.settings.embedded:
        return
    from cli.stack import SERVICES

    stack = local_stack(obj)
    if all(stack.running(s) for s in needs):
        return
    obj.output.note(f"starting the local stack in {obj.settings.home} …")
    stack.up(SERVICES, note=obj.output.note)


def eventstore_uri(obj: Context) -> str:
    """The event store to use, starting the local stack if needed (with the projections'
    node preference, if set: the write side connects to the leader whatever the URI says)."""
    if obj.settings.eventstore_uri:
        if obj.settings.node_preference is None:
            return obj.settings.eventstore_uri
        from ledger.eventstore import with_node_preference

        return with_node_preference(obj.settings.eventstore_uri, obj.settings.node_preference)
    from cli.stack import SERVICES

    ensure_stack(obj, SERVICES)
    return local_stack(obj).eventstore_uri()


def database_url(obj: Context) -> str:
    """The read-side database to use, starting the local stack if needed."""
    if obj.settings.database_url:
        return obj.settings.database_url
    ensure_stack(obj, ("postgres",))
    return local_stack(obj).database_url()


def read_conn(obj: Context) -> psycopg.Connection[Any]:
    """A connection to the read models (schema migrated)."""
    from projections.db import connect, migrate

    conn = connect(database_url(obj))
    migrate(conn)
    return conn


def projected_account(
    obj: Context, conn: psycopg.Connection[Any], account: str, min_revision: int | None
) -> tuple[BalanceRow, bool]:
    """The account's row in the balance projection, once it has `min_revision` (if given),
    and whether waiting for it timed out; an account the projection lacks is an error."""
    from ledger.errors import AccountNotFoundError, WaitTimeoutError
    from projections.consistency import wait_for_revision
    from projections.queries import get_balance

    timed_out = min_revision is not None and not wait_for_revision(
        conn, account, min_revision, timeout=obj.settings.wait_timeout
    )
    row = get_balance(conn, account)
    if row is None:
        if timed_out:
            raise WaitTimeoutError(f"account {account} has not reached the projection yet")
        raise AccountNotFoundError(account)
    return row, timed_out


def require_revision(
    obj: Context, conn: psycopg.Connection[Any], account: str, min_revision: int
) -> None:
    """Refuse at once (exit 4) to wait for a revision the account's stream does not have yet:
    waiting can only time out, unless a writer is about to add it (--wait-for-revision)."""
    from ledger.errors import AccountNotFoundError, WaitTimeoutError
    from projections.queries import get_balance

    row = get_balance(conn, account)
    if row is not None and row.last_revision >= min_revision:
        return
    current = make_ledger(obj).handler.store.current_revision(account)
    if current < 0:
        raise AccountNotFoundError(account)
    if min_revision > current:
        raise WaitTimeoutError(
            f"account {account} is at revision {current} in the event store: revision "
            f"{min_revision} does not exist yet (add --wait-for-revision to wait up to "
            f"{obj.settings.wait_timeout:g}s for a writer to reach it)"
        )


def make_ledger(obj: Context) -> Ledger:
    """The write side's API over the configured event store."""
    import getpass

    from ledger.eventstore import AccountEventStore
    from ledger.handler import CommandHandler
    from ledger.service import Ledger

    store = AccountEventStore.connect(eventstore_uri(obj))
    obj.closing.callback(store.close)
    return Ledger(CommandHandler(store), clock=obj.settings.clock, actor=f"cli:{getpass.getuser()}")


def write_model_fold(obj: Context) -> WriteModelFold:
    """The write-model fold that verify and rebuild compare the read models with."""
    from ledger.eventstore import AccountEventStore
    from ledger.writemodel import write_model_fold as fold_of

    store = make_ledger(obj).handler.store
    assert isinstance(store, AccountEventStore)  # it holds the transfer streams too
    return fold_of(store)
