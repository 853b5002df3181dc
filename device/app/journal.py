"""Log lines the systemd journal can read: a priority on every line, no second timestamp.

Under systemd the service's stderr is a stream to journald, which stamps each line itself and
reads an sd-daemon ``<N>`` prefix (sd-daemon(3), ``SyslogLevelPrefix=`` on by default) as the
line's syslog priority, so ``journalctl -p warning`` shows exactly the warnings and worse.
systemd says stderr is that stream by ``JOURNAL_STREAM=<device>:<inode>`` (systemd.exec(5)):
the variable alone is not enough, since a child whose stderr was redirected inherits it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

JOURNAL_STREAM_ENV = "JOURNAL_STREAM"

#: syslog priorities (sd-daemon.h: SD_CRIT 2, SD_ERR 3, SD_WARNING 4, SD_INFO 6, SD_DEBUG 7).
_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
_DEBUG_PRIORITY = 7

JOURNAL_FORMAT = "%(name)s: %(message)s"
TERMINAL_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def syslog_priority(levelno: int) -> int:
    for level, priority in _PRIORITY:
        if levelno >= level:
            return priority
    return _DEBUG_PRIORITY


def stream_is_journal(stream: TextIO | None = None, environ: Mapping[str, str] = os.environ) -> bool:
    """True when ``stream`` (stderr by default) is the journal stream systemd connected."""
    value = environ.get(JOURNAL_STREAM_ENV, "")
    stream = sys.stderr if stream is None else stream
    try:
        device, inode = (int(part) for part in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


class JournalFormatter(logging.Formatter):
    """``<N>name: message``, each line of a multi-line record (a traceback) prefixed too, so
    that none of it falls back to the stream's default priority."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def log_level(verbosity: int, service: bool) -> int:
    """INFO for the device (the service, or anything logging to the journal), WARNING for the
    interactive commands; each -v one step more."""
    base = 1 if service else 0
    steps = base + max(verbosity, 0)
    return logging.WARNING if steps <= 0 else logging.INFO if steps == 1 else logging.DEBUG


def configure(verbosity: int = 0, *, service: bool = False, stream: TextIO | None = None) -> bool:
    """Set up the root logger on ``stream`` (stderr); returns whether it writes to the journal."""
    stream = sys.stderr if stream is None else stream
    journal = stream_is_journal(stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter() if journal else logging.Formatter(TERMINAL_FORMAT))
    logging.basicConfig(level=log_level(verbosity, service or journal), handlers=[handler], force=True)
    return journal
