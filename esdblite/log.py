"""The durable append-only event log: CRC-framed records whose byte offsets are $all positions."""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
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
MAX_PAYLOAD = 64 * 1024 * 1024


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
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def scan(self, start: int) -> Iterator[list[Record]]:
        """Yield complete transactions from `start`; cut the file at the first torn or bad frame."""
        pos = start
        pending: list[Record] = []
        txn_start = pos
        size = self.end
        with open(self.path, "rb", buffering=1024 * 1024) as f:
            f.seek(pos)
            while pos < size:
                head = f.read(FRAME_HEAD.size)
                if len(head) < FRAME_HEAD.size:
                    break
                n, crc = FRAME_HEAD.unpack(head)
                if n > MAX_PAYLOAD or pos + FRAME_OVERHEAD + n > size:
                    break
                payload = f.read(n)
                tail = f.read(FRAME_TAIL.size)
                if zlib.crc32(payload) != crc or FRAME_TAIL.unpack(tail)[0] != n:
                    break
                try:
                    record, end_txn = decode(pos, payload)
                except (ValueError, UnicodeDecodeError, struct.error):
                    break
                pending.append(record)
                pos += FRAME_OVERHEAD + n
                if end_txn:
                    yield pending
                    pending = []
                    txn_start = pos
        if txn_start < size:
            log.warning(
                "truncating the log at position %d: %d bytes of a torn or corrupt tail cut off",
                txn_start,
                size - txn_start,
            )
            os.ftruncate(self.fd, txn_start)
            self._sync_file_and_dir()
            self.end = txn_start

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
