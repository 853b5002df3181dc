"""MAX30102 / MAX30101 pulse-oximetry and heart-rate sensor (PPG): register map and driver.

Section and table numbers refer to the Maxim data sheets MAX30102 (19-7740) and MAX30101
(19-7742). Both chips answer at 0x57 with PART_ID 0x15; the MAX30101 adds a green LED (LED3)
used in multi-LED mode.

    with Max30102(bus, clock=clock, sample_rate_hz=100) as ppg:
        time.sleep(ppg.poll_interval_s)
        red, ir = ppg.read()              # SampleBlock "ppg_red", "ppg_ir", unit "counts"

With ``int_pin`` (a GPIO number, or a ``sensors.gpio.DataReadyPin``) the chip's INT output -
open drain, active low - is used: the FIFO-almost-full interrupt (A_FULL) is enabled with the
threshold at ``INT_THRESHOLD_SAMPLES``, and ``data_ready`` counts its edges, so the host reads
when samples are waiting instead of on a timer. The timer stays, slower, as a safety net for a
lost edge; a pin that cannot be claimed leaves the driver polling, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Self

import numpy as np

from sensors.bus import SMBUS_BLOCK_MAX, ChipIdError, I2CBus
from sensors.clock import Clock, Deadline, MonotonicClock
from sensors.regmap import Field, I2CRegisters, Register, RegisterMap
from sensors.types import SampleBlock

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = 0x57
PART_ID = 0x15
FIFO_DEPTH = 32
#: OVF_COUNTER stops counting here: more samples may have been lost.
OVF_SATURATED = 0x1F
BYTES_PER_LED = 3
#: FIFO data is 18 bits, left-justified in 3 bytes; bits 23:18 are not data.
DATA_MASK = (1 << 18) - 1
#: The largest count a sample can read (18-bit ADC at every pulse width's full range).
FULL_SCALE_COUNTS = DATA_MASK

# Configuration tables: the register code is the index into the tuple.
SAMPLE_RATES_HZ = (50, 100, 200, 400, 800, 1000, 1600, 3200)  # SPO2_SR
PULSE_WIDTHS_US = (69, 118, 215, 411)  # LED_PW
ADC_RESOLUTION_BITS = (15, 16, 17, 18)  # set by LED_PW
ADC_RANGES_NA = (2048, 4096, 8192, 16384)  # SPO2_ADC_RGE, full scale
AVERAGING = (1, 2, 4, 8, 16, 32)  # SMP_AVE (codes 6 and 7 also mean 32)
LED_CURRENT_STEP_MA = 0.2  # LEDx_PA: 0x00 = 0 mA ... 0xFF = 51 mA
LED_CURRENT_MAX_MA = 51.0
DEFAULT_LED_CURRENT_MA = 7.0
#: Finger detection. With a finger on, tissue scatters a large share of the LED light back:
#: IR DC is typically 50k-200k of the 262k counts at the default settings; without one, only
#: ambient light and cover-glass crosstalk reach the photodiode (a few thousand counts). The
#: floor sits between, as a fraction of full scale so it holds for every ADC range.
FINGER_ON_MIN_FRACTION = 0.04
#: With INT wired, A_FULL asserts it when this many samples wait (FIFO_A_FULL holds the free
#: slots left then, 32 - 17 = 15, its largest value): a read every 170 ms at 100 Hz, and 150 ms
#: to spare before the FIFO fills.
INT_THRESHOLD_SAMPLES = 17
#: With INT wired, a read happens at the latest this many samples after the last one.
INT_FALLBACK_SAMPLES = 25


def finger_present(counts, full_scale_counts: int = FULL_SCALE_COUNTS) -> bool:
    """Whether an IR (or red) block's DC level says a finger is on the sensor."""
    x = np.asarray(counts, dtype=np.float64)
    return bool(x.size) and float(np.median(x)) >= FINGER_ON_MIN_FRACTION * full_scale_counts


#: Die temperature conversion time (Electrical Characteristics).
TEMPERATURE_CONVERSION_S = 0.029
TEMPERATURE_FRAC_C = 0.0625

MODE_CODES = {"hr": 0b010, "spo2": 0b011, "multi_led": 0b111}
#: LEDs in FIFO order for each mode: LED1 is red, LED2 infrared, LED3 green.
MODE_LEDS = {"hr": ("red",), "spo2": ("red", "ir"), "multi_led": ("red", "ir", "green")}
#: Multi-LED slot codes (MULTI_LED_CTRLx SLOTn).
SLOT_CODES = {"red": 0b001, "ir": 0b010, "green": 0b011}
LED_PA_REGISTERS = {"red": "LED1_PA", "ir": "LED2_PA", "green": "LED3_PA"}

# Tables 11 and 12: the longest LED pulse that still fits a sample period (SpO2 mode pulses two
# LEDs per sample, so 3200 Hz is not allowed there). The data sheet gives no table for
# multi-LED mode; the two-LED limits are used for it.
_SPO2_MAX_PW_US = {50: 411, 100: 411, 200: 411, 400: 411, 800: 215, 1000: 118, 1600: 69}
MAX_PULSE_WIDTH_US = {
    "hr": {50: 411, 100: 411, 200: 411, 400: 411, 800: 411, 1000: 411, 1600: 215, 3200: 69},
    "spo2": _SPO2_MAX_PW_US,
    "multi_led": _SPO2_MAX_PW_US,
}

_REGISTERS = (
    Register("INTR_STATUS_1", 0x00, access="r", fields=(
        Field("A_FULL", 7), Field("PPG_RDY", 6), Field("ALC_OVF", 5), Field("PWR_RDY", 0))),
    Register("INTR_STATUS_2", 0x01, access="r", fields=(Field("DIE_TEMP_RDY", 1),)),
    Register("INTR_ENABLE_1", 0x02, fields=(
        Field("A_FULL_EN", 7), Field("PPG_RDY_EN", 6), Field("ALC_OVF_EN", 5))),
    Register("INTR_ENABLE_2", 0x03, fields=(Field("DIE_TEMP_RDY_EN", 1),)),
    Register("FIFO_WR_PTR", 0x04, fields=(Field("FIFO_WR_PTR", 4, 0),)),
    Register("OVF_COUNTER", 0x05, fields=(Field("OVF_COUNTER", 4, 0),)),
    Register("FIFO_RD_PTR", 0x06, fields=(Field("FIFO_RD_PTR", 4, 0),)),
    Register("FIFO_DATA", 0x07, access="r"),
    Register("FIFO_CONFIG", 0x08, fields=(
        Field("SMP_AVE", 7, 5), Field("FIFO_ROLLOVER_EN", 4), Field("FIFO_A_FULL", 3, 0))),
    Register("MODE_CONFIG", 0x09, fields=(
        Field("SHDN", 7), Field("RESET", 6), Field("MODE", 2, 0))),
    Register("SPO2_CONFIG", 0x0A, fields=(
        Field("SPO2_ADC_RGE", 6, 5), Field("SPO2_SR", 4, 2), Field("LED_PW", 1, 0))),
    Register("LED1_PA", 0x0C),  # red
    Register("LED2_PA", 0x0D),  # infrared
    Register("LED3_PA", 0x0E),  # green, MAX30101 only
    Register("MULTI_LED_CTRL1", 0x11, fields=(Field("SLOT2", 6, 4), Field("SLOT1", 2, 0))),
    Register("MULTI_LED_CTRL2", 0x12, fields=(Field("SLOT4", 6, 4), Field("SLOT3", 2, 0))),
    Register("DIE_TEMP_INT", 0x1F, access="r"),  # two's complement, whole degrees C
    Register("DIE_TEMP_FRAC", 0x20, access="r", fields=(Field("TFRAC", 3, 0),)),
    Register("DIE_TEMP_CONFIG", 0x21, fields=(Field("TEMP_EN", 0),)),
    Register("REV_ID", 0xFE, access="r"),  # varies with the silicon revision
    Register("PART_ID", 0xFF, reset=PART_ID, access="r"),
)

MAX30102_REGISTERS = RegisterMap("MAX30102", (r for r in _REGISTERS if r.name != "LED3_PA"))
MAX30101_REGISTERS = RegisterMap("MAX30101", _REGISTERS)

_FIFO_POINTERS = MAX30101_REGISTERS["FIFO_WR_PTR"].address  # WR_PTR, OVF_COUNTER, RD_PTR
_FIFO_DATA = MAX30101_REGISTERS["FIFO_DATA"].address
_RESET_TIMEOUT_S = 0.1
_TEMPERATURE_TIMEOUT_S = 0.1


def _choices(values) -> str:
    return ", ".join(str(v) for v in values)


def decode_fifo(data: bytes | bytearray, leds: int) -> np.ndarray:
    """FIFO bytes -> counts, shape (samples, leds): 3 big-endian bytes per LED, 18 valid bits."""
    raw = np.frombuffer(bytes(data), dtype=np.uint8).astype(np.int64)
    raw = raw.reshape(-1, leds, BYTES_PER_LED)
    return ((raw[..., 0] << 16) | (raw[..., 1] << 8) | raw[..., 2]) & DATA_MASK


class Max30102:
    """MAX30102 red/IR PPG sensor on I2C. ``read()`` drains the FIFO into SampleBlocks.

    Settings are checked when the object is made, so a bad configuration fails before the bus
    is touched. ``led_current_ma`` maps LED names to mA; LEDs of the mode that it leaves out
    get 7 mA, LEDs the mode does not use are switched off.
    """

    chip = "MAX30102"
    regmap = MAX30102_REGISTERS
    modes = ("hr", "spo2")
    #: A block keeps following the previous one unless its timing is off by more than this.
    reanchor_periods = 2.0

    def __init__(
        self,
        bus: I2CBus,
        address: int = DEFAULT_ADDRESS,
        clock: Clock | None = None,
        *,
        mode: str = "spo2",
        sample_rate_hz: int = 100,
        sample_averaging: int = 1,
        pulse_width_us: int = 411,
        adc_range_na: int = 4096,
        led_current_ma: Mapping[str, float] | None = None,
        fifo_rollover: bool = False,
        bus_number: int | None = None,
        int_pin=None,
        pin_factory=None,
    ) -> None:
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"{self.chip}: address 0x{address:02x} is not a 7-bit I2C address")
        self._check_settings(mode, sample_rate_hz, sample_averaging, pulse_width_us, adc_range_na)
        self.bus = bus
        self.address = address
        self.clock = clock if clock is not None else MonotonicClock()
        self.bus_number = getattr(bus, "bus_number", None) if bus_number is None else bus_number
        self.mode = mode
        self.sample_rate_hz = sample_rate_hz
        self.sample_averaging = sample_averaging
        self.pulse_width_us = pulse_width_us
        self.adc_range_na = adc_range_na
        self.fifo_rollover = bool(fifo_rollover)
        self.leds = MODE_LEDS[mode]
        self.channels = tuple(f"ppg_{led}" for led in self.leds)
        self.led_current_ma = self._led_currents(led_current_ma)
        self.rate_hz = sample_rate_hz / sample_averaging
        self.dropped_samples = 0
        self.overflow_events = 0
        self.revision_id: int | None = None
        self._regs = I2CRegisters(bus, address, self.regmap)
        self._open = False
        self._next_t0_ns: int | None = None
        # Rollover off and OVF_COUNTER saturated: where the unknown-length gap starts.
        self._gap_start_ns: int | None = None
        self._int_spec, self._pin_factory = int_pin, pin_factory
        #: The INT line (``sensors.gpio.DataReadyPin``) while the driver is open with one.
        self.data_ready = None

    # -- settings ------------------------------------------------------------------------------
    def _check_settings(self, mode, rate_hz, averaging, pw_us, range_na) -> None:
        if mode not in self.modes:
            raise ValueError(
                f"{self.chip}: mode={mode!r} is not supported; allowed: {_choices(self.modes)}")
        for name, value, allowed in (
            ("sample_rate_hz", rate_hz, SAMPLE_RATES_HZ),
            ("sample_averaging", averaging, AVERAGING),
            ("pulse_width_us", pw_us, PULSE_WIDTHS_US),
            ("adc_range_na", range_na, ADC_RANGES_NA),
        ):
            if value not in allowed:
                raise ValueError(f"{self.chip}: {name}={value!r} is not one of {_choices(allowed)}")
        limit_us = MAX_PULSE_WIDTH_US[mode].get(rate_hz)
        if limit_us is None or pw_us > limit_us:
            widths = [w for w in PULSE_WIDTHS_US if limit_us is not None and w <= limit_us]
            rates = sorted(MAX_PULSE_WIDTH_US[mode])
            raise ValueError(
                f"{self.chip}: pulse_width_us={pw_us} does not fit sample_rate_hz={rate_hz} "
                f"in {mode} mode; allowed pulse widths at {rate_hz} Hz: "
                f"{_choices(widths) or 'none'} "
                f"(sample rates allowed in {mode} mode: {_choices(rates)})"
            )

    def _led_currents(self, requested: Mapping[str, float] | None) -> dict[str, float]:
        chip_leds = self._chip_leds()
        requested = dict(requested or {})
        for led, ma in requested.items():
            if led not in chip_leds:
                raise ValueError(f"{self.chip}: led_current_ma has unknown LED {led!r}; "
                                 f"allowed: {_choices(chip_leds)}")
            if not 0.0 <= float(ma) <= LED_CURRENT_MAX_MA:
                raise ValueError(
                    f"{self.chip}: led_current_ma[{led!r}]={ma} is outside "
                    f"0..{LED_CURRENT_MAX_MA} mA ({LED_CURRENT_STEP_MA} mA steps)"
                )
        return {
            led: float(requested.get(led, DEFAULT_LED_CURRENT_MA if led in self.leds else 0.0))
            for led in chip_leds
        }

    @classmethod
    def _chip_leds(cls) -> tuple[str, ...]:
        names = {r.name for r in cls.regmap}
        return tuple(led for led, reg in LED_PA_REGISTERS.items() if reg in names)

    @property
    def poll_interval_s(self) -> float:
        """Read at least this often: a third of the time the 32-sample FIFO takes to fill, or,
        with INT in use, a little after the interrupt should have come."""
        if self.data_ready is not None:
            return INT_FALLBACK_SAMPLES / self.rate_hz
        return FIFO_DEPTH / self.rate_hz / 3.0

    @property
    def is_open(self) -> bool:
        return self._open

    def _where(self) -> str:
        bus = "I2C" if self.bus_number is None else f"i2c-{self.bus_number}"
        return f"{self.chip} on {bus} at 0x{self.address:02x}"

    # -- life cycle ----------------------------------------------------------------------------
    def open(self) -> Self:
        """Check the chip, soft-reset it, configure it, and start sampling into an empty FIFO.

        On an open driver this re-initialises the chip (the recovery after bus errors)."""
        self._open = False
        # The ID is checked before anything is written, so a wrong chip at 0x57 is left alone.
        found = self._regs.read("PART_ID")
        if found != PART_ID:
            # Many cheap "MAX30102" boards carry the older MAX30100 (PART_ID 0x11).
            hint = " (a MAX30100?)" if found == 0x11 else ""
            raise ChipIdError(
                f"{self._where()}: PART_ID is 0x{found:02x}{hint}, expected 0x{PART_ID:02x}")
        self.revision_id = self._regs.read("REV_ID")
        self._reset()
        self._attach_int()
        self._configure()
        # Zeroing both pointers and the overflow counter empties the FIFO, dropping anything
        # sampled while the registers were being written.
        self.bus.write_i2c_block_data(self.address, _FIFO_POINTERS, [0, 0, 0])
        self._regs.read("INTR_STATUS_1")  # status bits clear on read (and INT is released)
        self._regs.read("INTR_STATUS_2")
        if self.data_ready is not None:
            self.data_ready.consume()  # edges from before the FIFO was emptied
        # The first sample lands one output period after sampling starts.
        self._next_t0_ns = self.clock.now_ns() + round(1e9 / self.rate_hz)
        self._gap_start_ns = None
        self._open = True
        return self

    def _reset(self) -> None:
        self._regs.write("MODE_CONFIG", self.regmap["MODE_CONFIG"].encode(RESET=1))
        deadline = Deadline(self.clock, _RESET_TIMEOUT_S)
        while self._regs.read_fields("MODE_CONFIG")["RESET"]:
            if deadline.expired():
                raise TimeoutError(
                    f"{self._where()}: RESET bit did not clear within {_RESET_TIMEOUT_S} s")
            self.clock.sleep(0.001)

    def _attach_int(self) -> None:
        if self.data_ready is not None or self._int_spec is None:
            return
        from sensors.gpio import DataReadyPin

        if isinstance(self._int_spec, DataReadyPin):
            self.data_ready = self._int_spec
            return
        try:
            self.data_ready = DataReadyPin(self._int_spec, pin_factory=self._pin_factory,
                                           pull_up=True, name=f"{self._where()} INT",
                                           clock=self.clock)
        except Exception as exc:  # noqa: BLE001 - gpiozero raises many kinds; polling still works
            log.warning("%s: INT on GPIO %s unavailable (%s: %s); polling the FIFO instead",
                        self._where(), self._int_spec, type(exc).__name__, exc)

    def _configure(self) -> None:
        rm = self.regmap
        use_int = self.data_ready is not None
        self._regs.write("FIFO_CONFIG", rm["FIFO_CONFIG"].encode(
            SMP_AVE=AVERAGING.index(self.sample_averaging),
            FIFO_ROLLOVER_EN=int(self.fifo_rollover),
            FIFO_A_FULL=FIFO_DEPTH - INT_THRESHOLD_SAMPLES if use_int else 0))
        self._regs.write("INTR_ENABLE_1", rm["INTR_ENABLE_1"].encode(A_FULL_EN=int(use_int)))
        self._regs.write("SPO2_CONFIG", rm["SPO2_CONFIG"].encode(
            SPO2_ADC_RGE=ADC_RANGES_NA.index(self.adc_range_na),
            SPO2_SR=SAMPLE_RATES_HZ.index(self.sample_rate_hz),
            LED_PW=PULSE_WIDTHS_US.index(self.pulse_width_us)))
        for led, ma in self.led_current_ma.items():
            self._regs.write(LED_PA_REGISTERS[led], min(0xFF, round(ma / LED_CURRENT_STEP_MA)))
        if self.mode == "multi_led":
            slots = [SLOT_CODES[led] for led in self.leds] + [0] * (4 - len(self.leds))
            self._regs.write("MULTI_LED_CTRL1",
                             rm["MULTI_LED_CTRL1"].encode(SLOT1=slots[0], SLOT2=slots[1]))
            self._regs.write("MULTI_LED_CTRL2",
                             rm["MULTI_LED_CTRL2"].encode(SLOT3=slots[2], SLOT4=slots[3]))
        self._regs.write("MODE_CONFIG", rm["MODE_CONFIG"].encode(MODE=MODE_CODES[self.mode]))

    def close(self) -> None:
        """Put the chip in shutdown (0.7 uA, registers kept). Closing twice is harmless."""
        if not self._open:
            return
        self._open = False
        try:
            self._regs.update("MODE_CONFIG", SHDN=1)
        finally:
            self._release_int()

    def _release_int(self) -> None:
        pin, self.data_ready = self.data_ready, None
        if pin is not None and pin is not self._int_spec:
            pin.close()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError(f"{self._where()} is not open; call open() first")

    # -- data ------------------------------------------------------------------------------------
    def read(self) -> list[SampleBlock]:
        """Drain the FIFO: one SampleBlock per LED channel, or [] when nothing is new.

        The newest sample is stamped with the read time and blocks follow each other without
        gaps until samples are lost. A FIFO that has just filled (32 samples, none lost yet)
        looks empty: equal pointers and a zero overflow counter, which is why
        ``poll_interval_s`` keeps reads well ahead of that.
        """
        self._require_open()
        pointers = self.bus.read_i2c_block_data(self.address, _FIFO_POINTERS, 3)
        wr, ovf, rd = (b & 0x1F for b in pointers)
        now_ns = self.clock.now_ns()
        # Equal pointers mean empty, unless samples were lost: then the FIFO is full.
        n = (wr - rd) % FIFO_DEPTH or (FIFO_DEPTH if ovf else 0)
        if n == 0:
            return []
        counts = decode_fifo(self._read_fifo_bytes(n), len(self.leds)).astype(np.float64)
        if self.data_ready is not None and self.data_ready.is_active:
            # Still low after the FIFO read: a flag reading FIFO_DATA does not clear holds it,
            # and no new edge would come. Reading the status releases it.
            self._regs.read("INTR_STATUS_1")
        t0_ns = self._stamp(n, ovf, now_ns)
        return [
            SampleBlock(channel, self.rate_hz, t0_ns, counts[:, i], "counts")
            for i, channel in enumerate(self.channels)
        ]

    def _read_fifo_bytes(self, n: int) -> bytearray:
        sample_bytes = BYTES_PER_LED * len(self.leds)
        # Whole samples per SMBus block: the FIFO read pointer only moves on a complete sample.
        chunk = (SMBUS_BLOCK_MAX // sample_bytes) * sample_bytes
        data = bytearray()
        remaining = n * sample_bytes
        while remaining:
            length = min(chunk, remaining)
            data += bytes(self.bus.read_i2c_block_data(self.address, _FIFO_DATA, length))
            remaining -= length
        return data

    def _stamp(self, n: int, ovf: int, now_ns: int) -> int:
        """t0 of a block of ``n`` samples read at ``now_ns`` with ``ovf`` samples lost."""
        period_ns = 1e9 / self.rate_hz
        newest_at_now = now_ns - round((n - 1) * period_ns)
        expected = self._next_t0_ns
        tolerance_ns = self.reanchor_periods * period_ns
        lost = ovf
        timed = True  # t0 comes from the read time rather than from the previous block
        if ovf and not self.fifo_rollover:
            # The FIFO stopped when it filled: these samples follow the previous block and the
            # lost ones come after them, so the next block starts after a gap.
            if expected is not None:
                t0, timed = expected, False
            else:
                t0 = newest_at_now - round(ovf * period_ns)
                timed = ovf < OVF_SATURATED
        elif ovf:
            # Rollover: the oldest samples were overwritten, the gap is before this block.
            t0 = newest_at_now
            if ovf == OVF_SATURATED and expected is not None:
                lost = max(ovf, round((t0 - expected) / period_ns))
        elif expected is not None and abs(newest_at_now - expected) <= tolerance_ns:
            t0, timed = expected, False
        else:
            t0 = newest_at_now
        if self._gap_start_ns is not None and timed:
            # OVF_COUNTER stopped at 31 last time; the time since the FIFO filled tells the rest.
            lost_by_time = round((t0 - self._gap_start_ns) / period_ns)
            self.dropped_samples += max(0, lost_by_time - OVF_SATURATED)
            self._gap_start_ns = None
        end_ns = t0 + round(n * period_ns)
        if ovf and not self.fifo_rollover:
            self._gap_start_ns = end_ns if ovf == OVF_SATURATED else None
            self._next_t0_ns = None
        else:
            self._next_t0_ns = end_ns
        if ovf:
            self.overflow_events += 1
            self.dropped_samples += lost
        return t0

    def read_temperature_c(self) -> float:
        """One die temperature conversion (about 29 ms), in degrees C with 0.0625 C steps."""
        self._require_open()
        deadline = Deadline(self.clock, _TEMPERATURE_TIMEOUT_S)
        self._regs.write("DIE_TEMP_CONFIG", self.regmap["DIE_TEMP_CONFIG"].encode(TEMP_EN=1))
        self.clock.sleep(TEMPERATURE_CONVERSION_S)
        while self._regs.read_fields("DIE_TEMP_CONFIG")["TEMP_EN"]:
            if deadline.expired():
                raise TimeoutError(
                    f"{self._where()}: die temperature not ready within {_TEMPERATURE_TIMEOUT_S} s")
            self.clock.sleep(0.001)
        t_int, t_frac = self.bus.read_i2c_block_data(
            self.address, self.regmap["DIE_TEMP_INT"].address, 2)
        whole = t_int - 0x100 if t_int & 0x80 else t_int
        return whole + (t_frac & 0x0F) * TEMPERATURE_FRAC_C


class Max30101(Max30102):
    """MAX30101: the MAX30102 plus a green LED (LED3) and multi-LED mode with slots red, IR,
    green (channels "ppg_red", "ppg_ir", "ppg_green")."""

    chip = "MAX30101"
    regmap = MAX30101_REGISTERS
    modes = ("hr", "spo2", "multi_led")
