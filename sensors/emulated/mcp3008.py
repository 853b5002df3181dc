"""A bit-level MCP3008 behind an ``EmulatedSpiDev``.

    spi = EmulatedSpiDev(EmulatedMcp3008(clock, lambda ch, t_s: board.volts(ch, t_s)))

``source(ch, t_s)`` gives the voltage of CHx against VSS at the times ``t_s`` (an ndarray of
seconds). Each transaction is one chip-select-low period (section 5.0 of DS21295): DIN bits
before the start bit are ignored, then SGL/DIFF and D2..D0 are read, the input is sampled at
the transfer time, DOUT stays in high impedance (the bus's ``miso_idle`` level) until the null
bit, then sends B9..B0, B1..B9 (LSB first) and zeros. Inputs are clipped to 0..VREF (the
result saturates at 0 and 1023; pseudo-differential inputs with IN- above IN+ give 0) and
quantised as ``round(1024 * VIN / VREF)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sensors.clock import Clock
from sensors.mcp3008 import (
    DIFFERENTIAL_PAIRS,
    FULL_SCALE_CODES,
    RESOLUTION_BITS,
    SPI_MODES,
    max_speed_hz_for,
)

Source = Callable[[int, np.ndarray], np.ndarray]


class EmulatedMcp3008:
    spi_modes = SPI_MODES

    def __init__(self, clock: Clock, source: Source, *, v_ref_v: float = 3.3,
                 vdd_v: float = 3.3) -> None:
        if not 0 < v_ref_v <= vdd_v:
            raise ValueError(f"v_ref_v must be in 0..vdd_v ({vdd_v} V), got {v_ref_v}")
        self.clock = clock
        self.source = source
        self.v_ref_v = v_ref_v
        self.vdd_v = vdd_v
        self.max_speed_hz = max_speed_hz_for(vdd_v)
        self.miso_idle = 0x00  # set by the bus on attach
        self.conversions = 0
        #: (channel, differential) of every conversion, in order.
        self.log: list[tuple[int, bool]] = []

    # -- analog ---------------------------------------------------------------------------------
    def code(self, channel: int, t_s: float, *, differential: bool = False) -> int:
        """The result of converting ``channel`` (or pair code ``channel``) at ``t_s``."""
        if differential:
            plus, minus = DIFFERENTIAL_PAIRS[channel]
            volts = self._volts(plus, t_s) - self._volts(minus, t_s)
        else:
            volts = self._volts(channel, t_s)
        volts = min(max(volts, 0.0), self.v_ref_v)
        return min(FULL_SCALE_CODES - 1, int(np.rint(volts / self.v_ref_v * FULL_SCALE_CODES)))

    def _volts(self, channel: int, t_s: float) -> float:
        v = np.asarray(self.source(channel, np.array([t_s], dtype=np.float64)), dtype=np.float64)
        # The input ESD diodes keep the pin within VSS - 0.6 V .. VDD + 0.6 V.
        return float(np.clip(v.reshape(-1)[0], -0.6, self.vdd_v + 0.6))

    # -- bus ----------------------------------------------------------------------------------
    def transfer(self, tx: list[int]) -> list[int]:
        bits_in = [(b >> (7 - i)) & 1 for b in tx for i in range(8)]
        idle = 1 if self.miso_idle else 0
        out = [idle] * len(bits_in)
        try:
            start = bits_in.index(1)
        except ValueError:
            return self._pack(out)  # no start bit: the chip never leaves high impedance
        header = bits_in[start + 1:start + 5]
        if len(header) < 4:
            return self._pack(out)  # CS rose before the channel was selected: no conversion
        single = header[0]
        channel = (header[1] << 2) | (header[2] << 1) | header[3]
        code = self.code(channel, self.clock.now_ns() / 1e9, differential=not single)
        self.conversions += 1
        self.log.append((channel, not single))
        msb_first = [(code >> (RESOLUTION_BITS - 1 - i)) & 1 for i in range(RESOLUTION_BITS)]
        stream = [0] + msb_first + msb_first[::-1][1:]  # null bit, B9..B0, B1..B9
        first = start + 6  # one clock after D0 samples the input; DOUT drives on the next
        for i in range(first, len(out)):
            k = i - first
            out[i] = stream[k] if k < len(stream) else 0
        return self._pack(out)

    @staticmethod
    def _pack(bits: list[int]) -> list[int]:
        return [int("".join(map(str, bits[k:k + 8])), 2) for k in range(0, len(bits), 8)]
