"""Exit codes and the one place where exceptions become an exit code and a sentence on stderr."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from ledger.errors import (
    AccountNotFoundError,
    BusinessRuleError,
    CheckFailedError,
    ConcurrencyConflictError,
    InvalidInputError,
    LedgerError,
    ServiceUnavailableError,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from cli.context import Context
    from cli.settings import Settings


class ExitCode(IntEnum):
    """The process exit codes of `ledger`, as its top-level help lists them."""

    OK = 0
    REFUSED = 1
    INVALID = 2
    UNAVAILABLE = 3
    WAIT_TIMEOUT = 4
    CHECK_FAILED = 5
    CONFLICT = 6
    INTERNAL = 70
    INTERRUPTED = 130


EXIT_CODES_HELP = """Exit codes: 0 ok · 1 refused by a business rule · 2 invalid input or usage ·
3 a service unavailable · 4 --wait/--min-revision timed out (the write committed) ·
5 a check failed · 6 conflict retries exhausted (safe to retry with the same --tx) ·
70 internal error (details in LEDGER_HOME/logs/cli.log)"""

# Most specific class first: the first class an error is an instance of decides its code.
EXIT_CODE_OF: tuple[tuple[type[LedgerError], ExitCode], ...] = (
    # An unknown account keeps exit 1 (scripts test for it) but has its own message and hint.
    (AccountNotFoundError, ExitCode.REFUSED),
    (InvalidInputError, ExitCode.INVALID),
    (ServiceUnavailableError, ExitCode.UNAVAILABLE),
    (WaitTimeoutError, ExitCode.WAIT_TIMEOUT),
    (CheckFailedError, ExitCode.CHECK_FAILED),
    (ConcurrencyConflictError, ExitCode.CONFLICT),
    (BusinessRuleError, ExitCode.REFUSED),
)

# The error `fail` raises for each code, so that `handled` reports it like any other.
ERROR_FOR: dict[ExitCode, type[LedgerError]] = {
    ExitCode.REFUSED: BusinessRuleError,
    ExitCode.INVALID: InvalidInputError,
    ExitCode.CHECK_FAILED: CheckFailedError,
}

# A retry with the same --tx is safe after these: the write may or may not have happened.
RETRYABLE = (ExitCode.UNAVAILABLE, ExitCode.WAIT_TIMEOUT, ExitCode.CONFLICT)


def retry_hint(transaction_id: str) -> str:
    """What a retry with the same --tx promises after an unknown outcome, and until when."""
    # Imported here: the window module loads pydantic, which a successful command never needs.
    from ledger.accounts.window import WINDOW_SIZE

    return (
        f"transaction id: {transaction_id} (retry with --tx {transaction_id}; it will not be "
        f"posted twice until {WINDOW_SIZE:,} later postings on this account, after which the "
        "id is forgotten and a retry posts again)"
    )


def exit_code_for(error: LedgerError) -> ExitCode:
    """The exit code of a ledger error; an error of no known kind is an internal error."""
    for cls, code in EXIT_CODE_OF:
        if isinstance(error, cls):
            return code
    return ExitCode.INTERNAL


def _log_file(settings: Settings) -> Path:
    if not settings.home.exists():
        settings.home.mkdir(parents=True)
        settings.home.chmod(0o700)
    path = settings.home / "logs" / "cli.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _log_exception(settings: Settings) -> Path:
    """Write the current exception's traceback to cli.log with a handler of its own: the
    root logger may already be configured elsewhere (`projections run`, a test runner)."""
    path = _log_file(settings)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("ledger.cli")
    logger.addHandler(handler)
    try:
        logger.error("unexpected error in `ledger %s`", " ".join(sys.argv[1:]), exc_info=True)
    finally:
        logger.removeHandler(handler)
        handler.close()
    return path


def _how_to_start(obj: Context) -> str:
    """What to do about an unavailable service, for the configuration in use."""
    if obj.settings.embedded:
        return (
            f"start the local stack with `ledger up` (it lives in {obj.settings.home}); "
            "`ledger status` and `ledger logs SERVICE` show what is wrong"
        )
    return (
        "check that the services named by LEDGER_EVENTSTORE_URI and LEDGER_DATABASE_URL are "
        "running (with the compose file: `docker compose up -d`)"
    )


def _unknown_account_hint(account_id: str) -> str:
    lowercase = f"account ids are lowercase (did you mean {account_id.lower()}?); "
    return (
        f"{lowercase if account_id != account_id.lower() else ''}"
        "`ledger accounts` lists the accounts there are"
    )


@contextlib.contextmanager
def handled(obj: Context, transaction_id: str | None = None) -> Iterator[None]:
    """Map failures to one sentence and an exit code; log unexpected ones."""
    try:
        yield
    except typer.Exit:
        raise
    except LedgerError as exc:
        code = exit_code_for(exc)
        message = str(exc)
        if code is ExitCode.UNAVAILABLE:
            message += f"; {_how_to_start(obj)}"
        obj.output.error(message)
        if isinstance(exc, AccountNotFoundError):
            obj.output.note(_unknown_account_hint(exc.account_id))
        if transaction_id and code in RETRYABLE:
            obj.output.note(retry_hint(transaction_id))
        if obj.debug:
            traceback.print_exc()
        raise typer.Exit(code=code) from None
    except KeyboardInterrupt:
        obj.output.error("interrupted")
        raise typer.Exit(code=ExitCode.INTERRUPTED) from None
    except Exception as exc:
        try:
            path = _log_exception(obj.settings)
            where = f"details in {path}"
        except OSError:
            where = "details could not be logged"
        obj.output.error(f"internal error ({type(exc).__name__}); {where}")
        if transaction_id:
            obj.output.note(f"transaction id: {transaction_id}")
        if obj.debug:
            traceback.print_exc()
        raise typer.Exit(code=ExitCode.INTERNAL) from None


def fail(message: str, code: ExitCode = ExitCode.INVALID) -> NoReturn:
    """Stop with a message on stderr and an exit code (refused, invalid or check failed)."""
    raise ERROR_FOR[code](message)


def confirm(obj: Context, question: str, yes: bool) -> None:
    """Ask before a destructive step: exit 2 when nobody can answer, 1 when the answer is no."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} Not confirmed: pass --yes (stdin is not a terminal)", ExitCode.INVALID)
    if not typer.confirm(question, default=False):
        fail("cancelled; nothing was changed", ExitCode.REFUSED)
