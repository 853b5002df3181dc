"""A register-level ADS1292R behind an ``EmulatedSpiDev``, with its DRDY pin.

    drdy = EmulatedPinDriver(factory, 25)
    chip = EmulatedAds1292r(clock, simulator.ecg_mv, resp_source, drdy_pin=drdy)
    spi = EmulatedSpiDev(chip, bus=0, device=1)

``ecg_source(t_s)`` gives the ECG lead (LA - RA) in mV at the electrodes, ``resp_source(t_s)``
the demodulated respiration signal in mV at the CH1 input (None: flat), both for an ndarray of
times in seconds.

Modelled from SBAS502: the opcodes (decoded per byte; RREG/WREG with their count byte), the
power-up and post-RESET RDATAC mode in which RREG/WREG are ignored and every clocked byte
shifts frame data out (repeating after the 9th byte, "multiple readback"), RDATA in SDATAC
mode, START/STOP/STANDBY/WAKEUP, conversions every 1/DR from START (a write to CONFIG1
restarts them), one output register that each conversion overwrites - a frame not read by
then is lost and counted in ``frames_lost`` - and DRDY: low when a frame is ready, high on
the first SCLK of its read, pulsed high before the next frame when it was not read, so every
frame is one falling edge. Channels: powered down or shorted inputs read 0, the test signal
(INT_TEST) is +-VREF/2400 (DC or 1 Hz square), the normal input is the source times the gain
quantised to 24 bits (clipped at the codes 0x7FFFFF / 0x800000). A chip without the
respiration demodulator enabled sees the ECG electrodes on CH1 too.

Lead-off (``set_lead_off``): an electrode that is off pulls its inputs to a rail (the DC
lead-off current, positive side to +FS, negative to -FS), and shows in LOFF_STAT / the status
word only for inputs whose sensing is enabled in LOFF_SENS (RLD_SENS.RLD_LOFF_SENS for the RL
electrode) with the comparators powered (CONFIG2.PDB_LOFF_COMP).

Not modelled: the settling time of the first conversion after START (the first frame comes
one period after it), the oscillator's tolerance, OFFSETCAL, GPIO pins, the RLD amplifier.

Fault injection: a 72-bit frame read at SCLK faster than ``COMMAND_SCLK_MAX_HZ`` works, but a
RREG/WREG sent that fast is not understood (``protocol_errors``) as tSDECODE is violated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from sensors.ads1292r import (
    ADS1292R_REGISTERS,
    CHIP_ID,
    CODE_MAX,
    COMMAND_SCLK_MAX_HZ,
    DATA_RATES_SPS,
    FRAME_BYTES,
    GAINS,
    MAX_SCLK_HZ,
    MUX_NORMAL,
    MUX_TEST,
    SPI_MODE,
    VREFS_V,
    Opcode,
)
from sensors.clock import Clock
from sensors.regmap import RegisterFile

Source = Callable[[np.ndarray], np.ndarray]

#: Which inputs each electrode reaches on a 3-electrode board (RA/LA shared by CH1 and CH2).
ELECTRODE_INPUTS = {"la": ("IN2P", "IN1P"), "ra": ("IN2N", "IN1N"), "rl": ("RLD",)}
#: Input -> (LOFF_STAT field, enabling LOFF_SENS / RLD_SENS field).
_SENSING = {"IN1P": ("IN1P_OFF", "LOFF1P"), "IN1N": ("IN1N_OFF", "LOFF1N"),
            "IN2P": ("IN2P_OFF", "LOFF2P"), "IN2N": ("IN2N_OFF", "LOFF2N"),
            "RLD": ("RLD_STAT", "RLD_LOFF_SENS")}
_STATUS_MASK = 0x1F  # LOFF_STAT[4:0]
_CLK_DIV_MASK = 0x40


class EmulatedAds1292r:
    spi_modes = (SPI_MODE,)
    max_speed_hz = MAX_SCLK_HZ
    #: After a long pause only this many of the frames due pulse DRDY; the rest count as lost.
    max_burst_frames = 10_000

    def __init__(self, clock: Clock, ecg_source: Source, resp_source: Source | None = None, *,
                 drdy_pin=None, chip_id: int = CHIP_ID) -> None:
        self.clock = clock
        self.ecg_source = ecg_source
        self.resp_source = resp_source
        self.drdy_pin = drdy_pin
        self.chip_id = chip_id
        self.miso_idle = 0x00
        self.spi_speed_hz = 0
        self.frames_produced = 0
        self.frames_read = 0
        self.frames_lost = 0
        self.protocol_errors = 0
        self.commands: list[int] = []
        self.electrodes_off: set[str] = set()
        #: Fault injection: conversions stop (no DRDY, a stale output register).
        self.halted = False
        self._lock = threading.RLock()
        self._advancing = False
        self._power_on()

    # -- state ----------------------------------------------------------------------------------
    def _power_on(self) -> None:
        self.regs = RegisterFile(ADS1292R_REGISTERS)
        self.regs.set("ID", self.chip_id)
        self.rdatac = True  # the default mode at power-up and after RESET
        self.started = False
        self.standby = False
        self._t_start_ns = 0
        self._emitted = 0
        self._output = bytes(FRAME_BYTES)
        self._unread = False
        if self.drdy_pin is not None:
            self.drdy_pin.high()

    @property
    def output(self) -> bytes:
        """The 9-byte frame in the output register (what RDATAC / RDATA would shift out)."""
        return self._output

    @property
    def converting(self) -> bool:
        return self.started and not self.standby

    @property
    def data_rate_sps(self) -> int:
        return DATA_RATES_SPS[min(6, self.regs.get_field("CONFIG1", "DR"))]

    @property
    def period_ns(self) -> int:
        return round(1e9 / self.data_rate_sps)

    @property
    def vref_v(self) -> float:
        return VREFS_V[self.regs.get_field("CONFIG2", "VREF_4V")]

    def set_lead_off(self, *, ra: bool | None = None, la: bool | None = None,
                     rl: bool | None = None) -> None:
        """Take electrodes off (True) or put them back (False); None leaves one as it is."""
        with self._lock:
            self._advance()
            for name, off in (("ra", ra), ("la", la), ("rl", rl)):
                if off is not None:
                    (self.electrodes_off.add if off else self.electrodes_off.discard)(name)

    def loff_status(self) -> int:
        """LOFF_STAT[4:0] now: the sensed inputs whose electrode is off."""
        if not self.regs.get_field("CONFIG2", "PDB_LOFF_COMP"):
            return 0
        status = 0
        for electrode in self.electrodes_off:
            for pin in ELECTRODE_INPUTS[electrode]:
                flag, enable = _SENSING[pin]
                sense = "RLD_SENS" if pin == "RLD" else "LOFF_SENS"
                if self.regs.get_field(sense, enable):
                    status |= ADS1292R_REGISTERS["LOFF_STAT"].field(flag).mask
        return status

    # -- conversions ------------------------------------------------------------------------------
    def codes(self, channel: int, t_s: np.ndarray) -> np.ndarray:
        """The 24-bit codes channel 1 or 2 produces at times ``t_s``, with the current settings."""
        chset = ADS1292R_REGISTERS[f"CH{channel}SET"].decode(self.regs.get(f"CH{channel}SET"))
        t_s = np.asarray(t_s, dtype=np.float64)
        if chset["PD"]:
            return np.zeros(t_s.shape, dtype=np.int64)
        gain = GAINS[min(6, chset["GAIN"])]
        if chset["MUX"] == MUX_NORMAL:
            p_off, n_off = (f"IN{channel}P", f"IN{channel}N")
            wired = {pin: e for e, pins in ELECTRODE_INPUTS.items() for pin in pins}
            if wired[p_off] in self.electrodes_off:
                return np.full(t_s.shape, CODE_MAX, dtype=np.int64)
            if wired[n_off] in self.electrodes_off:
                return np.full(t_s.shape, -CODE_MAX - 1, dtype=np.int64)
            resp = channel == 1 and self.regs.get_field("RESP1", "RESP_DEMOD_EN1")
            if resp:
                mv = self.resp_source(t_s) if self.resp_source is not None else 0.0
            else:
                mv = self.ecg_source(t_s)
            volts = np.broadcast_to(np.asarray(mv, dtype=np.float64), t_s.shape) / 1e3
        elif chset["MUX"] == MUX_TEST and self.regs.get_field("CONFIG2", "INT_TEST"):
            amplitude = self.vref_v / 2400
            if self.regs.get_field("CONFIG2", "TEST_FREQ"):
                volts = np.where((t_s % 1.0) < 0.5, amplitude, -amplitude)
            else:
                volts = np.full(t_s.shape, amplitude)
        else:
            return np.zeros(t_s.shape, dtype=np.int64)
        codes = np.rint(volts * gain / self.vref_v * CODE_MAX)
        return np.clip(codes, -CODE_MAX - 1, CODE_MAX).astype(np.int64)

    def _frames(self, t_s: np.ndarray) -> list[bytes]:
        gpio = self.regs.get_field("GPIO", "GPIOD")
        status = (0b1100 << 20) | (self.loff_status() << 15) | (gpio << 13)
        ch1, ch2 = self.codes(1, t_s) & 0xFFFFFF, self.codes(2, t_s) & 0xFFFFFF
        words = np.stack([np.full(t_s.shape, status), ch1, ch2], axis=1)
        data = np.stack([(words >> 16) & 0xFF, (words >> 8) & 0xFF, words & 0xFF], axis=2)
        return [bytes(row) for row in data.reshape(len(t_s), FRAME_BYTES).astype(np.uint8)]

    # -- time ---------------------------------------------------------------------------------------
    def tick(self) -> None:
        """Catch up with the clock: make the conversions due, pulsing DRDY for each."""
        with self._lock:
            self._advance()

    def _advance(self) -> None:
        if self._advancing or not self.converting:
            return
        if self.halted:
            self._retime()
            return  # a DRDY callback reading the chip while it produces frames
        self._advancing = True
        try:
            period = self.period_ns
            total = (self.clock.now_ns() - self._t_start_ns) // period
            new = int(total - self._emitted)
            if new <= 0:
                return
            # Without a pin nobody can read frames in between: only the newest is computed.
            keep = min(new, self.max_burst_frames) if self.drdy_pin is not None else 1
            first = total - keep + 1
            k = np.arange(first, total + 1)
            frames = self._frames((self._t_start_ns + k * period) / 1e9)
            skipped = new - len(frames)
            self.frames_produced += skipped
            self.frames_lost += skipped + (1 if skipped and self._unread else 0)
            if skipped:
                self._unread = False
            for i, frame in enumerate(frames):
                if self._unread:
                    self.frames_lost += 1
                self.frames_produced += 1
                self._emitted = int(first + i)
                self._output, self._unread = frame, True
                if self.drdy_pin is not None:
                    self.drdy_pin.high()  # the pulse before new data when the last was not read
                    self.drdy_pin.low()
            self._emitted = int(total)
        finally:
            self._advancing = False

    def _retime(self) -> None:
        self._t_start_ns = self.clock.now_ns()
        self._emitted = 0

    # -- bus -------------------------------------------------------------------------------------------
    def transfer(self, tx: list[int]) -> list[int]:
        with self._lock:
            self._advance()
            rx = [0] * len(tx)
            i = 0
            streaming_from = 0 if self.rdatac else None
            while i < len(tx):
                if streaming_from is not None:
                    rx[i] = self._frame_byte(i - streaming_from)
                op = tx[i]
                i += 1
                if self.rdatac and streaming_from is not None:
                    if op in (Opcode.RDATAC,) or op & 0xE0 in (Opcode.RREG, Opcode.WREG):
                        continue  # ignored while streaming
                    if op == Opcode.SDATAC:
                        streaming_from = None
                    self._system_command(op)
                    continue
                if op == Opcode.RDATA:
                    streaming_from = i
                elif op & 0xE0 in (Opcode.RREG, Opcode.WREG) and i < len(tx):
                    i = self._register_command(op, tx, rx, i)
                else:
                    self._system_command(op)
                    if self.rdatac:
                        streaming_from = i
            return rx

    def _frame_byte(self, index: int) -> int:
        if index == 0 and self._unread:
            self._unread = False
            self.frames_read += 1
            if self.drdy_pin is not None:
                self.drdy_pin.high()  # DRDY returns high on the first SCLK falling edge
        return self._output[index % FRAME_BYTES]

    def _register_command(self, op: int, tx: list[int], rx: list[int], i: int) -> int:
        address, count = op & 0x1F, (tx[i] & 0x1F) + 1
        i += 1
        data_end = min(len(tx), i + count)
        if self.spi_speed_hz > COMMAND_SCLK_MAX_HZ:
            # The second byte arrived before the opcode was decoded (tSDECODE).
            self.protocol_errors += 1
            return data_end
        for n, j in enumerate(range(i, data_end)):
            reg = ADS1292R_REGISTERS.at(address + n)
            if op & 0xE0 == Opcode.RREG:
                rx[j] = self._read_register(address + n) if reg is not None else 0
            elif reg is not None and reg.access != "r":
                self._write_register(reg.name, tx[j])
        return data_end

    def _read_register(self, address: int) -> int:
        value = self.regs.values.get(address, 0)
        if ADS1292R_REGISTERS.at(address).name == "LOFF_STAT":
            value = (value & _CLK_DIV_MASK) | self.loff_status()
        return value

    def _write_register(self, name: str, value: int) -> None:
        if name == "LOFF_STAT":
            value &= _CLK_DIV_MASK
        self.regs.set(name, value)
        if name == "CONFIG1" and self.converting:
            self._retime()

    def _system_command(self, op: int) -> None:
        if op == 0x00:
            return  # DIN low: no command
        self.commands.append(op)
        if op == Opcode.RESET:
            self._power_on()
        elif op == Opcode.START:
            self.started = True
            self._retime()
        elif op == Opcode.STOP:
            self.started = False
        elif op == Opcode.STANDBY:
            self.standby = True
        elif op == Opcode.WAKEUP:
            if self.standby:
                self.standby = False
                self._retime()
        elif op == Opcode.RDATAC:
            self.rdatac = True
        elif op == Opcode.SDATAC:
            self.rdatac = False
        if not self.converting and self.drdy_pin is not None and not self._unread:
            self.drdy_pin.high()
