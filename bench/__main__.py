"""`python -m bench [--quick|--full|--huge]`: run the benchmarks, write bench/results/latest.*."""

from __future__ import annotations

import argparse
import functools
import gc
import sys
import time
import traceback

from bench import (
    capacity_bench,
    cli_bench,
    commands_bench,
    esdblite_bench,
    failover_bench,
    grpc_ceiling,
    plots,
    projections_bench,
    scale_bench,
    sharding_bench,
    transfers_bench,
)
from bench.harness import Benchmark, Run, write_readme_section, write_results

SUITES: dict[str, Benchmark] = {
    "esdblite": esdblite_bench.run,
    "ceiling": grpc_ceiling.run,
    "commands": commands_bench.run,
    "transfers": transfers_bench.run,
    "projections": projections_bench.run,
    "sharding": sharding_bench.run,
    "failover": failover_bench.run,
    "scale": scale_bench.run,
    "capacity": capacity_bench.run,
    "cli": cli_bench.run,
}

# The peer needs the `bench` extra (eventsourcing); without it the suite says so and is skipped.
PEER_MISSING = ""
try:
    from bench import peer_bench

    SUITES["peer"] = peer_bench.run
except ModuleNotFoundError as exc:
    if exc.name != "eventsourcing":
        raise
    PEER_MISSING = "eventsourcing is not installed: pip install -c constraints.txt -e '.[bench]'"

SUITES["plots"] = plots.run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (default)")
    mode.add_argument("--full", action="store_true", help="large sizes (1M events)")
    mode.add_argument(
        "--huge", action="store_true", help="--full, and the scale suite goes on to 10M events"
    )
    names = sorted([*SUITES, "peer"] if PEER_MISSING else SUITES)
    parser.add_argument("--only", choices=names, action="append", help="run some suites")
    parser.add_argument(
        "--readme",
        action="store_true",
        help="only rewrite the README's results section from bench/results/latest.json",
    )
    args = parser.parse_args(argv)
    if args.readme:
        write_readme_section()
        print("rewrote the README's benchmark results section", file=sys.stderr)
        return 0
    run = Run(mode="full" if args.full or args.huge else "quick")
    if args.huge:
        SUITES["scale"] = functools.partial(scale_bench.run, huge=True)
    if PEER_MISSING and (not args.only or "peer" in args.only):
        print(f"peer: skipped ({PEER_MISSING})", file=sys.stderr, flush=True)
    for name, suite in SUITES.items():
        if args.only and name not in args.only:
            continue
        print(f"{name}:", file=sys.stderr, flush=True)
        began = time.perf_counter()
        suite(run, args.full or args.huge)
        # Finalise what the suite dropped (gRPC channels, calls) here, in the main thread, with
        # its servers already stopped, rather than in a collection on some gRPC thread later.
        gc.collect()
        print(f"  ({name} took {time.perf_counter() - began:.0f} s)", file=sys.stderr, flush=True)
    run.record_ratios()
    if args.only:
        # latest.* always describe a whole run; a partial one would hide the other figures.
        print("results not written: --only runs a part of the suite", file=sys.stderr)
        return 0
    try:
        plots.draw(run)
    except Exception:  # the figures of a long run are worth more than its pictures
        traceback.print_exc()
        print("plots: drawing failed; writing the figures without them", file=sys.stderr)
    json_path, md_path = write_results(run)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    for plot in run.plots:
        print(f"drew {md_path.parent / plot.file}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
