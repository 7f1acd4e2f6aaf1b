"""Modules promised to load light do: ids without pydantic, currency without the ledger."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(module: str) -> set[str]:
    """The modules a fresh interpreter has loaded after importing `module`."""
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(run.stdout.split())


def test_the_id_checks_load_without_pydantic() -> None:
    loaded = loaded_after("ledger.accounts.ids")

    assert "ledger.accounts.ids" in loaded
    assert not {name for name in loaded if name.split(".")[0] in ("pydantic", "pydantic_core")}


def test_the_currency_table_imports_nothing_else_from_the_ledger() -> None:
    loaded = loaded_after("ledger.currency")

    assert {name for name in loaded if name.startswith("ledger.")} == {"ledger.currency"}
