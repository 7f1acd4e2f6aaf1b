"""Offline maintenance of a data directory: `esdblite scavenge` and `esdblite repair`."""

from __future__ import annotations

import contextlib
import datetime
import logging
import sqlite3
from pathlib import Path

from esdblite.app import StartupError, backup, lock_data_dir
from esdblite.index import connect
from esdblite.log import EventLog
from esdblite.scavenge import ScavengeResult
from esdblite.store import Store

log = logging.getLogger("esdblite")


def _locked(data_dir: Path, what: str) -> contextlib.AbstractContextManager[object]:
    if not (data_dir / "events.log").exists():
        raise StartupError(f"{data_dir} holds no esdblite data")
    try:
        return contextlib.closing(lock_data_dir(data_dir))
    except StartupError:
        raise StartupError(
            f"cannot {what} {data_dir}: a running esdblite server holds it"
            + (
                " (a running node scavenges itself with --scavenge-interval)"
                if what == "scavenge"
                else "; stop it first"
            )
        ) from None


def scavenge_offline(data_dir: Path) -> tuple[ScavengeResult, int, int]:
    """Scavenge a stopped node's data; the result and the data's disk usage before and after."""
    with _locked(data_dir, "scavenge"):
        before = disk_usage(data_dir)
        try:
            store = Store(data_dir)
        except (OSError, ValueError) as exc:
            raise StartupError(f"cannot open the store in {data_dir}: {exc}") from exc
        try:
            result = store.scavenge().result()
        finally:
            store.close()
        # VACUUM gives the index's free pages back and turns an older index incremental.
        db = connect(data_dir / "index.sqlite")
        try:
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        return result, before, disk_usage(data_dir)


def disk_usage(data_dir: Path) -> int:
    """Bytes the directory's files take on disk (holes punched by a scavenge not counted)."""
    return sum(p.stat().st_blocks * 512 for p in data_dir.iterdir() if p.is_file())


def repair(data_dir: Path, backup_dir: Path | None = None) -> str:
    """Back the data up, then cut the log at its first bad frame; what was done, in words."""
    with _locked(data_dir, "repair"):
        event_log = EventLog(data_dir / "events.log")
        try:
            bad = event_log.find_bad_frame()
            if bad is None:
                return f"{data_dir}/events.log has no bad frame: nothing to repair"
            offset, found, cut = bad
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
            dest = backup_dir or data_dir.with_name(f"{data_dir.name}.backup-{stamp}")
            backup(data_dir, dest)
            dropped_bytes = event_log.end - cut
            after = _frames_after(event_log, offset)
            indexed = _drop_index_rows(data_dir / "index.sqlite", cut)
            event_log.cut(cut)
        finally:
            event_log.close()
    return (
        f"backup of {data_dir} written to {dest}\n"
        f"bad frame at offset {offset}: {found}\n"
        f"cut the log at offset {cut} (the start of that frame's transaction): "
        f"{dropped_bytes} bytes dropped, holding at least {after} intact records after the bad "
        f"frame ({indexed} records were in the index)"
    )


def _frames_after(event_log: EventLog, offset: int) -> int:
    """How many intact frames lie between a bad frame and the end, walking back from the end."""
    count, end = 0, event_log.end
    while (start := event_log.frame_ending_at(end)) is not None and start > offset:
        count += 1
        end = start
    return count


def _drop_index_rows(index_path: Path, cut: int) -> int:
    if not index_path.exists():
        return 0
    db = sqlite3.connect(index_path)
    try:
        with db:
            db.execute("CREATE TABLE IF NOT EXISTS scavenged(position INTEGER PRIMARY KEY)")
            (count,) = db.execute(
                "SELECT count(*) FROM events WHERE position >= ?", (cut,)
            ).fetchone()
            db.execute("DELETE FROM events WHERE position >= ?", (cut,))
            db.execute("DELETE FROM scavenged WHERE position >= ?", (cut,))
    finally:
        db.close()
    dropped: int = count
    return dropped
