"""`cli.main.app` invoked in-process with CliRunner, for the CLI tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from typer.testing import CliRunner, Result

from cli.main import app


@dataclass
class Cli:
    """Invoke `cli.main.app` in-process with CliRunner (stdout and stderr kept apart)."""

    runner: CliRunner

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(app, list(args), input=input, catch_exceptions=False)

    def ok(self, *args: str) -> Result:
        """Invoke and require exit code 0."""
        result = self(*args)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        """Invoke with --json, require exit code 0 and return the parsed stdout."""
        return json.loads(self.ok(*args, "--json").stdout)
