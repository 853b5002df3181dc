"""What every configuration section shares: strict models and cross-field errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

# strict: TOML values are already typed, so "yes" is not a boolean and "1883" is not a port.
# No inf or nan anywhere: TOML has them, no physical quantity of ours is either.
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def absolute_path(value: Path | None) -> Path | None:
    """``~`` expanded; refused unless absolute and free of ``..`` (a service's working
    directory is nobody's business, and ``..`` hides where a file really is)."""
    if value is None:
        return None
    value = Path(value).expanduser()
    if not value.is_absolute():
        raise ValueError(f"must be an absolute path, got {str(value)!r}")
    if ".." in value.parts:
        raise ValueError(f"must not contain '..', got {str(value)!r}")
    return Path(os.path.normpath(value))


class KeyedValueError(ValueError):
    """A cross-field check failed; ``key`` names the offending field relative to the model."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def is_section(annotation: Any) -> bool:
    """Whether a field's type is a section of its own (a TOML table)."""
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
