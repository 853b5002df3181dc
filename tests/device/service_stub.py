"""A stand-in for ``systemctl restart painmon.service`` where no systemd runs: stops the
process in ``<prefix>/service.pid``, starts ``<prefix>/current/venv/bin/painmon run`` in its
own session, and, as systemd does for a service that exits while starting, fails when the new
process is gone within ``--settle`` seconds.

    python tests/device/service_stub.py --prefix DIR --config FILE [--settle 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def stop(pidfile: Path, timeout_s: float = 20.0) -> None:
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child: poll for it
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            finished = 0
        if finished:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    pidfile = args.prefix / "service.pid"
    stop(pidfile)
    with open(args.prefix / "service.log", "ab") as log:  # the child keeps its own copy
        proc = subprocess.Popen([str(args.prefix / "current" / "venv" / "bin" / "painmon"), "run",
                                 "--config", str(args.config)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    pidfile.write_text(str(proc.pid))
    deadline = time.monotonic() + args.settle
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"painmon.service: process exited {proc.returncode} while starting", file=sys.stderr)
            return 1
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
