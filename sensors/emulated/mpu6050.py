"""A register-level MPU-6050: accelerometer samples from a motion source, into a 1024-byte FIFO.

    bus.attach(0x68, EmulatedMpu6050(clock, lambda t_s: motion.accel_g(t_s)))

``source(t_s)`` gets an array of sample times in seconds and returns an (N, 3) array of
acceleration in g, gravity included. The chip samples on its own clock as time passes: every
bus access first catches up with ``clock.now_ns()``. Modelled from the register map
(RM-MPU-6000A-00 rev 4.2): DEVICE_RESET and the sleep that follows it, SMPLRT_DIV/DLPF
sample rate, AFS_SEL scaling with saturation, FIFO_EN/ACCEL_FIFO_EN, FIFO_RESET (only while
FIFO_EN is 0), FIFO overflow that overwrites the oldest bytes and raises FIFO_OFLOW_INT,
FIFO_COUNT (latched on its high byte here), FIFO_R_W bursts that pop bytes, INT_STATUS cleared on
read. Gyroscope, DMP, I2C master and self test are not modelled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from sensors.clock import Clock
from sensors.emulated.i2c import RegisterChip
from sensors.mpu6050 import (
    AFS_SEL,
    FIFO_SIZE_BYTES,
    LSB_PER_G,
    MPU6050_REGISTERS,
    gyro_output_rate_hz,
)
from sensors.regmap import RegisterFile

#: How long DEVICE_RESET takes to self-clear here (the register map gives no figure).
RESET_DURATION_NS = 30_000_000
_AFS_TO_LSB = {AFS_SEL[range_g]: lsb for range_g, lsb in LSB_PER_G.items()}


class EmulatedMpu6050(RegisterChip):
    """The MPU-6050 as its I2C registers show it.

    ``rate_error`` makes the chip's sample clock fast (> 0) or slow (< 0) by that fraction,
    as its oscillator would. ``fifo_byte_ns`` spreads the 6 bytes of a sample over time as
    they enter the FIFO, so a read can find a partial sample. ``who_am_i`` lets a test play a
    different chip.
    """

    def __init__(
        self,
        clock: Clock,
        source: Callable[[np.ndarray], np.ndarray],
        *,
        who_am_i: int = 0x68,
        rate_error: float = 0.0,
        fifo_byte_ns: int = 0,
        temperature_c: float = 30.0,
    ) -> None:
        super().__init__(RegisterFile(MPU6050_REGISTERS))
        self.clock = clock
        self.source = source
        self.who_am_i = who_am_i
        self.rate_error = rate_error
        self.fifo_byte_ns = int(fifo_byte_ns)
        self.temperature_c = temperature_c
        self.fifo: deque[int] = deque()
        self.samples_taken = 0
        self.fifo_bytes_lost = 0
        self._pending: deque[tuple[int, int]] = deque()  # (time it lands, byte) on its way in
        self._latest = np.zeros(3, dtype=np.int16)
        self._last_fifo_byte = 0
        self._count_latch = 0
        self._reset_until_ns: int | None = None
        self._grid_anchor_ns = clock.now_ns()
        self._next_k = 1
        self._power_on()

    # -- state ----------------------------------------------------------------------------------
    def _power_on(self) -> None:
        self.regs.reset()
        self.regs.set("WHO_AM_I", self.who_am_i)
        self.fifo.clear()
        self._pending.clear()
        self._latest[:] = 0

    @property
    def awake(self) -> bool:
        return self._reset_until_ns is None and not self.regs.get_field("PWR_MGMT_1", "SLEEP")

    @property
    def sample_period_ns(self) -> float:
        base_hz = gyro_output_rate_hz(self.regs.get_field("CONFIG", "DLPF_CFG"))
        rate_hz = base_hz / (1 + self.regs.get("SMPLRT_DIV")) * (1 + self.rate_error)
        return 1e9 / rate_hz

    def _fifo_enabled(self) -> bool:
        return bool(self.regs.get_field("USER_CTRL", "FIFO_EN")
                    and self.regs.get_field("FIFO_EN", "ACCEL_FIFO_EN"))

    def _raise_int(self, name: str, enable: str) -> None:
        if self.regs.get_field("INT_ENABLE", enable):
            self.regs.set_field("INT_STATUS", name, 1)

    def _restart_grid(self, now_ns: int) -> None:
        self._grid_anchor_ns = now_ns
        self._next_k = 1

    # -- time -------------------------------------------------------------------------------------
    def _advance(self) -> None:
        now_ns = self.clock.now_ns()
        if self._reset_until_ns is not None:
            if now_ns < self._reset_until_ns:
                return
            self._reset_until_ns = None
            self._restart_grid(now_ns)
        if self.awake:
            self._sample_until(now_ns)
        self._land_bytes(now_ns)

    #: Fault injection: the FIFO stops filling (FIFO_COUNT frozen) while the chip still answers.
    fifo_stuck = False

    def _sample_until(self, now_ns: int) -> None:
        period_ns = self.sample_period_ns
        k_last = int((now_ns - self._grid_anchor_ns) // period_ns)
        if k_last < self._next_k:
            return
        k = np.arange(self._next_k, k_last + 1)
        t_ns = self._grid_anchor_ns + np.round(k * period_ns).astype(np.int64)
        self._next_k = k_last + 1
        if self.fifo_stuck:
            return
        t_s = t_ns / 1e9
        if period_ns < 1e6:
            # Register 25 note: the accelerometer outputs at 1 kHz; faster rates repeat samples.
            t_s = np.floor(t_s * 1000.0) / 1000.0
        g = np.asarray(self.source(t_s), dtype=np.float64).reshape(len(t_s), 3)
        lsb = _AFS_TO_LSB[self.regs.get_field("ACCEL_CONFIG", "AFS_SEL")]
        counts = np.clip(np.round(g * lsb), -32768, 32767).astype(">i2")
        self._latest = counts[-1].astype(np.int16)
        self.samples_taken += len(counts)
        self._raise_int("DATA_RDY_INT", "DATA_RDY_EN")
        if self._fifo_enabled():
            for t, row in zip(t_ns, counts):
                for j, byte in enumerate(row.tobytes()):
                    self._pending.append((int(t) + j * self.fifo_byte_ns, byte))

    def _land_bytes(self, now_ns: int) -> None:
        while self._pending and self._pending[0][0] <= now_ns:
            _, byte = self._pending.popleft()
            if len(self.fifo) >= FIFO_SIZE_BYTES:
                # Register 116: when full, the oldest data is lost and the new written.
                self.fifo.popleft()
                self.fifo_bytes_lost += 1
                self._raise_int("FIFO_OFLOW_INT", "FIFO_OFLOW_EN")
            self.fifo.append(byte)

    # -- bus --------------------------------------------------------------------------------------
    def read(self, register: int, length: int) -> list[int]:
        self._advance()
        if register == MPU6050_REGISTERS["FIFO_R_W"].address:
            # Bursts on FIFO_R_W stay on it: every byte is the next one out of the FIFO.
            return [self._pop_fifo() for _ in range(length)]
        return super().read(register, length)

    def write(self, register: int, data: Sequence[int]) -> None:
        self._advance()
        super().write(register, data)

    def _pop_fifo(self) -> int:
        if self.fifo:
            self._last_fifo_byte = self.fifo.popleft()
        # Register 116: reading an empty FIFO repeats the last byte read.
        return self._last_fifo_byte

    def on_read(self, address: int) -> int:
        if self._reset_until_ns is not None and address == MPU6050_REGISTERS["PWR_MGMT_1"].address:
            return self.regs.get("PWR_MGMT_1") | 0x80
        if 0x3B <= address <= 0x40:
            return self._latest.astype(">i2").tobytes()[address - 0x3B]
        if address in (0x41, 0x42):
            raw = int(np.clip(round((self.temperature_c - 36.53) * 340.0), -32768, 32767))
            return raw.to_bytes(2, "big", signed=True)[address - 0x41]
        if address == 0x72:
            # Latched on the high byte, so a burst of H then L gives one consistent count.
            self._count_latch = len(self.fifo)
            return self._count_latch >> 8
        if address == 0x73:
            return self._count_latch & 0xFF
        if address == MPU6050_REGISTERS["INT_STATUS"].address:
            value = self.regs.get("INT_STATUS")
            self.regs.set("INT_STATUS", 0)
            return value
        return super().on_read(address)

    def on_write(self, address: int, value: int) -> None:
        if self._reset_until_ns is not None:
            return  # still resetting: the chip does not take writes
        m = MPU6050_REGISTERS
        now_ns = self.clock.now_ns()
        if address == m["PWR_MGMT_1"].address:
            if value & 0x80:
                self._power_on()
                self._reset_until_ns = now_ns + RESET_DURATION_NS
                return
            was_awake = self.awake
            self.regs.set("PWR_MGMT_1", value)
            if self.awake and not was_awake:
                self._restart_grid(now_ns)
            return
        if address == m["USER_CTRL"].address:
            fields = m["USER_CTRL"].decode(value)
            if fields["FIFO_RESET"] and not fields["FIFO_EN"]:
                self.fifo.clear()
                self._pending.clear()
            self.regs.set("USER_CTRL", value & ~m["USER_CTRL"].field("FIFO_RESET").mask)
            return
        if address == m["FIFO_R_W"].address:
            if len(self.fifo) < FIFO_SIZE_BYTES:
                self.fifo.append(value)
            return
        super().on_write(address, value)
        if address in (m["SMPLRT_DIV"].address, m["CONFIG"].address):
            self._restart_grid(now_ns)
