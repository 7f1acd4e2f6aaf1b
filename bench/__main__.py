"""`python -m bench [--quick|--full]`: run every benchmark and write bench/results/latest.*."""

from __future__ import annotations

import argparse
import sys

from bench import commands_bench, esdblite_bench
from bench.harness import Run, write_results

SUITES = {"esdblite": esdblite_bench.run, "commands": commands_bench.run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (default)")
    mode.add_argument("--full", action="store_true", help="large sizes (1M events)")
    parser.add_argument("--only", choices=sorted(SUITES), action="append", help="run some suites")
    args = parser.parse_args(argv)
    run = Run(mode="full" if args.full else "quick")
    for name, suite in SUITES.items():
        if args.only and name not in args.only:
            continue
        print(f"{name}:", file=sys.stderr, flush=True)
        suite(run, args.full)
    json_path, md_path = write_results(run)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
