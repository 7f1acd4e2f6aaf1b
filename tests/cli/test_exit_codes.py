"""The one mapping from exceptions to exit codes (cli.errors), and `fail` going through it."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from cli.errors import ERROR_FOR, ExitCode, exit_code_for, fail
from ledger import errors
from ledger.errors import LedgerError
from projections.applier import ProjectionGapError
from projections.rebuild import RebuildVerificationError

EXPECTED_EXIT_CODES = {
    "LedgerError": 70,
    "CorruptEventError": 70,
    "InvalidInputError": 2,
    "ServiceUnavailableError": 3,
    "WaitTimeoutError": 4,
    "CheckFailedError": 5,
    "ConcurrencyConflictError": 6,
    "BusinessRuleError": 1,
    "AccountNotFoundError": 1,
    "AccountClosedError": 1,
    "AccountAlreadyOpenError": 1,
    "TransactionConflictError": 1,
    "PostingNotFoundError": 1,
    "AlreadyReversedError": 1,
    "NotReversibleError": 1,
    "InsufficientFundsError": 1,
    "OverdraftLimitTooLowError": 1,
    "NonZeroBalanceError": 1,
    "BalanceOutOfBoundsError": 1,
    "EarlierThanLastEventError": 2,
    "SameAccountError": 2,
    "CurrencyMismatchError": 1,
    "TransferConflictError": 1,
    "TransferNotFoundError": 1,
    # Handled inside the transfer process (it searches the stream); never a user's error.
    "StepOutsideWindowError": 70,
}

PROJECT = Path(__file__).resolve().parents[2]

ERROR_CLASSES = [
    cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, LedgerError)
]


def an_instance(cls: type[LedgerError]) -> LedgerError:
    """An error of exactly this class, without running its constructor's message building."""
    return cls.__new__(cls)


def test_every_ledger_error_maps_to_its_exit_code() -> None:
    codes = {cls.__name__: exit_code_for(an_instance(cls)) for cls in ERROR_CLASSES}
    assert codes == EXPECTED_EXIT_CODES


def test_errors_outside_the_domain_map_by_their_base_class() -> None:
    assert exit_code_for(ProjectionGapError("gap")) is ExitCode.INTERNAL
    assert exit_code_for(RebuildVerificationError("mismatch")) is ExitCode.CHECK_FAILED


@pytest.mark.parametrize("code", list(ERROR_FOR), ids=lambda code: code.name)
def test_fail_raises_an_error_that_maps_back_to_its_code(code: ExitCode) -> None:
    with pytest.raises(LedgerError, match=r"^no way$") as caught:
        fail("no way", code)
    assert exit_code_for(caught.value) is code


def test_fail_is_invalid_input_by_default() -> None:
    with pytest.raises(LedgerError) as caught:
        fail("bad")
    assert exit_code_for(caught.value) is ExitCode.INVALID


def test_the_top_level_help_loads_no_store_client_nor_the_read_or_write_side() -> None:
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cli.main import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        "heavy = ('psycopg', 'esdbclient', 'grpc', 'projections', 'ledger.handler')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"
