"""Server-side $all filters of reads and subscriptions: prefixes or a time-bounded regex."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import regex
from esdbclient.protos.Grpc import streams_pb2

# A client's filter regex runs on the server's event loop; one match may take at most this long,
# so a catastrophic pattern (`(a|aa)+$`) costs its own subscription an error, not everyone a stall.
REGEX_BUDGET_SECONDS = 0.05
# Results are remembered per filter: names and types repeat, and a repeat costs one dict lookup.
MEMO_LIMIT = 65536


class FilterTooExpensive(Exception):
    """A filter regex exceeded its matching budget on one name."""


@functools.lru_cache(maxsize=256)
def compile_regex(pattern: str) -> regex.Pattern[str]:
    """Compile a client regex (the `regex` module reads .NET's `(?<name>...)`); search semantics."""
    return regex.compile(pattern)


def regex_matcher(pattern: str) -> Callable[[str], bool]:
    """A memoised, time-bounded search for one filter; raises FilterTooExpensive on a runaway."""
    search = compile_regex(pattern).search
    memo: dict[str, bool] = {}

    def matches(name: str) -> bool:
        hit = memo.get(name)
        if hit is None:
            try:
                hit = search(name, timeout=REGEX_BUDGET_SECONDS) is not None
            except TimeoutError:
                raise FilterTooExpensive(
                    f"Invalid filter: regex {pattern!r} took over "
                    f"{REGEX_BUDGET_SECONDS * 1000:.0f} ms on {name!r}"
                ) from None
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            memo[name] = hit
        return hit

    return matches


@dataclass(frozen=True)
class Filter:
    """A server-side $all filter on the stream name or the event type."""

    on_stream: bool
    matches: Callable[[str], bool]


def build_filter(options: streams_pb2.ReadReq.Options) -> Filter | None:
    """The filter of a read or subscription, or None; raises regex.error for a bad regex."""
    if options.WhichOneof("filter_option") != "filter":
        return None
    f = options.filter
    which = f.WhichOneof("filter")
    expr = f.stream_identifier if which == "stream_identifier" else f.event_type
    if expr.regex:
        return Filter(which == "stream_identifier", regex_matcher(expr.regex))
    prefixes = tuple(expr.prefix)
    if prefixes:
        return Filter(which == "stream_identifier", lambda s: s.startswith(prefixes))
    return Filter(which == "stream_identifier", lambda s: True)
