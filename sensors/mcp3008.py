"""Microchip MCP3008: 10-bit, 8-channel SAR ADC on SPI, an alternative to the ADS1115 for the
GSR divider and the AD8232 ECG output. Section numbers refer to the MCP3004/3008 data sheet
(DS21295).

    adc = Mcp3008(spidev.SpiDev(0, 0), clock)
    adc.open()
    volts = adc.read_voltage(1)          # CH1 against VSS

Protocol (section 5.0, Figure 6-1): after chip select falls the chip waits for a start bit
(the first 1 on DIN), then reads SGL/DIFF and D2..D0, samples the input over the next clock,
drives a null bit (0) and shifts the 10-bit result out MSB first. With clocks to spare it
then repeats the result LSB first (B1..B9) and sends zeros. The usual framing puts the start
bit at the end of the first byte, so the result lands right-aligned in the last two:

    tx  0000 0001   S D2 D1 D0 x x x x   xxxx xxxx
    rx  ???? ????   ? ? ? ? ? 0 B9 B8    B7 .. B0

The chip has no ID register and SPI has no acknowledge, so ``open()`` checks plausibility
instead: it converts every channel with a 5-byte transfer and requires the null bit to be 0
and the LSB-first repeat to mirror the MSB-first result. A MISO line pulled up (0xFF bytes)
or floating fails that. A MISO line pulled down (the Raspberry Pi's default on GPIO9) reads
as a chip whose inputs are all at 0 V: ``open()`` refuses that too (every channel exactly 0
means nothing drives DOUT, or nothing is connected to any input) unless
``allow_all_zero=True``.
"""

from __future__ import annotations

import errno
from typing import Self

from sensors.bus import SPIDevice
from sensors.clock import Clock, MonotonicClock

CHANNELS = 8
RESOLUTION_BITS = 10
FULL_SCALE_CODES = 1 << RESOLUTION_BITS  # code = 1024 * VIN / VREF (section 4.1 / 5.0)
#: SPI modes 0,0 and 1,1 (section 6.1).
SPI_MODES = (0, 3)
#: fCLK limits (Electrical Characteristics): 3.6 MHz at VDD = 5 V, 1.35 MHz at 2.7 V.
MAX_SPEED_5V_HZ = 3_600_000
MAX_SPEED_2V7_HZ = 1_350_000
#: Below about 10 kHz the sample-and-hold capacitor leaks during the conversion (section 6.2).
MIN_SPEED_HZ = 10_000
#: Sample rate limits: 200 ksps at 5 V, 75 ksps at 2.7 V.
MAX_SAMPLE_RATE_5V_SPS = 200_000
#: Clocks in one conversion with the 3-byte framing.
CLOCKS_PER_CONVERSION = 24
#: How long every conversion may read exactly 0 before the chip's presence is checked.
SILENT_PROBE_S = 0.5
#: Differential codes (Table 5-2): D2..D0 -> (IN+, IN-).
DIFFERENTIAL_PAIRS = {0: (0, 1), 1: (1, 0), 2: (2, 3), 3: (3, 2),
                      4: (4, 5), 5: (5, 4), 6: (6, 7), 7: (7, 6)}


def max_speed_hz_for(vdd_v: float) -> int:
    """The fastest SPI clock at ``vdd_v``: the data sheet gives 1.35 MHz at 2.7 V and 3.6 MHz at
    5 V; in between this interpolates linearly (an assumption; 1.94 MHz at 3.3 V)."""
    if not 2.7 <= vdd_v <= 5.5:
        raise ValueError(f"MCP3008 VDD must be 2.7..5.5 V, got {vdd_v}")
    frac = min(1.0, (vdd_v - 2.7) / (5.0 - 2.7))
    return int(MAX_SPEED_2V7_HZ + frac * (MAX_SPEED_5V_HZ - MAX_SPEED_2V7_HZ))


def command(channel: int, *, differential: bool = False) -> list[int]:
    """The 3-byte transfer converting ``channel`` (or differential pair code ``channel``)."""
    if channel not in range(CHANNELS):
        kind = "differential pair code" if differential else "channel"
        raise ValueError(f"MCP3008 {kind} must be 0..7, got {channel!r}")
    single = 0 if differential else 1
    return [0x01, (single << 7) | (channel << 4), 0x00]


def decode(rx) -> tuple[int, int]:
    """(null bit, 10-bit code) from the bytes of a 3-byte conversion transfer."""
    return (rx[1] >> 2) & 1, ((rx[1] & 0x03) << 8) | rx[2]


class Mcp3008:
    """MCP3008 driver: single-ended or pseudo-differential conversions, in counts or volts."""

    chip = "MCP3008"

    def __init__(
        self,
        spi: SPIDevice,
        clock: Clock | None = None,
        *,
        v_ref_v: float = 3.3,
        max_speed_hz: int = 1_000_000,
        allow_all_zero: bool = False,
        bus_number: int | None = None,
        device: int | None = None,
    ) -> None:
        if not 0.25 <= v_ref_v <= 5.5:
            raise ValueError(f"MCP3008 v_ref_v must be 0.25..VDD (at most 5.5 V), got {v_ref_v}")
        if not MIN_SPEED_HZ <= max_speed_hz <= MAX_SPEED_5V_HZ:
            raise ValueError(f"MCP3008 max_speed_hz must be {MIN_SPEED_HZ}..{MAX_SPEED_5V_HZ} "
                             f"(3.6 MHz at VDD 5 V, 1.35 MHz at 2.7 V), got {max_speed_hz}")
        self.spi = spi
        self.clock = clock if clock is not None else MonotonicClock()
        self.v_ref_v = float(v_ref_v)
        self.max_speed_hz = int(max_speed_hz)
        self.allow_all_zero = allow_all_zero
        bus = getattr(spi, "bus", None) if bus_number is None else bus_number
        dev = getattr(spi, "device", None) if device is None else device
        self.where = f"{self.chip} on " + (f"spidev{bus}.{dev}" if bus is not None else "SPI")
        self._open = False
        self._zero_since_ns: int | None = None

    @property
    def data_rate_sps(self) -> float:
        """Upper bound on conversions per second: the SPI clock over 24 clocks, at most the
        data sheet's 200 ksps. Python's per-transfer overhead lowers the real figure."""
        return min(MAX_SAMPLE_RATE_5V_SPS, self.max_speed_hz / CLOCKS_PER_CONVERSION)

    @property
    def lsb_v(self) -> float:
        return self.v_ref_v / FULL_SCALE_CODES

    # -- life cycle ---------------------------------------------------------------------------
    def open(self) -> Self:
        """Set mode and clock, then check that something that behaves like an MCP3008 answers."""
        self.spi.mode = 0
        self.spi.max_speed_hz = self.max_speed_hz
        codes = [self._convert_checked(ch) for ch in range(CHANNELS)]
        if not self.allow_all_zero and not any(codes):
            raise OSError(errno.ENODEV, f"{self.where}: all {CHANNELS} channels read exactly 0: "
                          "MISO held low (no chip, or no power), or every input grounded")
        self._open = True
        self._zero_since_ns = None
        return self

    def _convert_checked(self, channel: int) -> int:
        # 5 bytes: the result MSB first, then (section 6.1, Figure 6-2) LSB first B1..B9, then 0s.
        rx = self.spi.xfer2(command(channel) + [0x00, 0x00])
        null, code = decode(rx)
        tail = (rx[3] << 8) | rx[4]
        mirrored = int(f"{code:010b}"[::-1][1:], 2)  # B1..B9 as sent, LSB first
        if null or (tail >> 7) != mirrored or tail & 0x7F:
            raise OSError(errno.ENODEV, f"{self.where}: no MCP3008 answering on CH{channel} "
                          f"(read {' '.join(f'{b:02x}' for b in rx)}: null bit {null}, "
                          "LSB-first repeat does not match)")
        return code

    def close(self) -> None:
        """The chip powers down between conversions by itself; closing only marks it closed."""
        self._open = False

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError(f"{self.where} is not open; call open() first")

    # -- conversions --------------------------------------------------------------------------
    def read_raw(self, channel: int, *, differential: bool = False) -> int:
        """One conversion, 0..1023. ``differential``: ``channel`` is the pair code of
        Table 5-2 (0: CH0-CH1, 1: CH1-CH0, ...); the result is 0 when IN- is above IN+."""
        self._require_open()
        rx = self.spi.xfer2(command(channel, differential=differential))
        null, code = decode(rx)
        if null:
            # A 1 where the chip always drives 0: DOUT is not driven (cable, power, CS).
            raise OSError(errno.EIO, f"{self.where}: null bit of CH{channel} reads 1 "
                          f"(rx {' '.join(f'{b:02x}' for b in rx)}): DOUT not driven")
        self._check_not_silent(code)
        return code

    def _check_not_silent(self, code: int) -> None:
        """With MISO pulled down (the Pi's default) an unplugged chip reads as 0 V on every
        input, which a single conversion cannot tell from a grounded one. After every
        conversion has read exactly 0 for ``SILENT_PROBE_S``, convert all eight channels with
        the LSB-first check, as ``open`` does: all zero means nothing is driving DOUT."""
        if code or self.allow_all_zero:
            self._zero_since_ns = None
            return
        now = self.clock.now_ns()
        if self._zero_since_ns is None:
            self._zero_since_ns = now
            return
        if (now - self._zero_since_ns) / 1e9 < SILENT_PROBE_S:
            return
        if not any(self._convert_checked(ch) for ch in range(CHANNELS)):
            raise OSError(errno.ENODEV, f"{self.where}: every conversion reads 0 for "
                          f"{(now - self._zero_since_ns) / 1e9:.1f} s and all {CHANNELS} channels "
                          "read 0: MISO held low (chip unplugged or unpowered)")
        self._zero_since_ns = None

    def read_voltage(self, channel: int, pga_v: float | None = None) -> float:
        """Volts at CHx against VSS. ``pga_v`` is accepted so the ADS1115's scanner can use this
        ADC unchanged; the MCP3008 has no programmable gain, so it is ignored (full scale is
        always ``v_ref_v``)."""
        return self.read_raw(channel) * self.lsb_v
