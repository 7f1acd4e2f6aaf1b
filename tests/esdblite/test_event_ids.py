"""Event ids sent as strings: esdblite reads exactly what uuid.UUID reads, the same way, and
refuses what it refuses (its shortcut for the canonical form changes nothing)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from esdbclient.protos.Grpc import shared_pb2
from hypothesis import example, given
from hypothesis import strategies as st

from esdblite.messages import uuid_bytes

HEX = "0123456789abcdefABCDEF"
# Canonical-looking ids, with any character swapped in anywhere, and other forms uuid.UUID reads.
CANONICAL = st.uuids().map(str)
SWAP = st.tuples(st.integers(0, 35), st.characters() | st.sampled_from(" -_+{}g"))


def swapped(text: str, swaps: list[tuple[int, str]]) -> str:
    for at, char in swaps:
        text = text[:at] + char + text[at + 1 :]
    return text


MUTATED = st.builds(swapped, CANONICAL, st.lists(SWAP, min_size=1, max_size=3))
IDS = (
    CANONICAL
    | CANONICAL.map(str.upper)
    | MUTATED
    | st.uuids().map(lambda u: u.hex)
    | st.uuids().map(lambda u: f"{{{u}}}")
    | st.uuids().map(lambda u: f"urn:uuid:{u}")
    | st.text(alphabet=HEX + "-_ +", max_size=40)
)


def parsed(parse: Callable[[str], bytes], text: str) -> bytes | str:
    try:
        return parse(text)
    except ValueError:
        return "refused"


@given(IDS)
@example("00 00 00-0000-0000-0000-000000000000")  # spaces: 15 bytes from 32 characters
def test_a_string_id_is_read_as_uuid_uuid_reads_it(text: str) -> None:
    ours = parsed(lambda t: uuid_bytes(shared_pb2.UUID(string=t)), text)
    assert ours == parsed(lambda t: uuid.UUID(t).bytes, text)
