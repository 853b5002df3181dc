"""Register-level MAX30102 / MAX30101 emulators.

    bus.attach(0x57, EmulatedMax30102(clock, source))

``source(t_s) -> {"red": ..., "ir": ..., "green": ...}`` gives, for an array of times in
seconds, the relative light intensity reaching the photodiode for each LED: about 1.0 for a
finger at typical perfusion, near 0 with no finger. Time advances with the clock: on every bus
transaction the chip catches up with the samples it took since the last one, evaluating the
source once, vectorised, at their times.

With ``interrupt`` (a ``sensors.emulated.pins.InterruptLine``) the chip drives INT as the data
sheet describes it ("Interrupt Status"): active low while an enabled flag (A_FULL, PPG_RDY,
ALC_OVF, DIE_TEMP_RDY) or the unmaskable PWR_RDY is set. Flags clear when INTR_STATUS is read
and, for A_FULL and PPG_RDY, when FIFO_DATA is read. The line moves at the moment the FIFO
reaches its almost-full threshold, not at the next transaction: the chip asks the line to
wake it then.

Counts = intensity x LED current x gain, where the gain grows with the pulse width (charge
integrated per pulse) and shrinks with the ADC full scale; IR at 7 mA, 411 us, 4096 nA and
intensity 1.0 gives ``REFERENCE_COUNTS``. Values clip at 2^18 - 1 and, below 18-bit
resolution, the low bits read as zero (the data are left-justified).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from sensors.emulated.i2c import RegisterChip
from sensors.max3010x import (
    ADC_RANGES_NA,
    ADC_RESOLUTION_BITS,
    BYTES_PER_LED,
    DATA_MASK,
    FIFO_DEPTH,
    LED_CURRENT_STEP_MA,
    LED_PA_REGISTERS,
    MAX30101_REGISTERS,
    MAX30102_REGISTERS,
    OVF_SATURATED,
    PART_ID,
    PULSE_WIDTHS_US,
    SAMPLE_RATES_HZ,
    TEMPERATURE_CONVERSION_S,
    TEMPERATURE_FRAC_C,
)
from sensors.regmap import RegisterFile

Source = Callable[[np.ndarray], dict]

#: Counts for intensity 1.0 from the IR LED at 7 mA, 411 us pulses, 4096 nA full scale.
REFERENCE_COUNTS = 120_000
_REFERENCE_MA, _REFERENCE_PW_US, _REFERENCE_RANGE_NA = 7.0, 411, 4096
_SLOT_LEDS = {0b001: "red", 0b010: "ir", 0b011: "green"}
_MODE_LEDS = {0b010: ("red",), 0b011: ("red", "ir")}  # 0b111: from the slots
_MAX_SLOTS = 4


class EmulatedMax30102(RegisterChip):
    """A MAX30102 at register level: FIFO with pointers and overflow counter, sample-rate
    timing with on-chip averaging, soft reset, status flags, die temperature."""

    regmap = MAX30102_REGISTERS

    def __init__(
        self,
        clock,
        source: Source,
        *,
        part_id: int = PART_ID,
        rev_id: int = 0x03,
        temperature_c: float = 31.25,
        reset_stuck: bool = False,
        interrupt=None,
    ) -> None:
        super().__init__(RegisterFile(self.regmap))
        self.interrupt = interrupt
        self.clock = clock
        self.source = source
        self.part_id = part_id
        self.rev_id = rev_id
        self.temperature_c = temperature_c
        #: Fault injection: the RESET bit never clears.
        self.reset_stuck = reset_stuck
        #: Fault injection: the sample clock stops, so the FIFO pointers stop moving while
        #: every register still answers.
        self.fifo_stuck = False
        names = {r.name for r in self.regmap}
        self.leds = tuple(led for led, reg in LED_PA_REGISTERS.items() if reg in names)
        self.samples_produced = 0  # FIFO samples made (after averaging), kept or not
        self.samples_lost = 0  # not stored (FIFO full) or overwritten (rollover)
        self._power_on()

    # -- state -----------------------------------------------------------------------------------
    def _power_on(self) -> None:
        self.regs.reset()
        self.regs.set("PART_ID", self.part_id)
        self.regs.set("REV_ID", self.rev_id)
        self.regs.set_field("INTR_STATUS_1", "PWR_RDY", 1)
        self._fifo = np.zeros((FIFO_DEPTH, _MAX_SLOTS), dtype=np.int64)
        self._level = 0
        self._t_start_ns: int | None = None
        self._emitted = 0
        self._timing = None
        self._temperature_due_ns: int | None = None

    # -- INT ---------------------------------------------------------------------------------------
    def _int_asserted(self) -> bool:
        pending_1 = self.regs.get("INTR_STATUS_1") & (self.regs.get("INTR_ENABLE_1") | 0x01)
        pending_2 = self.regs.get("INTR_STATUS_2") & self.regs.get("INTR_ENABLE_2")
        return bool(pending_1 or pending_2)

    def _next_event_ns(self) -> int | None:
        """When a flag that INT reports will next be set by time alone; None: never."""
        times = []
        enable_1 = self.regmap["INTR_ENABLE_1"].decode(self.regs.get("INTR_ENABLE_1"))
        if self._t_start_ns is not None:  # (a stuck FIFO too: it may come unstuck)
            rate_hz, averaging, _ = self._timing
            sample_ns = round(1e9 / rate_hz) * averaging
            needed = None
            if enable_1["PPG_RDY_EN"]:
                needed = 1
            if enable_1["A_FULL_EN"]:
                threshold = FIFO_DEPTH - self.regs.get_field("FIFO_CONFIG", "FIFO_A_FULL")
                more = max(1, threshold - self._level)
                needed = more if needed is None else min(needed, more)
            if needed is not None:
                times.append(self._t_start_ns + (self._emitted + needed) * sample_ns)
        if self._temperature_due_ns is not None and self.regs.get_field(
                "INTR_ENABLE_2", "DIE_TEMP_RDY_EN"):
            times.append(self._temperature_due_ns)
        return min(times) if times else None

    def _update_interrupt(self) -> None:
        """Put the flags on INT, and have the line wake the chip when they next change."""
        line = self.interrupt
        if line is None:
            return
        if self._int_asserted():
            line.assert_()
            line.wake_at(None, None)  # asserted until the host reads: nothing to wait for
            return
        line.release()
        line.wake_at(self._next_event_ns(), self._on_wake)

    def _on_wake(self) -> None:
        self._advance()
        self._update_interrupt()

    @property
    def fifo_level(self) -> int:
        """Unread samples in the FIFO, 0..32."""
        self._advance()
        return self._level

    def peek(self, name: str) -> int:
        """A register's value now, without the side effects of a bus read (status clearing,
        FIFO popping)."""
        self._advance()
        return self.regs.get(name)

    def slot_leds(self) -> tuple[str | None, ...]:
        """The LED of each FIFO slot in the current mode (None: a slot with no LED of this chip)."""
        mode = self.regs.get_field("MODE_CONFIG", "MODE")
        if mode in _MODE_LEDS:
            return _MODE_LEDS[mode]
        if mode != 0b111:
            return ()
        codes = [self.regs.get_field(f"MULTI_LED_CTRL{1 + n // 2}", f"SLOT{n + 1}")
                 for n in range(_MAX_SLOTS)]
        # Slots are used in order; the first disabled one ends the sequence.
        active = codes[: codes.index(0)] if 0 in codes else codes
        return tuple(_SLOT_LEDS.get(c) if _SLOT_LEDS.get(c) in self.leds else None for c in active)

    def _timing_key(self):
        """What sets the sample clock; None when the chip is not sampling."""
        slots = self.slot_leds()
        if self.regs.get_field("MODE_CONFIG", "SHDN") or not slots:
            return None
        rate_hz = SAMPLE_RATES_HZ[self.regs.get_field("SPO2_CONFIG", "SPO2_SR")]
        averaging = 1 << min(5, self.regs.get_field("FIFO_CONFIG", "SMP_AVE"))
        return rate_hz, averaging, slots

    def _retime(self, now_ns: int) -> None:
        key = self._timing_key()
        if key != self._timing:
            self._timing = key
            self._t_start_ns = None if key is None else now_ns
            self._emitted = 0

    # -- conversion ------------------------------------------------------------------------------
    def gain_counts_per_ma(self) -> float:
        """Counts per mA of LED current at intensity 1.0 with the current pulse width and range."""
        pw_us = PULSE_WIDTHS_US[self.regs.get_field("SPO2_CONFIG", "LED_PW")]
        range_na = ADC_RANGES_NA[self.regs.get_field("SPO2_CONFIG", "SPO2_ADC_RGE")]
        per_ma = REFERENCE_COUNTS / _REFERENCE_MA
        return per_ma * (pw_us / _REFERENCE_PW_US) * (_REFERENCE_RANGE_NA / range_na)

    def led_current_ma(self, led: str) -> float:
        return self.regs.get(LED_PA_REGISTERS[led]) * LED_CURRENT_STEP_MA

    def counts(self, led: str | None, intensity) -> np.ndarray:
        """FIFO counts the chip reports for ``intensity`` with the current settings.

        ``intensity`` of shape (n,) gives one FIFO sample each; shape (n, averaging) gives
        the on-chip mean of each row's raw samples.
        """
        x = np.asarray(intensity, dtype=np.float64)
        if led is None:
            return np.zeros(x.shape[:1] if x.ndim > 1 else x.shape, dtype=np.int64)
        full_scale = float(DATA_MASK)
        analog = np.clip(x * self.led_current_ma(led) * self.gain_counts_per_ma(), 0.0, full_scale)
        if analog.ndim > 1:
            analog = analog.mean(axis=-1)
        bits = ADC_RESOLUTION_BITS[self.regs.get_field("SPO2_CONFIG", "LED_PW")]
        low_bits = (1 << (18 - bits)) - 1
        return np.rint(analog).astype(np.int64) & (DATA_MASK & ~low_bits)

    def _intensity(self, t_s: np.ndarray, led: str) -> np.ndarray:
        values = self.source(t_s)
        if led not in values:
            raise KeyError(f"{self.regmap.chip} emulator: source gave no {led!r} intensity "
                           f"(keys: {sorted(values)})")
        return np.broadcast_to(np.asarray(values[led], dtype=np.float64), t_s.shape)

    # -- time --------------------------------------------------------------------------------------
    def _advance(self) -> None:
        now_ns = self.clock.now_ns()
        self._finish_temperature(now_ns)
        if self._t_start_ns is None:
            return
        rate_hz, averaging, slots = self._timing
        raw_period_ns = round(1e9 / rate_hz)
        total = (now_ns - self._t_start_ns) // (raw_period_ns * averaging)
        new = int(total - self._emitted)
        if new <= 0:
            return
        if self.fifo_stuck:
            self._emitted = int(total)
            return
        rollover = self.regs.get_field("FIFO_CONFIG", "FIFO_ROLLOVER_EN")
        free = FIFO_DEPTH - self._level
        # Only samples that will sit in the FIFO are computed: the first ones that fit when the
        # FIFO stops on full, the last 32 when it rolls over.
        keep = min(new, FIFO_DEPTH) if rollover else min(new, free)
        first = new - keep if rollover else 0
        j = self._emitted + first + np.arange(keep)
        raw_index = j[:, None] * averaging + np.arange(1, averaging + 1)[None, :]
        t_s = (self._t_start_ns + raw_index * raw_period_ns) / 1e9
        data = np.zeros((keep, _MAX_SLOTS), dtype=np.int64)
        for s, led in enumerate(slots):
            if led is not None and keep:
                data[:, s] = self.counts(led, self._intensity(t_s.ravel(), led).reshape(t_s.shape))
        wr = self.regs.get("FIFO_WR_PTR")
        self._fifo[(wr + first + np.arange(keep)) % FIFO_DEPTH] = data
        if rollover:
            lost = max(0, self._level + new - FIFO_DEPTH)
            self.regs.set("FIFO_WR_PTR", (wr + new) % FIFO_DEPTH)
            self.regs.set("FIFO_RD_PTR", (self.regs.get("FIFO_RD_PTR") + lost) % FIFO_DEPTH)
            self._level = min(FIFO_DEPTH, self._level + new)
        else:
            lost = new - keep
            self.regs.set("FIFO_WR_PTR", (wr + keep) % FIFO_DEPTH)
            self._level += keep
        if lost:
            self.regs.set("OVF_COUNTER", min(OVF_SATURATED, self.regs.get("OVF_COUNTER") + lost))
        self._emitted = int(total)
        self.samples_produced += new
        self.samples_lost += lost
        self.regs.set_field("INTR_STATUS_1", "PPG_RDY", 1)
        # A_FULL fires when FIFO_A_FULL free spaces remain.
        if self._level >= FIFO_DEPTH - self.regs.get_field("FIFO_CONFIG", "FIFO_A_FULL"):
            self.regs.set_field("INTR_STATUS_1", "A_FULL", 1)

    def _finish_temperature(self, now_ns: int) -> None:
        if self._temperature_due_ns is None or now_ns < self._temperature_due_ns:
            return
        self._temperature_due_ns = None
        sixteenths = round(self.temperature_c / TEMPERATURE_FRAC_C)
        whole, frac = divmod(sixteenths, 16)  # floor: TINT is signed, TFRAC adds upwards
        self.regs.set("DIE_TEMP_INT", whole & 0xFF)
        self.regs.set("DIE_TEMP_FRAC", frac)
        self.regs.set_field("DIE_TEMP_CONFIG", "TEMP_EN", 0)
        self.regs.set_field("INTR_STATUS_2", "DIE_TEMP_RDY", 1)

    # -- bus ---------------------------------------------------------------------------------------
    def read(self, register: int, length: int) -> list[int]:
        try:
            return self._read(register, length)
        finally:
            self._update_interrupt()

    def _read(self, register: int, length: int) -> list[int]:
        self._advance()
        out = []
        address = register & 0xFF
        fifo_byte = 0  # a new transaction starts at the first byte of the sample at RD_PTR
        fifo_address = self.regmap["FIFO_DATA"].address
        for _ in range(length):
            if address == fifo_address:
                # The register pointer does not move past FIFO_DATA: burst reads stream the FIFO.
                out.append(self._fifo_byte(fifo_byte))
                fifo_byte = (fifo_byte + 1) % self._sample_bytes()
            else:
                out.append(self.on_read(address))
                address = (address + 1) & 0xFF
        return out

    def write(self, register: int, data: Sequence[int]) -> None:
        self._advance()
        try:
            super().write(register, data)
        finally:
            self._update_interrupt()

    def _sample_bytes(self) -> int:
        return BYTES_PER_LED * max(1, len(self.slot_leds()))

    def _fifo_byte(self, index: int) -> int:
        rd = self.regs.get("FIFO_RD_PTR")
        value = int(self._fifo[rd, index // BYTES_PER_LED])
        byte = (value >> (8 * (BYTES_PER_LED - 1 - index % BYTES_PER_LED))) & 0xFF
        for flag in ("A_FULL", "PPG_RDY"):
            self.regs.set_field("INTR_STATUS_1", flag, 0)
        if index == self._sample_bytes() - 1 and self._level > 0:
            # Only a complete sample pops the FIFO; reading an empty FIFO repeats stale data.
            self.regs.set("FIFO_RD_PTR", (rd + 1) % FIFO_DEPTH)
            self.regs.set("OVF_COUNTER", 0)
            self._level -= 1
        return byte

    def on_read(self, address: int) -> int:
        value = super().on_read(address)
        reg = self.regmap.at(address)
        name = reg.name if reg is not None else None
        if name in ("INTR_STATUS_1", "INTR_STATUS_2"):
            self.regs.set(name, 0)  # interrupt flags clear on read
        elif name == "DIE_TEMP_FRAC":
            self.regs.set_field("INTR_STATUS_2", "DIE_TEMP_RDY", 0)
        return value

    def on_write(self, address: int, value: int) -> None:
        reg = self.regmap.at(address)
        name = reg.name if reg is not None else None
        now_ns = self.clock.now_ns()
        if name == "MODE_CONFIG" and reg.field("RESET").get(value):
            if self.reset_stuck:
                self.regs.set("MODE_CONFIG", value)
                return
            self._power_on()  # RESET restores every register and clears itself
            return
        if name in ("FIFO_WR_PTR", "FIFO_RD_PTR", "OVF_COUNTER"):
            self.regs.set(name, value & 0x1F)
            if name != "OVF_COUNTER":  # moving a pointer redefines what is unread
                wr, rd = self.regs.get("FIFO_WR_PTR"), self.regs.get("FIFO_RD_PTR")
                self._level = (wr - rd) % FIFO_DEPTH
            return
        if name == "DIE_TEMP_CONFIG" and reg.field("TEMP_EN").get(value):
            if self._temperature_due_ns is None:
                self._temperature_due_ns = now_ns + math.ceil(TEMPERATURE_CONVERSION_S * 1e9)
            self.regs.set(name, value)
            return
        super().on_write(address, value)
        self._retime(now_ns)


class EmulatedMax30101(EmulatedMax30102):
    """The MAX30101: adds the green LED (LED3_PA, slot code 0b011)."""

    regmap = MAX30101_REGISTERS
