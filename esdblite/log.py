"""The durable append-only event log: CRC-framed records whose byte offsets are $all positions.

A scavenge rewrites a removed record in place as a *padding* frame of the same length (its payload
zeroed, the zeros punched out of the file), so every surviving record keeps its offset.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("esdblite.log")

MAGIC = b"ESDBLITE"
VERSION = 1
HEADER = MAGIC + struct.pack("<II", VERSION, 0)
HEADER_SIZE = len(HEADER)  # 16: the first record's position, so positions are always > 0

FRAME_HEAD = struct.Struct("<II")  # payload length, crc32(payload)
FRAME_TAIL = struct.Struct("<I")  # payload length again, so the log can be walked backwards
PAYLOAD_HEAD = struct.Struct("<BqqB16sHHII")
FRAME_OVERHEAD = FRAME_HEAD.size + FRAME_TAIL.size

END_OF_TRANSACTION = 0x01
SCAVENGED = 0x02  # a padding frame: the record was removed by a scavenge; its offset stays valid
MAX_PAYLOAD = 64 * 1024 * 1024
JOURNAL = struct.Struct("<qIB")  # position, payload length, end-of-transaction flag
JOURNAL_SUFFIX = ".scavenge-journal"
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02


class CorruptLog(ValueError):
    """A bad frame with acknowledged records after it: not a torn tail, so nothing is cut."""

    def __init__(self, path: Path, offset: int, found: str, end: int, cut: int) -> None:
        self.path = path
        self.offset = offset
        self.found = found
        self.end = end
        self.cut = cut
        super().__init__(
            f"{path} is corrupt at offset {offset}: {found}; {end - offset} bytes follow it "
            f"(the log ends at {end}) and hold acknowledged records, so this is not a torn tail "
            "and nothing was cut. Restore a backup, or run "
            f"`esdblite repair --data {path.parent}` to cut the log at offset {cut} "
            "(it takes a backup first)"
        )


class _BadFrame(Exception):
    def __init__(self, offset: int, found: str) -> None:
        super().__init__(found)
        self.offset = offset
        self.found = found


@dataclass
class Transaction:
    """The records of one atomic append, and the positions of its scavenged (padding) frames."""

    records: list[Record] = field(default_factory=list)
    padded: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Record:
    """One event as stored: in a stream at a revision, and in $all at a position."""

    position: int
    stream: str
    revision: int
    event_id: bytes
    type: str
    is_json: bool
    created: int
    metadata: bytes
    data: bytes


def encode(record: Record, *, end_of_transaction: bool) -> bytes:
    """Frame one record; the last record of an atomic append carries the end-of-transaction flag."""
    stream = record.stream.encode()
    type_ = record.type.encode()
    payload = b"".join(
        (
            PAYLOAD_HEAD.pack(
                END_OF_TRANSACTION if end_of_transaction else 0,
                record.revision,
                record.created,
                1 if record.is_json else 0,
                record.event_id,
                len(stream),
                len(type_),
                len(record.metadata),
                len(record.data),
            ),
            stream,
            type_,
            record.metadata,
            record.data,
        )
    )
    n = len(payload)
    return FRAME_HEAD.pack(n, zlib.crc32(payload)) + payload + FRAME_TAIL.pack(n)


def frame_size(record: Record) -> int:
    """The number of bytes `encode` produces for this record."""
    return (
        FRAME_OVERHEAD
        + PAYLOAD_HEAD.size
        + len(record.stream.encode())
        + len(record.type.encode())
        + len(record.metadata)
        + len(record.data)
    )


def decode(position: int, payload: bytes) -> tuple[Record, bool]:
    """Decode a payload into its record and whether it ends a transaction."""
    flags, revision, created, is_json, event_id, ls, lt, lm, ld = PAYLOAD_HEAD.unpack_from(payload)
    o = PAYLOAD_HEAD.size
    stream = payload[o : o + ls].decode()
    o += ls
    type_ = payload[o : o + lt].decode()
    o += lt
    metadata = payload[o : o + lm]
    o += lm
    data = payload[o : o + ld]
    if o + ld != len(payload):
        raise ValueError("payload length mismatch")
    record = Record(
        position, stream, revision, event_id, type_, bool(is_json), created, metadata, data
    )
    return record, bool(flags & END_OF_TRANSACTION)


class EventLog:
    """A single append-only file. Only the writer thread appends; recovery runs before serving."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        new = not path.exists()
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if new or os.fstat(self.fd).st_size == 0:
            os.pwrite(self.fd, HEADER, 0)
            self._sync_file_and_dir()
        elif os.pread(self.fd, HEADER_SIZE, 0)[: len(MAGIC)] != MAGIC:
            raise ValueError(f"{path} is not an esdblite log")
        self.end = os.fstat(self.fd).st_size

    def _sync_file_and_dir(self) -> None:
        if not self.fsync:
            return
        os.fsync(self.fd)
        self._sync_dir()

    def _check(self, pos: int, head: bytes, payload: bytes, tail: bytes, size: int) -> int:
        """The frame's payload length; _BadFrame saying what is wrong with it."""
        if len(head) < FRAME_HEAD.size:
            raise _BadFrame(pos, f"an incomplete frame header ({len(head)} of 8 bytes)")
        n, crc = FRAME_HEAD.unpack(head)
        if n == 0 or n > MAX_PAYLOAD:
            raise _BadFrame(pos, f"a frame length of {n} bytes (allowed: 1 to {MAX_PAYLOAD})")
        if pos + FRAME_OVERHEAD + n > size:
            raise _BadFrame(
                pos,
                f"a frame of {n} bytes running {pos + FRAME_OVERHEAD + n - size} bytes past "
                "the end of the file",
            )
        computed = zlib.crc32(payload)
        if computed != crc:
            raise _BadFrame(
                pos,
                f"a checksum mismatch in a frame of {n} bytes "
                f"(stored 0x{crc:08x}, computed 0x{computed:08x})",
            )
        (tail_n,) = FRAME_TAIL.unpack(tail)
        if tail_n != n:
            raise _BadFrame(pos, f"a trailing length of {tail_n} in a frame of {n} bytes")
        length: int = n
        return length

    def _frames(self, start: int, size: int) -> Iterator[tuple[int, bytes]]:
        """(position, payload) of each frame from `start`; _BadFrame at the first bad one."""
        pos = start
        with open(self.path, "rb", buffering=1024 * 1024) as f:
            f.seek(pos)
            while pos < size:
                head = f.read(FRAME_HEAD.size)
                n = FRAME_HEAD.unpack(head)[0] if len(head) == FRAME_HEAD.size else 0
                fits = 0 < n <= MAX_PAYLOAD and pos + FRAME_OVERHEAD + n <= size
                payload = f.read(n) if fits else b""
                tail = f.read(FRAME_TAIL.size) if fits else b""
                self._check(pos, head, payload, tail, size)
                yield pos, payload
                pos += FRAME_OVERHEAD + n

    def frame_ending_at(self, end: int) -> int | None:
        """The start of a valid frame that ends exactly at `end`, if there is one."""
        if end - FRAME_OVERHEAD <= HEADER_SIZE:
            return None
        (n,) = FRAME_TAIL.unpack(os.pread(self.fd, FRAME_TAIL.size, end - FRAME_TAIL.size))
        start = end - FRAME_OVERHEAD - n
        if n == 0 or n > MAX_PAYLOAD or start < HEADER_SIZE:
            return None
        head = os.pread(self.fd, FRAME_HEAD.size, start)
        payload = os.pread(self.fd, n, start + FRAME_HEAD.size)
        try:
            self._check(start, head, payload, FRAME_TAIL.pack(n), end)
            if not payload[0] & SCAVENGED:
                decode(start, payload)
        except (_BadFrame, ValueError, UnicodeDecodeError, struct.error):
            return None
        found: int = start
        return found

    def verify(self, stop: int) -> None:
        """Check every frame before `stop` (records the index holds): CorruptLog at a bad one."""
        # Checksums only: decoding every record would make each start-up much slower.
        bad = self.find_bad_frame(stop, decoding=False)
        if bad is not None:
            raise CorruptLog(self.path, *bad[:2], self.end, bad[2])

    def scan(self, start: int) -> Iterator[Transaction]:
        """Yield complete transactions from `start`, then cut a torn tail.

        A bad frame is a torn tail only when nothing valid follows it: when the log's last frame
        checks out, acknowledged records follow the bad one, so CorruptLog is raised instead and
        nothing is cut.
        """
        pending = Transaction()
        txn_start = start
        try:
            for pos, payload in self._frames(start, self.end):
                flags = payload[0]
                if flags & SCAVENGED:
                    pending.padded.append(pos)
                else:
                    try:
                        record, _ = decode(pos, payload)
                    except (ValueError, UnicodeDecodeError, struct.error) as exc:
                        raise _BadFrame(pos, f"an undecodable record ({exc})") from None
                    pending.records.append(record)
                if flags & END_OF_TRANSACTION:
                    yield pending
                    pending = Transaction()
                    txn_start = pos + FRAME_OVERHEAD + len(payload)
        except _BadFrame as bad:
            last = self.frame_ending_at(self.end)
            if last is not None and last > bad.offset:
                raise CorruptLog(self.path, bad.offset, bad.found, self.end, txn_start) from None
        if txn_start < self.end:
            log.warning(
                "truncating the log at position %d: %d bytes of a torn or corrupt tail cut off",
                txn_start,
                self.end - txn_start,
            )
            self.cut(txn_start)

    def find_bad_frame(
        self, stop: int | None = None, *, decoding: bool = True
    ) -> tuple[int, str, int] | None:
        """The first bad frame before `stop`: its offset, what was found, its transaction start."""
        txn_start = HEADER_SIZE
        try:
            for pos, payload in self._frames(HEADER_SIZE, self.end if stop is None else stop):
                if decoding and not payload[0] & SCAVENGED:
                    try:
                        decode(pos, payload)
                    except (ValueError, UnicodeDecodeError, struct.error) as exc:
                        return pos, f"an undecodable record ({exc})", txn_start
                if payload[0] & END_OF_TRANSACTION:
                    txn_start = pos + FRAME_OVERHEAD + len(payload)
        except _BadFrame as bad:
            return bad.offset, bad.found, txn_start
        return None

    def cut(self, at: int) -> None:
        """Truncate the log at `at`, durably."""
        os.ftruncate(self.fd, at)
        self._sync_file_and_dir()
        self.end = at

    def frame_info(self, position: int) -> tuple[int, bool]:
        """The payload length of the frame at `position` and whether it ends a transaction."""
        head = os.pread(self.fd, FRAME_HEAD.size + 1, position)
        (n, _) = FRAME_HEAD.unpack_from(head)
        return n, bool(head[FRAME_HEAD.size] & END_OF_TRANSACTION)

    def pad(self, frames: Sequence[tuple[int, int, bool]]) -> int:
        """Turn frames (position, length, end of transaction) into padding; bytes punched out.

        A journal written first makes this redoable after a crash (`redo_journal`), so a frame
        is never left half rewritten.
        """
        if not frames:
            return 0
        journal = self.path.with_name(self.path.name + JOURNAL_SUFFIX)
        fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join(JOURNAL.pack(p, n, eot) for p, n, eot in frames))
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._sync_dir()
        reclaimed = self._apply(frames)
        journal.unlink()
        self._sync_dir()
        return reclaimed

    def redo_journal(self) -> None:
        """Finish a scavenge's rewrite interrupted by a crash."""
        journal = self.path.with_name(self.path.name + JOURNAL_SUFFIX)
        if not journal.exists():
            return
        raw = journal.read_bytes()
        whole = len(raw) - len(raw) % JOURNAL.size
        frames = [JOURNAL.unpack_from(raw, o) for o in range(0, whole, JOURNAL.size)]
        log.warning("finishing an interrupted scavenge (%d frames)", len(frames))
        self._apply([(p, n, bool(eot)) for p, n, eot in frames])
        journal.unlink()
        self._sync_dir()

    def _apply(self, frames: Sequence[tuple[int, int, bool]]) -> int:
        reclaimed = 0
        for position, n, eot in frames:
            flags = SCAVENGED | (END_OF_TRANSACTION if eot else 0)
            payload_crc = zlib.crc32(bytes(n - 1), zlib.crc32(bytes([flags])))
            os.pwrite(self.fd, FRAME_HEAD.pack(n, payload_crc) + bytes([flags]), position)
            zero_from, zero_to = position + FRAME_HEAD.size + 1, position + FRAME_HEAD.size + n
            if not punch_hole(self.fd, zero_from, zero_to - zero_from):
                _write_zeros(self.fd, zero_from, zero_to)
            else:
                reclaimed += zero_to - zero_from
            os.pwrite(self.fd, FRAME_TAIL.pack(n), zero_to)
        if self.fsync:
            os.fsync(self.fd)
        return reclaimed

    def _sync_dir(self) -> None:
        if not self.fsync:
            return
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def record_end(self, position: int) -> int:
        """The position just after the frame that starts at `position`."""
        head = os.pread(self.fd, FRAME_HEAD.size, position)
        if len(head) < FRAME_HEAD.size:
            return self.end
        (n, _) = FRAME_HEAD.unpack(head)
        end: int = position + FRAME_OVERHEAD + n
        return end

    def last_transaction_start(self, end: int) -> int:
        """The position of the first frame of the transaction that ends at `end`."""
        pos = end
        first = True
        while pos > HEADER_SIZE:
            (n,) = FRAME_TAIL.unpack(os.pread(self.fd, FRAME_TAIL.size, pos - FRAME_TAIL.size))
            start = pos - FRAME_OVERHEAD - n
            if n > MAX_PAYLOAD or start < HEADER_SIZE:
                return HEADER_SIZE
            (head_n, _) = FRAME_HEAD.unpack(os.pread(self.fd, FRAME_HEAD.size, start))
            if head_n != n:
                # A damaged length: fall back to a full scan rather than guess a boundary.
                return HEADER_SIZE
            flags = os.pread(self.fd, 1, start + FRAME_HEAD.size)
            if not first and flags and flags[0] & END_OF_TRANSACTION:
                return pos
            first = False
            pos = start
        return HEADER_SIZE

    def write(self, frames: bytes) -> int:
        """Write frames at the end of the log (not yet durable); return their first position."""
        start = self.end
        written = os.pwrite(self.fd, frames, start)
        if written != len(frames):
            raise OSError(f"short write to the log ({written} of {len(frames)} bytes)")
        self.end = start + written
        return start

    def sync(self) -> None:
        """Make everything written so far durable."""
        if self.fsync:
            os.fdatasync(self.fd)

    def close(self) -> None:
        """Close the file."""
        os.close(self.fd)


def _fallocate() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    fn = getattr(ctypes.CDLL(name, use_errno=True), "fallocate", None) if name else None
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        fn.restype = ctypes.c_int
    return fn


_FALLOCATE = _fallocate()


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Zero a range and give its whole blocks back to the file system; False if unsupported."""
    if _FALLOCATE is None or length <= 0:
        return False
    mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
    return bool(_FALLOCATE(fd, mode, offset, length) == 0)


def _write_zeros(fd: int, start: int, stop: int) -> None:
    chunk = bytes(1024 * 1024)
    while start < stop:
        n = min(len(chunk), stop - start)
        os.pwrite(fd, chunk[:n], start)
        start += n
