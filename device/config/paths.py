"""Where the device keeps things when the configuration does not say: its state (the outbox,
calibration, self-reports, recordings) and the fetched third-party face models."""

from __future__ import annotations

import os
from pathlib import Path

MODEL_DIR_ENV = "PAINMON_MODEL_DIR"


def default_state_dir() -> Path:
    # systemd's StateDirectory= hands over a colon-separated list; the first entry is ours.
    state_directory = os.environ.get("STATE_DIRECTORY", "")
    if state_directory:
        return Path(state_directory.split(":")[0])
    return Path.home() / ".local" / "state" / "painmon"


def default_model_dir() -> Path:
    """``$PAINMON_MODEL_DIR``, else ``~/.cache/painmon/models``."""
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "painmon" / "models"


def private_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) if needed; a directory we create is 0700 whatever the
    umask. An existing one keeps its mode (systemd's StateDirectory= sets it)."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)
    return path


def private_file(path: str | os.PathLike) -> Path:
    """Create ``path`` if missing and make it readable by its owner only (0600), whatever the
    umask. Called before SQLite opens a database: its journal files take the database's mode."""
    path = Path(path)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    return path
