"""TI ADS1115 16-bit delta-sigma ADC (I2C 0x48-0x4B), and the channel scanner on top of it.

The ADS1115 digitises the analog front-ends: skin conductance (``sensors.frontends.GsrDivider``)
and the AD8232 ECG (``sensors.frontends.Ad8232``). It has one converter behind a multiplexer,
so channels are converted one at a time: ``AnalogSampler`` runs single-shot conversions on a
schedule, each with its own input and gain. Section names refer to the ADS111x data sheet
(SBAS444).

    adc = Ads1115(bus, 0x48, clock, data_rate_sps=860)
    adc.open()
    volts = adc.read_voltage(ain=0, pga_v=0.512)

With ``alert_pin`` (a GPIO number, or a ``sensors.gpio.DataReadyPin``) the ALERT/RDY output is
set up as conversion-ready ("Conversion Ready Pin") and a single-shot read waits for its edge
instead of polling the OS bit over I2C: one transaction less per sample. A missing edge is
checked against the OS bit once (counted in ``missed_ready_edges``) before it is a timeout; a
pin that cannot be claimed leaves the driver polling, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np

from sensors.bus import ChipIdError, I2CBus, describe_i2c_bus
from sensors.clock import Clock, Deadline, MonotonicClock
from sensors.regmap import Field, I2CRegisters, Register, RegisterMap
from sensors.types import SampleBlock

log = logging.getLogger(__name__)

# "Register Map": a pointer byte selects one of four 16-bit registers, sent MSB first.
ADS1115_REGISTERS = RegisterMap("ADS1115", [
    Register("CONVERSION", 0, reset=0x0000, access="r", size=2),
    Register("CONFIG", 1, reset=0x8583, size=2, fields=(
        Field("OS", 15), Field("MUX", 14, 12), Field("PGA", 11, 9), Field("MODE", 8),
        Field("DR", 7, 5), Field("COMP_MODE", 4), Field("COMP_POL", 3), Field("COMP_LAT", 2),
        Field("COMP_QUE", 1, 0))),
    Register("LO_THRESH", 2, reset=0x8000, size=2),
    Register("HI_THRESH", 3, reset=0x7FFF, size=2),
], byteorder="big")

#: PGA code -> full scale in volts ("Full-Scale Range"); codes 6 and 7 also mean 0.256 V.
PGA_FULL_SCALE_V = {0: 6.144, 1: 4.096, 2: 2.048, 3: 1.024, 4: 0.512, 5: 0.256, 6: 0.256, 7: 0.256}
#: DR code -> samples per second ("Config Register").
DATA_RATES_SPS = (8, 16, 32, 64, 128, 250, 475, 860)
#: MUX codes 4..7: AIN0..AIN3 against GND (single-ended).
MUX_SINGLE_ENDED = 4
COMP_QUE_DISABLED = 0b11
#: The internal oscillator is within 10 % (data rate variation, "Electrical Characteristics"),
#: so a conversion may take that much longer.
RATE_TOLERANCE = 0.10


def pga_code(pga_v: float) -> int:
    for code in range(6):
        if abs(PGA_FULL_SCALE_V[code] - pga_v) < 1e-9:
            return code
    choices = ", ".join(f"{PGA_FULL_SCALE_V[c]:g}" for c in range(6))
    raise ValueError(f"pga_v must be one of {choices} (ADS1115 PGA full scale in V), got {pga_v}")


def dr_code(data_rate_sps: int) -> int:
    if data_rate_sps not in DATA_RATES_SPS:
        raise ValueError(f"data_rate_sps must be one of {DATA_RATES_SPS}, got {data_rate_sps}")
    return DATA_RATES_SPS.index(data_rate_sps)


def _check_ain(ain: int) -> int:
    if ain not in (0, 1, 2, 3):
        raise ValueError(f"ain must be 0..3 (ADS1115 input AINx), got {ain}")
    return ain


class Ads1115:
    """ADS1115 driver: single-shot or continuous conversions of AINx against GND."""

    chip = "ADS1115"

    def __init__(
        self,
        bus: I2CBus,
        address: int = 0x48,
        clock: Clock | None = None,
        *,
        data_rate_sps: int = 860,
        bus_number: int | None = None,
        alert_pin=None,
        pin_factory=None,
    ) -> None:
        if not 0x48 <= address <= 0x4B:
            raise ValueError(f"ADS1115 address must be 0x48..0x4B (ADDR pin), got 0x{address:02x}")
        self._dr = dr_code(data_rate_sps)
        self.bus = bus
        self.address = address
        self.clock = clock if clock is not None else MonotonicClock()
        self.data_rate_sps = data_rate_sps
        self.regs = I2CRegisters(bus, address, ADS1115_REGISTERS)
        self.where = f"{self.chip} on {describe_i2c_bus(bus, bus_number)} at 0x{address:02x}"
        self._comp_que = COMP_QUE_DISABLED
        self._continuous_fs_v: float | None = None
        self._continuous_first_ns = 0
        self._open = False
        self._alert_spec, self._pin_factory = alert_pin, pin_factory
        #: ALERT/RDY (``sensors.gpio.DataReadyPin``) while the driver is open with one.
        self.ready_pin = None
        self.missed_ready_edges = 0

    @property
    def conversion_s(self) -> float:
        return 1.0 / self.data_rate_sps

    # -- life cycle ---------------------------------------------------------------------------
    def open(self) -> None:
        """Check that an ADS1115 answers, and leave it powered down (single-shot mode)."""
        try:
            self._identify()
            self.regs.write("CONFIG", self._config(0, 2.048, single_shot=True, start=False))
        except OSError as exc:
            raise OSError(exc.errno, f"{self.where}: {exc.strerror or exc}") from exc
        self._comp_que = COMP_QUE_DISABLED
        self._continuous_fs_v = None
        self._open = True
        self._attach_ready_pin()
        if self.ready_pin is not None:
            try:
                self.enable_conversion_ready_pin()
            except OSError as exc:
                self._open = False
                raise OSError(exc.errno, f"{self.where}: {exc.strerror or exc}") from exc

    def _attach_ready_pin(self) -> None:
        if self.ready_pin is not None or self._alert_spec is None:
            return
        from sensors.gpio import DataReadyPin

        if isinstance(self._alert_spec, DataReadyPin):
            self.ready_pin = self._alert_spec
            return
        try:
            self.ready_pin = DataReadyPin(self._alert_spec, pin_factory=self._pin_factory,
                                          pull_up=True, name=f"{self.where} ALERT/RDY",
                                          clock=self.clock)
        except Exception as exc:  # noqa: BLE001 - gpiozero raises many kinds; polling still works
            log.warning("%s: ALERT/RDY on GPIO %s unavailable (%s: %s); polling the OS bit",
                        self.where, self._alert_spec, type(exc).__name__, exc)

    def _identify(self) -> None:
        # The ADS1115 has no ID register. What sets it apart from other chips that may sit at
        # 0x48-0x4B (temperature sensors such as the TMP102/LM75, other ADCs) is four
        # pointer-addressed 16-bit registers of which the two thresholds hold any 16-bit value:
        # write two different patterns, read them back, then restore the reset values. (An
        # ADS1015 would pass as well; it has the same registers with a 12-bit result.)
        patterns = {"LO_THRESH": 0x1234, "HI_THRESH": 0x7ED5}
        for name, value in patterns.items():
            self.regs.write(name, value)
        found = {name: self.regs.read(name) for name in patterns}
        for name in patterns:
            self.regs.write(name, ADS1115_REGISTERS[name].reset)
        if found != patterns:
            shown = ", ".join(f"{n} 0x{found[n]:04x} (wrote 0x{patterns[n]:04x})" for n in patterns)
            raise ChipIdError(
                f"{self.where}: does not look like an ADS1115 (it has no ID register; its "
                f"threshold registers should read back what was written): {shown}"
            )

    def close(self) -> None:
        """Stop continuous conversions (power-down, about 0.5 uA); safe to call twice."""
        if not self._open:
            return
        self._open = False
        self._continuous_fs_v = None
        pin, self.ready_pin = self.ready_pin, None
        try:
            self.regs.write("CONFIG", self._config(0, 2.048, single_shot=True, start=False))
        finally:
            if pin is not None and pin is not self._alert_spec:
                pin.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError(f"{self.where}: not open (call open() first)")

    # -- conversions --------------------------------------------------------------------------
    def _config(self, ain: int, pga_v: float, *, single_shot: bool, start: bool) -> int:
        return ADS1115_REGISTERS["CONFIG"].encode(
            OS=int(start), MUX=MUX_SINGLE_ENDED + _check_ain(ain), PGA=pga_code(pga_v),
            MODE=int(single_shot), DR=self._dr, COMP_MODE=0, COMP_POL=0, COMP_LAT=0,
            COMP_QUE=self._comp_que,
        )

    @staticmethod
    def code_to_volts(code: int, pga_v: float) -> float:
        """Two's complement result to volts: full scale is 32768 codes ("Full-Scale Range")."""
        return code * (pga_v / 32768.0)

    def _read_code(self) -> int:
        raw = self.regs.read("CONVERSION")
        return raw - 0x10000 if raw & 0x8000 else raw

    def read_voltage(self, ain: int, pga_v: float) -> float:
        """One single-shot conversion of AINx against GND, in volts at the pin."""
        self._require_open()
        config = self._config(ain, pga_v, single_shot=True, start=True)
        self._continuous_fs_v = None
        pin = self.ready_pin if self._comp_que != COMP_QUE_DISABLED else None
        if pin is not None:
            pin.consume()  # edges of earlier conversions
        self.regs.write("CONFIG", config)
        if pin is not None:
            # RDY goes low when the conversion is done; the oscillator may be 10 % slow.
            if pin.wait(self.conversion_s * (1 + 2 * RATE_TOLERANCE) + 0.005):
                return self.code_to_volts(self._read_code(), pga_v)
            self.missed_ready_edges += 1  # the OS bit tells whether only the edge was lost
        else:
            self.clock.sleep(self.conversion_s)
        # "Single-Shot Mode" / Config Register: OS reads 0 while converting, 1 once ready.
        deadline = Deadline(self.clock, 2 * self.conversion_s + 0.01)
        os_mask = ADS1115_REGISTERS["CONFIG"].field("OS").mask
        while not self.regs.read("CONFIG") & os_mask:
            if deadline.expired():
                waited_s = self.conversion_s + deadline.seconds
                raise TimeoutError(
                    f"{self.where}: conversion of AIN{ain} not ready {waited_s * 1e3:.1f} ms "
                    f"after it started (expected {self.conversion_s * 1e3:.2f} ms at "
                    f"{self.data_rate_sps} SPS)"
                )
            self.clock.sleep(self.conversion_s * RATE_TOLERANCE / 2)
        return self.code_to_volts(self._read_code(), pga_v)

    def start_continuous(self, ain: int, pga_v: float) -> None:
        """Convert AINx continuously at the data rate; read with ``read_latest_voltage``."""
        self._require_open()
        self.regs.write("CONFIG", self._config(ain, pga_v, single_shot=False, start=False))
        self._continuous_fs_v = pga_v
        self._continuous_first_ns = self.clock.now_ns() + round(
            self.conversion_s * (1 + RATE_TOLERANCE) * 1e9)

    def read_latest_voltage(self) -> float:
        """The last completed continuous conversion; waits for the first one after a start."""
        self._require_open()
        if self._continuous_fs_v is None:
            raise RuntimeError(
                f"{self.where}: not converting continuously (call start_continuous first)")
        wait_s = (self._continuous_first_ns - self.clock.now_ns()) / 1e9
        if wait_s > 0:
            self.clock.sleep(wait_s)
        return self.code_to_volts(self._read_code(), self._continuous_fs_v)

    def enable_conversion_ready_pin(self) -> None:
        """Make ALERT/RDY signal conversion-ready ("Conversion Ready Pin"): HI_THRESH MSB 1,
        LO_THRESH MSB 0 and the comparator enabled (COMP_QUE 00: assert after one conversion).

        Active low, non-latching; in continuous mode the pin pulses after each conversion,
        in single-shot mode it goes low when the conversion is done. Takes effect with the
        next conversion started.
        """
        self._require_open()
        self.regs.write("HI_THRESH", 0x8000)
        self.regs.write("LO_THRESH", 0x0000)
        self._comp_que = 0b00


@dataclass(frozen=True)
class AnalogChannel:
    """One scanned input: ``to_unit`` maps volts at AINx (ndarray) to ``unit``."""

    name: str
    ain: int
    rate_hz: float
    pga_v: float
    to_unit: Callable[[np.ndarray], np.ndarray]
    unit: str
    #: Inputs of the ADC scanned: 4 on the ADS1115, 8 on an MCP3008 driven by the same sampler.
    inputs: int = 4

    def __post_init__(self) -> None:
        if self.inputs == 4:
            _check_ain(self.ain)
        elif self.ain not in range(self.inputs):
            raise ValueError(f"channel {self.name!r}: ain must be 0..{self.inputs - 1}, got {self.ain}")
        pga_code(self.pga_v)
        if not self.rate_hz > 0:
            raise ValueError(f"channel {self.name!r}: rate_hz must be > 0, got {self.rate_hz}")


class _Lane:
    """The schedule and the pending samples of one channel."""

    def __init__(self, channel: AnalogChannel, start_ns: int) -> None:
        self.channel = channel
        self.period_ns = 1e9 / channel.rate_hz
        self.anchor_ns = start_ns
        self.k = 0
        self.block_t0_ns = start_ns
        self.volts: list[float] = []

    @property
    def due_ns(self) -> int:
        return self.anchor_ns + round(self.k * self.period_ns)


class AnalogSampler:
    """Scans channels of one ADS1115 on a schedule, single-shot per sample.

    Sample ``k`` of a channel is due at ``anchor + k / rate_hz`` and is stamped with that time
    (the conversion itself starts within a few conversion times of it). ``poll()`` converts
    what is due, in time order across channels, and returns a channel's samples as a
    SampleBlock once it holds ``block_s`` of them.

    Software-timed sampling on a Linux board is late now and then (another thread holds the
    GIL, the kernel schedules something else). A conversion up to ``max_late_s`` behind its
    slot is still taken and stamped with the slot: the series stays contiguous at the cost of
    that much timing jitter, and the sampler catches up at the ADC's full rate. Further behind
    (a stalled thread, a bus retry) it counts the skipped samples in ``missed_samples[name]``,
    closes the block and restarts that channel's schedule now.
    """

    BEHIND_PERIODS = 2

    def __init__(self, adc: Ads1115, channels: Sequence[AnalogChannel], clock: Clock, *,
                 block_s: float = 0.2, max_late_s: float = 0.25) -> None:
        channels = list(channels)
        if not channels:
            raise ValueError("AnalogSampler needs at least one AnalogChannel")
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique, got {names}")
        load = sum(c.rate_hz for c in channels) / adc.data_rate_sps
        if load > 1.0:
            parts = " + ".join(f"{c.name} {c.rate_hz:g} Hz" for c in channels)
            raise ValueError(f"{parts} needs more than the ADC's {adc.data_rate_sps} conversions/s")
        self.adc = adc
        self.clock = clock
        self.block_s = block_s
        self.max_late_ns = round(max_late_s * 1e9)
        self.channels = channels
        self.missed_samples = {c.name: 0 for c in channels}
        start_ns = clock.now_ns()
        self._lanes = [_Lane(c, start_ns) for c in channels]

    def next_due_ns(self) -> int:
        return min(lane.due_ns for lane in self._lanes)

    def poll(self) -> list[SampleBlock]:
        """Convert every sample due by now; return the blocks that are complete."""
        t_poll_ns = self.clock.now_ns()
        out: list[SampleBlock] = []
        while True:
            lane = min(self._lanes, key=lambda ln: ln.due_ns)
            if lane.due_ns > t_poll_ns:
                break
            now_ns = self.clock.now_ns()
            late = now_ns - lane.due_ns
            if late > max(self.BEHIND_PERIODS * lane.period_ns, self.max_late_ns):
                self.missed_samples[lane.channel.name] += int(late // lane.period_ns)
                out.extend(self._take(lane))
                lane.anchor_ns, lane.k = now_ns, 0
                lane.block_t0_ns = now_ns
            c = lane.channel
            lane.volts.append(self.adc.read_voltage(c.ain, c.pga_v))
            lane.k += 1
            if len(lane.volts) >= max(1, round(self.block_s * c.rate_hz)):
                out.extend(self._take(lane))
        return out

    def flush(self) -> list[SampleBlock]:
        """The samples not yet returned, as (short) blocks."""
        out: list[SampleBlock] = []
        for lane in self._lanes:
            out.extend(self._take(lane))
        return out

    @staticmethod
    def _take(lane: _Lane) -> list[SampleBlock]:
        if not lane.volts:
            return []
        c = lane.channel
        values = np.asarray(c.to_unit(np.asarray(lane.volts, dtype=np.float64)), dtype=np.float64)
        block = SampleBlock(c.name, c.rate_hz, lane.block_t0_ns, values, c.unit)
        lane.volts = []
        lane.block_t0_ns = lane.due_ns
        return [block]
