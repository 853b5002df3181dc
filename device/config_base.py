"""What every configuration section shares: strict models and cross-field errors."""

from __future__ import annotations

from pydantic import ConfigDict

# strict: TOML values are already typed, so "yes" is not a boolean and "1883" is not a port.
STRICT = ConfigDict(extra="forbid", strict=True)


class KeyedValueError(ValueError):
    """A cross-field check failed; ``key`` names the offending field relative to the model."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
