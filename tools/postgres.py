"""A real PostgreSQL for tests and benchmarks: initdb + pg_ctl on a free loopback port.

As a non-root user. tools/test.sh installs Debian's postgresql where it is missing. PostgreSQL refuses to run as
root, so when the tests run as root the cluster belongs to the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"PostgreSQL's {name} not found: run tools/test.sh, which "
                                "installs it (Debian: apt-get install postgresql)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, workdir: Path, durable: bool = False) -> None:
        #: durable: fsync and synchronous commit as in production (benchmarks); the tests
        #: run without them.
        self.durable = durable
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self._names = itertools.count(1)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd="/")

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
            # Temporary directories are private to root (pytest's, mkdtemp's): the postgres
            # user must be able to pass through them to its own.
            tmp = Path(tempfile.gettempdir())
            for parent in self.workdir.parents:
                if parent != tmp and tmp in parent.parents:
                    os.chmod(parent, parent.stat().st_mode | 0o711)
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "station",
                  "--no-sync", "-E", "UTF8")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.workdir / "pg.log"),
                  "-w", "-t", "30", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.workdir}"
                  + ("" if self.durable else
                     " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"), "start")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://station@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh database on the server; its URL."""
        import sqlalchemy as sa

        name = f"station_{os.getpid()}_{next(self._names)}"
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        deadline = time.monotonic() + 5
        while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
