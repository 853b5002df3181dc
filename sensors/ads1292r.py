"""TI ADS1292R: 2-channel, 24-bit ECG front-end with respiration (SPI): register map and driver.

Section names refer to the ADS129x data sheet (SBAS502). On the ADS1292R the respiration
demodulator sits in front of channel 1 (RESP1.RESP_DEMOD_EN1), so CH1 carries respiration and
CH2 the ECG lead (LA - RA).

    with Ads1292r(spidev.SpiDev(0, 1), clock, data_rate_sps=250, drdy=25) as ecg:
        blocks = ecg.read()          # SampleBlock "ecg" (mV at the electrodes), "resp" (mV)
        ecg.lead_off                 # {"la": False, "ra": True, "rl": False}

Reading: the chip has no FIFO. Each conversion puts one 72-bit frame (status, CH1, CH2; "Data
Retrieval") in its output register, pulses DRDY low, and overwrites the frame before it. In
RDATAC mode the host just clocks 9 bytes out. With a DRDY pin (GPIO number, gpiozero device or
``DataReadyPin``) and ``read_on_edge`` the frame is read in gpiozero's edge callback and
buffered for ``read()``; edges the callback could not keep up with are lost frames
(``dropped_samples``), and no edge for ``drdy_timeout_s`` raises ``OSError(ETIMEDOUT)``.
Without ``read_on_edge``, ``read()`` takes the one frame waiting and counts the other edges as
lost. Without a pin the driver paces itself by the data rate from START, reading when a
conversion is due and counting skipped ones; nothing in a frame tells whether it is new, so
with the chip's oscillator a little off the host clock a frame is now and then read twice or
skipped - use the pin where that matters. A status word without the 1100 preamble (MISO
stuck: no chip, or frame sync lost) raises ``OSError(EIO)``; re-opening checks the ID again.
"""

from __future__ import annotations

import errno
import itertools
import threading
from typing import Self

import numpy as np

from sensors.bus import ChipIdError, SPIDevice
from sensors.clock import Clock, MonotonicClock
from sensors.regmap import Field, Register, RegisterMap
from sensors.types import SampleBlock

CHIP_ID = 0x73
#: ID register values of the family (ID Control Register): bits 7:5 revision, 1:0 channels.
KNOWN_IDS = {0x50: "ADS1191", 0x51: "ADS1192", 0x52: "ADS1291", 0x53: "ADS1292", 0x73: "ADS1292R"}
DATA_RATES_SPS = (125, 250, 500, 1000, 2000, 4000, 8000)  # CONFIG1.DR code = index
GAINS = (6, 1, 2, 3, 4, 8, 12)  # CHnSET.GAIN code = index
VREFS_V = (2.42, 4.033)  # CONFIG2.VREF_4V = index
SPI_MODE = 1  # CPOL 0, CPHA 1 ("Serial Interface")
MAX_SCLK_HZ = 20_000_000  # tSCLK >= 50 ns
#: The internal oscillator. Bytes of a multi-byte command must be 4 tCLK apart (tSDECODE):
#: back to back in one transfer, 8 SCLK periods must last that long, so SCLK <= 1.024 MHz.
CLK_HZ = 512_000
COMMAND_SCLK_MAX_HZ = 8 * CLK_HZ // 4
FRAME_BYTES = 9  # 24 status bits + 2 x 24 data bits
STATUS_PREAMBLE = 0b1100
CODE_MAX = (1 << 23) - 1
#: After a RESET command, wait 18 tCLK before the next command.
RESET_WAIT_S = 18 / CLK_HZ
#: RESP1.RESP_PH: the demodulation phase lag (11.25 deg steps at 32 kHz); 112.5 deg follows
#: TI's evaluation setting and compensates typical electrode-cable delay - tune per board.
RESP_PHASE_CODE = 0b1010


class Opcode:
    """SPI commands ("SPI Command Definitions"); RREG/WREG are OR-ed with the address and
    followed by (register count - 1)."""

    WAKEUP = 0x02
    STANDBY = 0x04
    RESET = 0x06
    START = 0x08
    STOP = 0x0A
    RDATAC = 0x10
    SDATAC = 0x11
    RDATA = 0x12
    OFFSETCAL = 0x1A
    RREG = 0x20
    WREG = 0x40


_CHSET_FIELDS = (Field("PD", 7), Field("GAIN", 6, 4), Field("MUX", 3, 0))
ADS1292R_REGISTERS = RegisterMap("ADS1292R", [
    Register("ID", 0x00, reset=CHIP_ID, access="r",
             fields=(Field("REV_ID", 7, 5), Field("DEV_ID", 1, 0))),
    Register("CONFIG1", 0x01, reset=0x02, fields=(Field("SINGLE_SHOT", 7), Field("DR", 2, 0))),
    Register("CONFIG2", 0x02, reset=0x80, fields=(
        Field("PDB_LOFF_COMP", 6), Field("PDB_REFBUF", 5), Field("VREF_4V", 4),
        Field("CLK_EN", 3), Field("INT_TEST", 1), Field("TEST_FREQ", 0))),
    Register("LOFF", 0x03, reset=0x10, fields=(
        Field("COMP_TH", 7, 5), Field("ILEAD_OFF", 3, 2), Field("FLEAD_OFF", 0))),
    Register("CH1SET", 0x04, reset=0x00, fields=_CHSET_FIELDS),
    Register("CH2SET", 0x05, reset=0x00, fields=_CHSET_FIELDS),
    Register("RLD_SENS", 0x06, reset=0x00, fields=(
        Field("CHOP", 7, 6), Field("PDB_RLD", 5), Field("RLD_LOFF_SENS", 4), Field("RLD2N", 3),
        Field("RLD2P", 2), Field("RLD1N", 1), Field("RLD1P", 0))),
    Register("LOFF_SENS", 0x07, reset=0x00, fields=(
        Field("FLIP2", 5), Field("FLIP1", 4), Field("LOFF2N", 3), Field("LOFF2P", 2),
        Field("LOFF1N", 1), Field("LOFF1P", 0))),
    # Status bits are read-only; CLK_DIV (bit 6) is writable and must be 0 at fCLK = 512 kHz.
    Register("LOFF_STAT", 0x08, reset=0x00, fields=(
        Field("CLK_DIV", 6), Field("RLD_STAT", 4), Field("IN2N_OFF", 3), Field("IN2P_OFF", 2),
        Field("IN1N_OFF", 1), Field("IN1P_OFF", 0))),
    # Bit 1 must be written 1.
    Register("RESP1", 0x09, reset=0x00, fields=(
        Field("RESP_DEMOD_EN1", 7), Field("RESP_MOD_EN", 6), Field("RESP_PH", 5, 2),
        Field("RESP_CTRL", 0))),
    Register("RESP2", 0x0A, reset=0x02, fields=(
        Field("CALIB_ON", 7), Field("RESP_FREQ", 2), Field("RLDREF_INT", 1))),
    Register("GPIO", 0x0B, reset=0x0C, fields=(Field("GPIOC", 3, 2), Field("GPIOD", 1, 0))),
])
MUX_NORMAL, MUX_SHORTED, MUX_TEST = 0b0000, 0b0001, 0b0101
#: LOFF_STAT[4:0] as they appear in the status word.
LOFF_STATUS_MASK = 0x1F
#: Standard wiring of a 3-electrode ADS1292R board: LA on IN2P, RA on IN2N, RL on the RLD.
ELECTRODE_STATUS_BITS = {"la": "IN2P_OFF", "ra": "IN2N_OFF", "rl": "RLD_STAT"}


def lsb_v(gain: int, vref_v: float = VREFS_V[0]) -> float:
    """Weight of one code at the input ("Data Format"): VREF / (gain * (2^23 - 1))."""
    return vref_v / (gain * CODE_MAX)


def decode_frames(data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """9-byte frames -> (24-bit status words, CH1 codes, CH2 codes), codes sign-extended."""
    if isinstance(data, (bytes, bytearray)):
        data = np.frombuffer(data, dtype=np.uint8)
    raw = np.asarray(data, dtype=np.int64).reshape(-1, 3, 3)
    words = (raw[..., 0] << 16) | (raw[..., 1] << 8) | raw[..., 2]
    codes = words[:, 1:] - ((words[:, 1:] & 0x800000) << 1)
    return words[:, 0], codes[:, 0], codes[:, 1]


def _code(value, allowed, name) -> int:
    if value not in allowed:
        raise ValueError(f"ADS1292R {name} must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return allowed.index(value)


class Ads1292r:
    """ADS1292R driver: ECG on CH2, respiration on CH1 (optional), streamed in RDATAC mode."""

    chip = "ADS1292R"
    regmap = ADS1292R_REGISTERS
    #: How much read_on_edge buffers before the oldest frames are dropped (and counted).
    buffer_s = 10.0
    reanchor_periods = 2.0
    #: ... or this many seconds: a DRDY callback may run tens of ms late on a busy host, while
    #: frames that were not lost follow each other exactly; only oscillator drift builds up.
    reanchor_s = 0.05
    #: With a DRDY pin, no edge for this long means the chip stopped (unplugged, reset).
    drdy_timeout_s = 0.5

    def __init__(
        self,
        spi: SPIDevice,
        clock: Clock | None = None,
        *,
        data_rate_sps: int = 250,
        ecg_gain: int = 6,
        respiration: bool = True,
        resp_gain: int = 1,
        vref_v: float = 2.42,
        drdy=None,
        pin_factory=None,
        read_on_edge: bool = True,
        max_speed_hz: int = 1_000_000,
        bus_number: int | None = None,
        device: int | None = None,
    ) -> None:
        self._dr = _code(data_rate_sps, DATA_RATES_SPS, "data_rate_sps")
        self._ecg_gain = _code(ecg_gain, GAINS, "ecg_gain")
        self._resp_gain = _code(resp_gain, GAINS, "resp_gain")
        self._vref = _code(vref_v, VREFS_V, "vref_v (V)")
        if not 1 <= max_speed_hz <= COMMAND_SCLK_MAX_HZ:
            raise ValueError(f"ADS1292R max_speed_hz must be <= {COMMAND_SCLK_MAX_HZ} (command "
                             f"bytes 4 tCLK apart at the 512 kHz clock), got {max_speed_hz}")
        self.spi = spi
        self.clock = clock if clock is not None else MonotonicClock()
        self.data_rate_sps, self.vref_v = data_rate_sps, vref_v
        self.ecg_gain, self.resp_gain, self.respiration = ecg_gain, resp_gain, bool(respiration)
        self.max_speed_hz, self.read_on_edge = max_speed_hz, read_on_edge
        self.channels = ("ecg", "resp") if self.respiration else ("ecg",)
        bus = getattr(spi, "bus", None) if bus_number is None else bus_number
        dev = getattr(spi, "device", None) if device is None else device
        self.where = f"{self.chip} on " + (f"spidev{bus}.{dev}" if bus is not None else "SPI")
        self.period_ns = 1e9 / data_rate_sps
        self.dropped_samples = self.frames_read = self.loff_stat = 0
        self._drdy_spec, self._pin_factory = drdy, pin_factory
        self.drdy = None
        self._owns_pin = self._open = False
        self._spi_lock = threading.RLock()
        self._buf_lock = threading.Lock()
        self._frames: list[tuple[int, int, bytes]] = []  # (t_ns, lost before it, 9 bytes)
        self._error: Exception | None = None
        self._start_ns = self._taken = 0
        self._next_t0_ns: int | None = None
        self._last_frame_ns = 0

    @property
    def poll_interval_s(self) -> float:
        """Edge-driven reading only needs the buffer drained; otherwise every data period."""
        if self.drdy is not None and self.read_on_edge:
            return 0.1
        return 1.0 / self.data_rate_sps

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def lead_off(self) -> dict[str, bool]:
        """Which electrode is off, from the last frame's status word (False before any frame)."""
        field = self.regmap["LOFF_STAT"].field
        return {e: bool(field(bit).get(self.loff_stat)) for e, bit in ELECTRODE_STATUS_BITS.items()}

    # -- commands ---------------------------------------------------------------------------
    def read_registers(self, name: str, count: int = 1) -> list[int]:
        """RREG (SDATAC mode only: the chip ignores RREG while streaming)."""
        address = self.regmap[name].address
        rx = self.spi.xfer2([Opcode.RREG | address, count - 1] + [0] * count)
        return rx[2:]

    def write_registers(self, name: str, values: list[int]) -> None:
        address = self.regmap[name].address
        self.spi.xfer2([Opcode.WREG | address, len(values) - 1] + list(values))

    def configuration(self) -> list[int]:
        """CONFIG1 .. RESP2 as this driver writes them."""
        rm = self.regmap
        ch1 = (rm["CH1SET"].encode(GAIN=self._resp_gain, MUX=MUX_NORMAL) if self.respiration
               # Unused channel: powered down with its inputs shorted ("CH1SET" description).
               else rm["CH1SET"].encode(PD=1, MUX=MUX_SHORTED))
        resp1 = (rm["RESP1"].encode(RESP_DEMOD_EN1=1, RESP_MOD_EN=1, RESP_PH=RESP_PHASE_CODE)
                 if self.respiration else 0) | 0x02
        return [
            rm["CONFIG1"].encode(SINGLE_SHOT=0, DR=self._dr),
            rm["CONFIG2"].encode(PDB_LOFF_COMP=1, PDB_REFBUF=1, VREF_4V=self._vref),
            rm["LOFF"].encode(COMP_TH=0, ILEAD_OFF=0, FLEAD_OFF=0),  # DC lead-off, 95 %, 6 nA
            ch1,
            rm["CH2SET"].encode(PD=0, GAIN=self._ecg_gain, MUX=MUX_NORMAL),
            rm["RLD_SENS"].encode(PDB_RLD=1, RLD_LOFF_SENS=1, RLD2N=1, RLD2P=1),
            rm["LOFF_SENS"].encode(LOFF2N=1, LOFF2P=1),
            0x00,  # LOFF_STAT: CLK_DIV 0 for the internal 512 kHz oscillator
            resp1,
            rm["RESP2"].encode(RESP_FREQ=0, RLDREF_INT=1),  # 32 kHz modulation
        ]

    # -- life cycle -------------------------------------------------------------------------
    def open(self) -> Self:
        """RESET, SDATAC, ID check, configure (read back), then RDATAC and START.

        Calling it on an open driver re-initialises the chip (a recovery after bus errors)."""
        with self._spi_lock:
            self._open = False
            self.spi.mode = SPI_MODE
            self.spi.max_speed_hz = self.max_speed_hz
            self.spi.xfer2([Opcode.RESET])
            self.clock.sleep(RESET_WAIT_S)
            self.spi.xfer2([Opcode.SDATAC])  # RESET leaves the chip streaming (RDATAC)
            self.check_id()
            wanted = self.configuration()
            self.write_registers("CONFIG1", wanted)
            found = self.read_registers("CONFIG1", len(wanted))
            found[7] &= 0x40  # LOFF_STAT: only CLK_DIV is written; the rest is live status
            for reg, w, f in zip(list(self.regmap)[1:], wanted, found):
                if w != f:
                    raise OSError(errno.EIO, f"{self.where}: {reg.name} reads 0x{f:02x} after "
                                  f"writing 0x{w:02x} (SPI mode, clock or wiring)")
            self._attach_pin()
            self.spi.xfer2([Opcode.RDATAC])
            self.spi.xfer2([Opcode.START])
            self._start_ns, self._taken, self._next_t0_ns = self.clock.now_ns(), 0, None
            self._last_frame_ns = self._start_ns
            with self._buf_lock:
                self._frames.clear()
                self._error = None
            if self.drdy is not None:
                self.drdy.consume()
                self.drdy.when_ready = self._on_drdy if self.read_on_edge else None
            self._open = True
        return self

    def check_id(self) -> None:
        found = self.read_registers("ID")[0]
        if found != CHIP_ID:
            name = KNOWN_IDS.get(found)
            hint = (f" ({name})" if name else
                    " (MISO stuck: no chip answering?)" if found in (0x00, 0xFF) else "")
            exc = ChipIdError(f"{self.where}: ID is 0x{found:02x}{hint}, expected "
                              f"0x{CHIP_ID:02x} ({self.chip})")
            exc.chip, exc.bus, exc.found, exc.expected = self.chip, self.where, found, CHIP_ID
            raise exc

    def _attach_pin(self) -> None:
        if self.drdy is not None or self._drdy_spec is None:
            return
        from sensors.gpio import DataReadyPin

        if isinstance(self._drdy_spec, DataReadyPin):
            self.drdy = self._drdy_spec
        else:
            self.drdy = DataReadyPin(self._drdy_spec, pin_factory=self._pin_factory,
                                     active_low=True, name=f"{self.where} DRDY", clock=self.clock)
            self._owns_pin = True

    def close(self) -> None:
        """SDATAC, STOP, STANDBY (about 160 uA less than converting). Idempotent."""
        if not self._open:
            return
        self._open = False
        if self.drdy is not None:
            self.drdy.when_ready = None
        with self._spi_lock:
            try:
                for opcode in (Opcode.SDATAC, Opcode.STOP, Opcode.STANDBY):
                    self.spi.xfer2([opcode])
            finally:
                if self._owns_pin:
                    self.drdy.close()
                    self.drdy, self._owns_pin = None, False

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- data -------------------------------------------------------------------------------
    def _read_frame(self) -> bytes:
        data = bytes(self.spi.xfer2([0] * FRAME_BYTES))
        status = int.from_bytes(data[:3], "big")
        if status >> 20 != STATUS_PREAMBLE or status & 0x1FFF:
            raise OSError(errno.EIO, f"{self.where}: status word 0x{status:06x} is not 1100 + "
                          "LOFF_STAT + GPIO + 13 zeros (no chip answering, or frame sync lost)")
        return data

    def _take(self, edges: int, t_ns: int) -> None:
        """Read the frame waiting after ``edges`` DRDY edges; the others were overwritten."""
        data = self._read_frame()
        with self._buf_lock:
            self._frames.append((t_ns, edges - 1, data))
            self._last_frame_ns = max(self._last_frame_ns, t_ns)
            limit = max(1, int(self.buffer_s * self.data_rate_sps))
            if len(self._frames) > limit:
                # Nobody drained the buffer: drop the oldest, and mark the gap it leaves.
                over = len(self._frames) - limit
                gone = over + sum(f[1] for f in self._frames[:over])
                del self._frames[:over]
                t0, lost0, data0 = self._frames[0]
                self._frames[0] = (t0, lost0 + gone, data0)

    def _on_drdy(self) -> None:
        # gpiozero's callback thread: never wait long for the bus (close() may hold it).
        if not self._spi_lock.acquire(timeout=self.period_ns / 2e9):
            return
        try:
            if self._open:
                edges = self.drdy.consume()
                if edges:
                    self._take(edges, self.clock.now_ns())
        except Exception as exc:  # noqa: BLE001 - re-raised by read(), not lost in a callback
            self._error = exc
        finally:
            self._spi_lock.release()

    def _poll(self) -> None:
        with self._spi_lock:
            if self.drdy is not None:
                edges = self.drdy.consume()
                if edges:
                    self._take(edges, self.clock.now_ns())
                return
            due = int((self.clock.now_ns() - self._start_ns) // self.period_ns)
            if due > self._taken:
                t_ns = self._start_ns + round(due * self.period_ns)
                self._take(due - self._taken, t_ns)
                self._taken = due

    def read(self) -> list[SampleBlock]:
        """The frames read since the last call, as SampleBlocks "ecg" (mV at the electrodes)
        and, with respiration, "resp" (demodulated respiration, mV at the CH1 input)."""
        if not self._open:
            raise RuntimeError(f"{self.where} is not open; call open() first")
        if self.drdy is None or not self.read_on_edge:
            self._poll()
        with self._buf_lock:
            frames, self._frames = self._frames, []
            error, self._error = self._error, None
        if error is not None:
            raise error
        if not frames:
            self._check_drdy_alive()
            return []
        self.frames_read += len(frames)
        lost = np.array([f[1] for f in frames])
        self.dropped_samples += int(lost.sum())
        status, ch1, ch2 = decode_frames(b"".join(f[2] for f in frames))
        self.loff_stat = int(status[-1] >> 15) & LOFF_STATUS_MASK
        ecg_mv = ch2 * (lsb_v(self.ecg_gain, self.vref_v) * 1e3)
        resp_mv = ch1 * (lsb_v(self.resp_gain, self.vref_v) * 1e3)
        out: list[SampleBlock] = []
        starts = [0] + [i for i in range(1, len(frames)) if lost[i]] + [len(frames)]
        for a, b in itertools.pairwise(starts):
            t0 = self._anchor(frames[a][0], bool(lost[a]))
            out.append(SampleBlock("ecg", self.data_rate_sps, t0, ecg_mv[a:b], "mV"))
            if self.respiration:
                out.append(SampleBlock("resp", self.data_rate_sps, t0, resp_mv[a:b], "mV"))
            self._next_t0_ns = t0 + round((b - a) * self.period_ns)
        return out

    def _check_drdy_alive(self) -> None:
        if self.drdy is None:
            return
        silent_s = (self.clock.now_ns() - self._last_frame_ns) / 1e9
        if silent_s > self.drdy_timeout_s:
            raise OSError(errno.ETIMEDOUT, f"{self.where}: no DRDY edge for {silent_s:.2f} s "
                          f"at {self.data_rate_sps} SPS (chip unplugged, or DRDY not wired)")

    def _anchor(self, t_first_ns: int, after_gap: bool) -> int:
        """Blocks follow each other without gaps unless frames were lost or timing drifted."""
        nxt = self._next_t0_ns
        if (not after_gap and nxt is not None
                and abs(t_first_ns - nxt) <= max(self.reanchor_periods * self.period_ns,
                                                 self.reanchor_s * 1e9)):
            return nxt
        return t_first_ns
