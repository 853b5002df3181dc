"""The command requests already answered, by ``request_id``, kept in the state directory.

A request that reached its handler is executed once: the same ``request_id`` arriving again
(a station's retry, a redelivery after a restart) gets the stored result and runs nothing.
The store survives restarts, holds the latest ``max_entries`` answers, and is emptied for a
new stay (``forget_all``, e.g. at admission) so a new patient starts with no history.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from device.config.paths import private_dir, private_file

ANSWERED_FILE = "commands-answered.sqlite3"


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
        with self._lock, self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS answered (request_id TEXT PRIMARY KEY,"
                             " command TEXT NOT NULL, result TEXT NOT NULL, at REAL NOT NULL)")

    def get(self, request_id: str) -> tuple[str, dict] | None:
        """(command, result) answered to ``request_id``, or None."""
        with self._lock:
            row = self._db.execute("SELECT command, result FROM answered WHERE request_id = ?",
                                   (request_id,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def put(self, request_id: str, command: str, result: dict) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO answered VALUES (?, ?, ?, ?)",
                             (request_id, command, json.dumps(result), time.time()))
            self._db.execute("DELETE FROM answered WHERE request_id IN (SELECT request_id FROM "
                             "answered ORDER BY at DESC LIMIT -1 OFFSET ?)", (self.max_entries,))

    def forget_all(self) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM answered")

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answered").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
