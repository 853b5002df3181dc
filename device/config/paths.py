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
