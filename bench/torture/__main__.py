"""`python -m bench.torture`: the short or long run, or --replay of a failed one."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from bench import torture
from bench.torture.report import load_replay
from bench.torture.schedule import LONG_OPS, SHORT_OPS, Config
from bench.torture.session import run


@contextlib.contextmanager
def _quiet_sigint() -> Iterator[None]:
    """Let Ctrl-C stop the run (the finally blocks clean up the services)."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> int:
    """Run the torture run the arguments describe; exit status 1 when it found a violation."""
    parser = argparse.ArgumentParser(prog="python -m bench.torture", description=torture.__doc__)
    parser.add_argument("--long", action="store_true", help=f"{LONG_OPS:,} operations, more kills")
    parser.add_argument("--ops", type=int, help="operations to run (default: short/long mode)")
    parser.add_argument("--clients", type=int, default=8, help="client processes (default 8)")
    parser.add_argument("--seed", type=int, default=20240501, help="seed of ops and faults")
    parser.add_argument("--kills", type=int, help="kills of each service (default: by mode)")
    parser.add_argument("--replay", type=Path, help="run.json of an earlier failed run")
    parser.add_argument("--artifacts", type=Path, help="where to write a failed run's files")
    args = parser.parse_args(argv)
    if args.replay:
        config = load_replay(args.replay)
    elif args.long:
        config = Config.long(args.seed, args.ops or LONG_OPS, args.clients)
    else:
        config = Config(ops=args.ops or SHORT_OPS, clients=args.clients, seed=args.seed)
    if args.kills and not args.replay:
        config = Config(config.ops, config.clients, config.seed, args.kills)
    print(
        f"torture: {config.ops:,} operations, {config.clients} clients, seed {config.seed}, "
        f"{len(config.faults())} scheduled kills",
        file=sys.stderr,
        flush=True,
    )
    with _quiet_sigint():
        report = run(config, artifacts_root=args.artifacts, progress=True)
    print(report.summary())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
