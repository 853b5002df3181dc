"""State files checked at start: a damaged one is moved aside and reported, never deleted.

Every store in ``state_dir`` (the outbox, the self-reports, the calibration) checks its file
when it opens it:

- damaged (garbage, a truncated copy, zero length, an SQLite ``quick_check`` that fails, JSON
  that does not parse or is not what the store wrote): the file and its SQLite companions
  (``-wal``, ``-shm``, ``-journal``) are renamed ``<name>.damaged-<UTC time>`` beside it, the
  move is logged with both paths, ``on_damaged(path, moved_to, reason)`` reports it (a technical
  alarm, see ``alarm_reporter``) and the store starts with a fresh file. A zero-length file is
  damaged, not an empty history: the stores never leave one behind.
- unreadable (permissions, a directory in its place): ``StateFileError``, whose one-line
  message names the file and the fix; the device does not start on it.

Every SQLite store carries its schema version (``migrate``): a file from an older release is
brought forward at open, one step at a time in one transaction; a file from a newer release
(an upgrade that was rolled back) is used as it is when that release's changes were additive,
and refused with ``StateFileError`` when they were not. The JSON calibration carries its
version in its ``schema`` (``painmon.calibration/1``).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
DAMAGED_KIND = "state_file_damaged"

#: ``on_damaged(path, moved_to, reason)``
OnDamaged = Callable[[Path, Path, str], None]


class StateFileError(Exception):
    """A state file the device cannot use and must not replace: the message names the fix."""


def _unreadable(path: Path, exc: OSError) -> StateFileError:
    what = exc.strerror or type(exc).__name__
    if isinstance(exc, IsADirectoryError):
        fix = "move the directory away"
    else:
        fix = (f"give the service's user read and write access to it and to {path.parent} "
               f"(e.g. chown painmon: {path}) or move it away")
    return StateFileError(f"state file {path} cannot be opened: {what}; {fix}")


def _open_rw(path: Path) -> bytes:
    """The first bytes of ``path``, opened for reading and writing as the store will."""
    try:
        with open(path, "r+b") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StateFileError(f"state directory {path.parent} is not writable; give the "
                             f"service's user write access to it (e.g. chown painmon: "
                             f"{path.parent})")
    return head


def check_sqlite(path: str | Path, on_damaged: OnDamaged | None = None) -> Path | None:
    """Check the SQLite database at ``path`` before a store opens it; where it was moved to if
    damaged, else None (also when there is none yet)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    head = _open_rw(path)
    reason = None
    if not head:
        reason = "zero length"
    elif head != SQLITE_HEADER:
        reason = "not an SQLite database"
    else:
        try:
            db = sqlite3.connect(path)
            try:
                rows = db.execute("PRAGMA quick_check").fetchall()
            finally:
                db.close()
            problems = [r[0] for r in rows if r[0] != "ok"]
            if problems:
                reason = "quick_check: " + "; ".join(problems[:3])
        except sqlite3.DatabaseError as exc:
            reason = f"SQLite: {exc}"
    if reason is None:
        return None
    return set_aside(path, reason, on_damaged, companions=SQLITE_COMPANIONS)


def check_json(path: str | Path, on_damaged: OnDamaged | None = None, *,
               valid: Callable[[object], str | None] | None = None) -> Path | None:
    """Check the JSON file at ``path``; ``valid(data)`` returns why parsed data is not what the
    store wrote (None when it is). Where it was moved to if damaged, else None."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    _open_rw(path)
    text = path.read_bytes()
    reason = None
    if not text:
        reason = "zero length"
    else:
        try:
            data = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            reason = f"not JSON: {exc}"
        else:
            reason = valid(data) if valid is not None else None
    if reason is None:
        return None
    return set_aside(path, reason, on_damaged)


def set_aside(path: Path, reason: str, on_damaged: OnDamaged | None = None,
              companions: tuple[str, ...] = ()) -> Path:
    """Rename ``path`` (and its companions) to ``<name>.damaged-<UTC time>``, log and report."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    try:
        os.replace(path, target)
        for suffix in companions:
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                os.replace(extra, target.with_name(target.name + suffix))
    except OSError as exc:
        raise StateFileError(f"state file {path} is damaged ({reason}) and cannot be moved "
                             f"aside: {exc.strerror or exc}; move it away by hand") from None
    log.error("state file %s is damaged (%s): moved aside to %s; starting with a fresh one",
              path, reason, target)
    if on_damaged is not None:
        try:
            on_damaged(path, target, reason)
        except Exception:  # noqa: BLE001 - the report must not stop the start
            log.exception("reporting the damaged state file %s failed", path)
    return target


def alarm_reporter(alarms) -> OnDamaged:
    """``on_damaged`` that raises a technical alarm in ``alarms`` (an ``AlarmBook``): it stays
    until acknowledged and cleared, so someone looks at what was set aside."""

    def report(path: Path, moved_to: Path, reason: str) -> None:
        alarms.raise_alarm(DAMAGED_KIND, path.name, category="technical", priority="medium",
                           message=f"{path} was damaged ({reason}): moved aside to "
                                   f"{moved_to.name}, started with a fresh one")

    return report


@dataclass(frozen=True)
class Step:
    """One schema version of an SQLite store: the statements that take the version before it
    to this one (the first step creates the store, and must accept a file from before schema
    versions, where its tables already exist). ``additive`` says a release that knows only the
    versions before it still reads and writes the result correctly (a new table, a new column
    with a default that it names no column of)."""

    statements: tuple[str, ...]
    additive: bool = True


def schema_version(db: sqlite3.Connection) -> tuple[int, int]:
    """(version, oldest version that can use it) of the open database: SQLite's
    ``user_version`` holds the version in its low 16 bits, the oldest reader above them."""
    value = db.execute("PRAGMA user_version").fetchone()[0]
    return value & 0xFFFF, value >> 16


def migrate(db: sqlite3.Connection, path: str | Path, steps: Sequence[Step]) -> int:
    """Bring the store at ``path`` (open as ``db``, no transaction pending) to ``len(steps)``;
    the version it was at. A newer file whose steps this release does not know is used when
    they were additive, else ``StateFileError`` naming the file and the fix."""
    known = len(steps)
    readable_from = max([i + 1 for i, step in enumerate(steps) if not step.additive], default=1)
    db.execute("BEGIN IMMEDIATE")
    try:
        version, oldest_reader = schema_version(db)
        if version > known:
            db.rollback()
            if oldest_reader > known:
                raise StateFileError(
                    f"state file {path} has schema version {version}, written by a newer painmon "
                    f"that this one (version {known}) cannot read; start that release again, or "
                    f"move the file away to start it afresh")
            log.warning("state file %s has schema version %d from a newer painmon; its changes "
                        "are additive, used as it is", path, version)
            return version
        for step in steps[version:]:
            for statement in step.statements:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {known | readable_from << 16}")
        db.commit()
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise
    if 0 < version < known:
        log.info("state file %s: schema version %d brought forward to %d", path, version, known)
    return version
