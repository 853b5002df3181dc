"""A register-level ADS1115: conversions of analog inputs given by a source function.

    adc = bus.attach(0x48, EmulatedAds1115(clock, lambda ain, t_s: board.volts(ain, t_s)))

``source(ain, t_s)`` returns the voltage of input AINx against GND at the times ``t_s``
(an ndarray of seconds). Modelled from the ADS111x data sheet (SBAS444): the pointer
register selecting one of four 16-bit registers (MSB first); single-shot conversions started
by writing OS=1 in power-down, done 1/DR later (OS reads 0 meanwhile, 1 when done);
continuous mode converting every 1/DR from the CONFIG write that (re)started it; all eight
MUX settings; inputs clamped by the ESD diodes to GND-0.3 V .. VDD+0.3 V, the difference
clipped to +-FS and quantised to 16-bit two's complement. The comparator is modelled only
as the conversion-ready signal ("Conversion Ready Pin"): with ``interrupt`` (a
``sensors.emulated.pins.InterruptLine``) and ALERT/RDY set up as RDY, the line goes low when a
single-shot conversion finishes (high again when the next starts), and pulses after each
conversion in continuous mode. Threshold comparisons are not modelled.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence

import numpy as np

from sensors.ads1115 import ADS1115_REGISTERS, DATA_RATES_SPS, PGA_FULL_SCALE_V
from sensors.clock import Clock
from sensors.regmap import RegisterFile

#: MUX code -> (positive input, negative input); None is GND ("Config Register").
MUX_INPUTS = {0: (0, 1), 1: (0, 3), 2: (1, 3), 3: (2, 3),
              4: (0, None), 5: (1, None), 6: (2, None), 7: (3, None)}
_CONFIG = 1


class EmulatedAds1115:
    """The ADS1115 as its I2C transactions show it.

    ``rate_error`` makes the internal oscillator fast (> 0) or slow (< 0) by that fraction
    (the data sheet allows 10 %), so conversions take ``1 / (DR * (1 + rate_error))``.
    """

    def __init__(
        self,
        clock: Clock,
        source: Callable[[int, np.ndarray], np.ndarray],
        *,
        vdd_v: float = 3.3,
        rate_error: float = 0.0,
        interrupt=None,
    ) -> None:
        self.clock = clock
        self.interrupt = interrupt
        self.source = source
        self.vdd_v = vdd_v
        self.rate_error = rate_error
        self.regs = RegisterFile(ADS1115_REGISTERS)
        self.pointer = 0
        self.conversions = 0
        self.protocol_errors = 0
        self._single_done_ns: int | None = None  # a single-shot conversion in progress ends then
        self._single_code = 0
        self._cont_anchor_ns: int | None = None  # continuous mode started (or restarted) then
        self._cont_seen = 0
        #: Fault injection: conversions never finish (OS stays 0), the chip still answers.
        self.conversion_stuck = False

    # -- analog -----------------------------------------------------------------------------
    def period_ns(self, dr: int | None = None) -> int:
        dr = self.regs.get_field("CONFIG", "DR") if dr is None else dr
        return round(1e9 / (DATA_RATES_SPS[dr] * (1 + self.rate_error)))

    def convert(self, t_ns: np.ndarray | int, mux: int | None = None,
                pga: int | None = None) -> np.ndarray:
        """The codes the converter produces for inputs sampled at ``t_ns``."""
        config = ADS1115_REGISTERS["CONFIG"].decode(self.regs.get("CONFIG"))
        mux = config["MUX"] if mux is None else mux
        pga = config["PGA"] if pga is None else pga
        t_s = np.atleast_1d(np.asarray(t_ns, dtype=np.float64)) / 1e9
        pos, neg = MUX_INPUTS[mux]
        volts = self._pin(pos, t_s)
        if neg is not None:
            volts = volts - self._pin(neg, t_s)
        fs_v = PGA_FULL_SCALE_V[pga]
        codes = np.round(np.clip(volts, -fs_v, fs_v) / fs_v * 32768.0)
        self.conversions += len(codes)
        return np.clip(codes, -32768, 32767).astype(np.int64)

    def _pin(self, ain: int, t_s: np.ndarray) -> np.ndarray:
        v = np.asarray(self.source(ain, t_s), dtype=np.float64) * np.ones_like(t_s)
        # "Absolute Maximum Ratings"/"Analog Inputs": the inputs' ESD diodes clamp at
        # GND - 0.3 V and VDD + 0.3 V.
        return np.clip(v, -0.3, self.vdd_v + 0.3)

    # -- time ---------------------------------------------------------------------------------
    def _settle(self, now_ns: int) -> None:
        """Bring the conversion register up to ``now_ns``."""
        if self.conversion_stuck:
            return
        if self._single_done_ns is not None and now_ns >= self._single_done_ns:
            self.regs.set("CONVERSION", self._single_code & 0xFFFF)
            self._single_done_ns = None
        if self._cont_anchor_ns is not None:
            period = self.period_ns()
            done = (now_ns - self._cont_anchor_ns) // period
            if done > self._cont_seen:
                # Conversion k samples the input as it starts, at anchor + (k - 1) * period.
                code = int(self.convert(self._cont_anchor_ns + (done - 1) * period)[0])
                self.regs.set("CONVERSION", code & 0xFFFF)
                self._cont_seen = done

    # -- ALERT/RDY ---------------------------------------------------------------------------
    def _on_single_done(self) -> None:
        self._settle(self.clock.now_ns())
        if self._single_done_ns is None and not self.conversion_stuck and self.conversion_ready_mode:
            self.interrupt.assert_()

    def _on_continuous_done(self, anchor_ns: int) -> None:
        if self._cont_anchor_ns != anchor_ns or not self.conversion_ready_mode:
            return  # restarted or stopped since
        now_ns = self.clock.now_ns()
        self._settle(now_ns)
        if not self.conversion_stuck:
            self.interrupt.pulse()
        self._schedule_continuous(now_ns)

    def _schedule_continuous(self, now_ns: int) -> None:
        anchor = self._cont_anchor_ns
        period = self.period_ns()
        next_ns = anchor + ((now_ns - anchor) // period + 1) * period
        self.interrupt.wake_at(next_ns, lambda: self._on_continuous_done(anchor))

    def _drive_ready(self, now_ns: int) -> None:
        """After a CONFIG write: release RDY and have it fall when the conversion is done."""
        line = self.interrupt
        if line is None:
            return
        line.release()
        if not self.conversion_ready_mode:
            line.wake_at(None, None)
        elif self._single_done_ns is not None:
            line.wake_at(self._single_done_ns, self._on_single_done)
        elif self._cont_anchor_ns is not None:
            self._schedule_continuous(now_ns)
        else:
            line.wake_at(None, None)

    @property
    def converting(self) -> bool:
        return self._single_done_ns is not None or self._cont_anchor_ns is not None

    @property
    def conversion_ready_mode(self) -> bool:
        """ALERT/RDY set up as conversion-ready ("Conversion Ready Pin")."""
        return bool(self.regs.get("HI_THRESH") & 0x8000 and not self.regs.get("LO_THRESH") & 0x8000
                    and self.regs.get_field("CONFIG", "COMP_QUE") != 0b11)

    # -- I2C ----------------------------------------------------------------------------------
    def _set_pointer(self, register: int) -> None:
        if register & ~0x03:
            # Pointer bits 7:2 must be 0 ("Address Pointer Register"); flag a driver that
            # sends others.
            self.protocol_errors += 1
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.pointer = register

    def read(self, register: int, length: int) -> list[int]:
        self._set_pointer(register)
        now_ns = self.clock.now_ns()
        self._settle(now_ns)
        value = self.regs.values[self.pointer]
        if self.pointer == _CONFIG:
            # Config Register: OS reads 0 while a conversion runs, 1 when the device is idle.
            value = (value & 0x7FFF) | (0 if self.converting else 0x8000)
        pair = [value >> 8, value & 0xFF]
        return [pair[i % 2] for i in range(length)]

    def write(self, register: int, data: Sequence[int]) -> None:
        self._set_pointer(register)
        if not data:
            return  # a pointer write alone, ahead of reads
        if len(data) != 2:
            self.protocol_errors += 1  # registers take exactly two bytes, MSB first
            return
        now_ns = self.clock.now_ns()
        self._settle(now_ns)
        value = (data[0] << 8) | data[1]
        if self.pointer == 0:
            return  # the conversion register is read-only
        if self.pointer != _CONFIG:
            self.regs.values[self.pointer] = value
            return
        self._write_config(value, now_ns)

    def _write_config(self, value: int, now_ns: int) -> None:
        fields = ADS1115_REGISTERS["CONFIG"].decode(value)
        was_single_busy = self._single_done_ns is not None
        self.regs.set("CONFIG", value & 0x7FFF)
        if fields["MODE"] == 0:
            # Continuous mode: a CONFIG write restarts the conversion cycle.
            self._single_done_ns = None
            self._cont_anchor_ns, self._cont_seen = now_ns, 0
            self._drive_ready(now_ns)
            return
        self._cont_anchor_ns = None
        # Config Register: OS=1 starts a single-shot conversion only from power-down.
        if fields["OS"] and not was_single_busy:
            self._single_code = int(self.convert(now_ns, fields["MUX"], fields["PGA"])[0])
            self._single_done_ns = now_ns + self.period_ns(fields["DR"])
            self._drive_ready(now_ns)
