"""What every configuration section shares: strict models and cross-field errors."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

# strict: TOML values are already typed, so "yes" is not a boolean and "1883" is not a port.
STRICT = ConfigDict(extra="forbid", strict=True)


class KeyedValueError(ValueError):
    """A cross-field check failed; ``key`` names the offending field relative to the model."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def is_section(annotation: Any) -> bool:
    """Whether a field's type is a section of its own (a TOML table)."""
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
