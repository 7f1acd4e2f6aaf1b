"""Torture run: concurrent bank clients while esdblite and the projection runner are kill -9'd.

`python -m bench.torture` runs the short mode (the one tests/reliability runs); `--long` a long
one; `--ops N --clients N --seed S` set the figures; `--replay DIR/run.json` repeats a failed
run with its configuration and fault schedule. It prints the operations run, the faults
injected per kind and the violations found, and exits 1 when there is any violation.

Clients are separate processes (multiprocessing, spawn), each with its own AccountEventStore,
CommandHandler and Ledger. They post deposits, withdrawals and reversals on a few hot accounts,
change overdraft limits, retry commands whose outcome they could not learn, and re-send
acknowledged commands (same transaction id, new timestamp). Faults come from a schedule drawn
from the seed and fire when the shared operation counter reaches them: esdblite (on a durable
data dir, restarted on the same port) and the runner (`ledger projections run`) are killed
with SIGKILL, and the clients' connections, which pass through a proxy, are cut so that
replies in flight are lost. Afterwards every account stream, every command the clients sent
and every read model is checked, and `ledger verify` is run.
"""

from bench.torture.checks import check_commands, check_streams, unknown_outcomes
from bench.torture.model_checks import check_read_models
from bench.torture.reading import ReadModels, StreamEvent, Streams
from bench.torture.report import Report, load_replay
from bench.torture.schedule import (
    CUT,
    ESDB,
    FAULT_KINDS,
    LONG_OPS,
    RUNNER,
    SHORT_OPS,
    Config,
    Fault,
    fault_schedule,
)
from bench.torture.session import run

__all__ = [
    "CUT",
    "ESDB",
    "FAULT_KINDS",
    "LONG_OPS",
    "RUNNER",
    "SHORT_OPS",
    "Config",
    "Fault",
    "ReadModels",
    "Report",
    "StreamEvent",
    "Streams",
    "check_commands",
    "check_read_models",
    "check_streams",
    "fault_schedule",
    "load_replay",
    "run",
    "unknown_outcomes",
]
