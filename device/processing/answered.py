"""The command requests already answered, by ``request_id``, kept in the state directory.

A request that reached its handler is executed once: the same ``request_id`` arriving again
(a station's retry, a redelivery after a restart) gets the stored result and runs nothing.
The store survives restarts and holds the latest ``max_entries`` answers, each under the stay
it was answered in (``stay``, set by the bedside; None with no stay open). A request_id answered
in another stay is neither run again nor answered with that patient's result: the router
refuses it. The answers of a stay go when the stay is deleted (``keep_stays``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from device.config.paths import private_dir, private_file
from device.processing.state_files import Step, migrate

ANSWERED_FILE = "commands-answered.sqlite3"
SCHEMA_STEPS = (
    Step(("CREATE TABLE IF NOT EXISTS answered (request_id TEXT PRIMARY KEY, command TEXT NOT NULL,"
          " result TEXT NOT NULL, at REAL NOT NULL)",)),
    # The stay each answer was given in (None: before stays, or none open). Every query here
    # names its columns, so a release that knows only version 1 still reads and writes it.
    Step(("ALTER TABLE answered ADD COLUMN stay TEXT",)),
)


class AnsweredRequests:
    def __init__(self, path: str | os.PathLike | None, max_entries: int = 10_000) -> None:
        """``path`` None keeps them in memory only (the demo without a state directory)."""
        self.max_entries = max_entries
        self._lock = threading.Lock()
        if path is None:
            self._db = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            path = Path(path)
            private_dir(path.parent)
            self._db = sqlite3.connect(path, check_same_thread=False)
            private_file(path)
        self.stay: str | None = None  # the open stay's key, whose answers are replayed
        with self._lock:
            migrate(self._db, path or ":memory:", SCHEMA_STEPS)

    def get(self, request_id: str) -> tuple[str, dict, str | None] | None:
        """(command, result, stay) answered to ``request_id``, or None."""
        with self._lock:
            row = self._db.execute("SELECT command, result, stay FROM answered WHERE request_id = ?",
                                   (request_id,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]), row[2])

    def put(self, request_id: str, command: str, result: dict) -> None:
        """Remember ``result`` under the open stay."""
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO answered (request_id, command, result, at, stay)"
                             " VALUES (?, ?, ?, ?, ?)",
                             (request_id, command, json.dumps(result), time.time(), self.stay))
            self._db.execute("DELETE FROM answered WHERE request_id IN (SELECT request_id FROM "
                             "answered ORDER BY at DESC LIMIT -1 OFFSET ?)", (self.max_entries,))

    def keep_stays(self, stays: set[str]) -> int:
        """Forget the answers of every stay not in ``stays`` (those without a stay stay);
        the number forgotten."""
        with self._lock, self._db:
            known = [row[0] for row in self._db.execute(
                "SELECT DISTINCT stay FROM answered WHERE stay IS NOT NULL")]
            gone = [stay for stay in known if stay not in stays]
            return sum(self._db.execute("DELETE FROM answered WHERE stay = ?", (stay,)).rowcount
                       for stay in gone)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answered").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
