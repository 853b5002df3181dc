"""The data that leaves sensors/: blocks of samples and camera frames."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class SampleBlock:
    """Contiguous, evenly spaced samples of one channel.

    ``t0_ns`` is the monotonic-clock time of the first sample; sample ``i`` was taken at
    ``t0_ns + i * 1e9 / rate_hz``. A gap in acquisition starts a new block.
    ``unit`` names the physical unit of ``samples`` ("counts", "g", "uS", "mV", "V").
    """

    channel: str
    rate_hz: float
    t0_ns: int
    samples: np.ndarray
    unit: str = ""

    def __post_init__(self) -> None:
        if self.rate_hz <= 0:
            raise ValueError(f"{self.channel}: rate_hz must be > 0, got {self.rate_hz}")
        if np.ndim(self.samples) != 1:
            raise ValueError(f"{self.channel}: samples must be 1-D, got shape {np.shape(self.samples)}")

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def period_ns(self) -> float:
        return 1e9 / self.rate_hz

    @property
    def t_end_ns(self) -> int:
        """Time just after the last sample: where the next contiguous block starts."""
        return self.t0_ns + round(len(self.samples) * self.period_ns)

    def times_ns(self) -> np.ndarray:
        return self.t0_ns + np.round(np.arange(len(self.samples)) * self.period_ns).astype(np.int64)


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera image (H x W x 3 uint8 RGB, or H x W gray) at a monotonic time."""

    t_ns: int
    image: np.ndarray
    source: str = ""
    meta: dict = field(default_factory=dict)
