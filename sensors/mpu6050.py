"""InvenSense MPU-6050 accelerometer (I2C 0x68, or 0x69 with AD0 high), read through its FIFO.

Only the accelerometer is used: it tells the pain model when the patient moves (motion
artifacts in PPG/EDA, restlessness). Register numbers and bit fields follow the "MPU-6000 and
MPU-6050 Register Map and Descriptions" (RM-MPU-6000A-00 rev 4.2); "Register N" below
is its decimal register number.

    with Mpu6050(bus, 0x68, clock, range_g=2, sample_rate_hz=50) as imu:
        blocks = imu.read()        # SampleBlocks "acc_x", "acc_y", "acc_z" in g
"""

from __future__ import annotations

from typing import Self

import numpy as np

from sensors.bus import SMBUS_BLOCK_MAX, ChipIdError, I2CBus, describe_i2c_bus
from sensors.clock import Clock, Deadline, MonotonicClock
from sensors.regmap import Field, I2CRegisters, Register, RegisterMap
from sensors.types import SampleBlock

MPU6050_REGISTERS = RegisterMap("MPU-6050", [
    Register("SMPLRT_DIV", 0x19),
    Register("CONFIG", 0x1A, fields=(Field("EXT_SYNC_SET", 5, 3), Field("DLPF_CFG", 2, 0))),
    Register("GYRO_CONFIG", 0x1B, fields=(Field("FS_SEL", 4, 3),)),
    Register("ACCEL_CONFIG", 0x1C, fields=(
        Field("XA_ST", 7), Field("YA_ST", 6), Field("ZA_ST", 5), Field("AFS_SEL", 4, 3))),
    Register("FIFO_EN", 0x23, fields=(
        Field("TEMP_FIFO_EN", 7), Field("XG_FIFO_EN", 6), Field("YG_FIFO_EN", 5),
        Field("ZG_FIFO_EN", 4), Field("ACCEL_FIFO_EN", 3), Field("SLV2_FIFO_EN", 2),
        Field("SLV1_FIFO_EN", 1), Field("SLV0_FIFO_EN", 0))),
    Register("INT_ENABLE", 0x38, fields=(
        Field("FIFO_OFLOW_EN", 4), Field("I2C_MST_INT_EN", 3), Field("DATA_RDY_EN", 0))),
    # Register 58: every bit clears when the register is read.
    Register("INT_STATUS", 0x3A, access="r", fields=(
        Field("FIFO_OFLOW_INT", 4), Field("I2C_MST_INT", 3), Field("DATA_RDY_INT", 0))),
    # ACCEL_xOUT_H/_L pairs, big-endian two's complement (Registers 59-64).
    Register("ACCEL_XOUT", 0x3B, access="r", size=2),
    Register("ACCEL_YOUT", 0x3D, access="r", size=2),
    Register("ACCEL_ZOUT", 0x3F, access="r", size=2),
    Register("TEMP_OUT", 0x41, access="r", size=2),
    Register("USER_CTRL", 0x6A, fields=(
        Field("FIFO_EN", 6), Field("I2C_MST_EN", 5), Field("I2C_IF_DIS", 4),
        Field("FIFO_RESET", 2), Field("I2C_MST_RESET", 1), Field("SIG_COND_RESET", 0))),
    Register("PWR_MGMT_1", 0x6B, reset=0x40, fields=(
        Field("DEVICE_RESET", 7), Field("SLEEP", 6), Field("CYCLE", 5), Field("TEMP_DIS", 3),
        Field("CLKSEL", 2, 0))),
    Register("FIFO_COUNT", 0x72, access="r", size=2),
    Register("FIFO_R_W", 0x74),
    Register("WHO_AM_I", 0x75, reset=0x68, access="r", fields=(Field("WHO_AM_I", 6, 1),)),
])

WHO_AM_I_MPU6050 = 0x68
#: Registers 114-116: the FIFO holds 1024 bytes.
FIFO_SIZE_BYTES = 1024
#: One FIFO entry with only ACCEL_FIFO_EN set: X, Y, Z, each big-endian int16, in register
#: order (Register 35).
SAMPLE_BYTES = 6
#: Register 28: AFS_SEL 0..3 = +-2/4/8/16 g at 16384/8192/4096/2048 LSB/g.
LSB_PER_G = {2: 16384.0, 4: 8192.0, 8: 4096.0, 16: 2048.0}
AFS_SEL = {2: 0, 4: 1, 8: 2, 16: 3}
#: CLKSEL 1: PLL on the X gyro; the register map recommends a gyro reference over the 8 MHz
#: internal oscillator for stability (Register 107).
CLKSEL_PLL_XGYRO = 1
_FIFO_WHOLE_BYTES = FIFO_SIZE_BYTES - FIFO_SIZE_BYTES % SAMPLE_BYTES
CHANNELS = ("acc_x", "acc_y", "acc_z")
#: How far (in sample periods) the FIFO-derived time may wander from the running timeline
#: before the timeline is re-anchored: beyond the +-1/2 period read-time jitter, not more.
RESYNC_PERIODS = 2.0
#: Deadline on DEVICE_RESET self-clearing. The register map gives no figure; InvenSense's
#: drivers wait 100 ms after a reset, so 0.5 s is generous.
RESET_TIMEOUT_S = 0.5


def gyro_output_rate_hz(dlpf_cfg: int) -> float:
    """Register 25: the sample clock is 8 kHz with the DLPF off (DLPF_CFG 0 or 7), else 1 kHz."""
    return 8000.0 if dlpf_cfg in (0, 7) else 1000.0


def sample_rate_divider(sample_rate_hz: float, dlpf_cfg: int) -> int:
    """SMPLRT_DIV for a rate: rate = gyro output rate / (1 + SMPLRT_DIV), within 1 %."""
    if not 0 <= dlpf_cfg <= 6:
        raise ValueError(f"dlpf_cfg must be 0..6 (7 is reserved), got {dlpf_cfg}")
    if not sample_rate_hz > 0:
        raise ValueError(f"sample_rate_hz must be > 0, got {sample_rate_hz}")
    if sample_rate_hz > 1000.0:
        # The accelerometer itself outputs at 1 kHz (Register 25 note): faster only repeats samples.
        raise ValueError(
            f"sample_rate_hz {sample_rate_hz} is above the accelerometer's 1 kHz output rate")
    base_hz = gyro_output_rate_hz(dlpf_cfg)
    div = round(base_hz / sample_rate_hz) - 1
    div = min(max(div, 0), 255)
    actual_hz = base_hz / (1 + div)
    if abs(actual_hz - sample_rate_hz) > 0.01 * sample_rate_hz:
        raise ValueError(
            f"sample_rate_hz {sample_rate_hz}: SMPLRT_DIV can only make "
            f"{base_hz:g} Hz / (1 + 0..255) "
            f"with dlpf_cfg {dlpf_cfg}; nearest is {actual_hz:.4g} Hz (SMPLRT_DIV {div})"
        )
    return div


class Mpu6050:
    """MPU-6050 accelerometer driver: FIFO reads with contiguous time stamps.

    Time stamps: the FIFO carries no time, so the newest sample in a read is placed half a
    period before the moment FIFO_COUNT was read (it was taken somewhere in the last period),
    and blocks then continue one timeline (``t0`` of a block = end of the previous one) as
    long as that estimate stays within ``RESYNC_PERIODS`` of it. Lost samples (FIFO overflow)
    or clock drift beyond that start a new timeline.
    """

    chip = "MPU-6050"

    def __init__(
        self,
        bus: I2CBus,
        address: int = 0x68,
        clock: Clock | None = None,
        *,
        range_g: int = 2,
        sample_rate_hz: float = 50,
        dlpf_cfg: int = 3,
        bus_number: int | None = None,
    ) -> None:
        if address not in (0x68, 0x69):
            raise ValueError(f"MPU-6050 address must be 0x68 or 0x69 (AD0), got 0x{address:02x}")
        if range_g not in LSB_PER_G:
            raise ValueError(f"range_g must be one of {sorted(LSB_PER_G)}, got {range_g}")
        self._smplrt_div = sample_rate_divider(sample_rate_hz, dlpf_cfg)
        self.bus = bus
        self.address = address
        self.clock = clock if clock is not None else MonotonicClock()
        self.range_g = range_g
        self.dlpf_cfg = dlpf_cfg
        self.rate_hz = gyro_output_rate_hz(dlpf_cfg) / (1 + self._smplrt_div)
        self.regs = I2CRegisters(bus, address, MPU6050_REGISTERS)
        self.where = f"{self.chip} on {describe_i2c_bus(bus, bus_number)} at 0x{address:02x}"
        self.dropped_samples = 0
        self.overflows = 0
        self.resyncs = 0
        self._period_ns = 1e9 / self.rate_hz
        self._anchor_ns: int | None = None
        self._index = 0
        self._fifo_reset_ns = 0
        self._open = False

    # -- life cycle ---------------------------------------------------------------------------
    def open(self) -> None:
        """Reset, identify and configure the chip, then start filling the FIFO."""
        try:
            self._reset()
            self.check_id()
            self._configure()
        except OSError as exc:
            raise OSError(exc.errno, f"{self.where}: {exc.strerror or exc}") from exc
        self._anchor_ns = None
        self._index = 0
        self._open = True

    def _reset(self) -> None:
        self.regs.write("PWR_MGMT_1", MPU6050_REGISTERS["PWR_MGMT_1"].encode(DEVICE_RESET=1))
        deadline = Deadline(self.clock, RESET_TIMEOUT_S)
        while True:
            self.clock.sleep(0.01)
            if not self.regs.read_fields("PWR_MGMT_1")["DEVICE_RESET"]:
                return
            if deadline.expired():
                raise TimeoutError(
                    f"{self.where}: DEVICE_RESET did not clear within {RESET_TIMEOUT_S} s")

    def check_id(self) -> None:
        found = self.regs.read("WHO_AM_I")
        if found != WHO_AM_I_MPU6050:
            raise ChipIdError(
                f"{self.where}: WHO_AM_I reads 0x{found:02x}, expected 0x{WHO_AM_I_MPU6050:02x} "
                "(0x70 is an MPU-6500 and 0x71 an MPU-9250: related chips with another "
                "register set)"
            )

    def _configure(self) -> None:
        regs, m = self.regs, MPU6050_REGISTERS
        regs.write("PWR_MGMT_1", m["PWR_MGMT_1"].encode(SLEEP=0, CLKSEL=CLKSEL_PLL_XGYRO))
        regs.write("CONFIG", m["CONFIG"].encode(DLPF_CFG=self.dlpf_cfg))
        regs.write("SMPLRT_DIV", self._smplrt_div)
        regs.write("ACCEL_CONFIG", m["ACCEL_CONFIG"].encode(AFS_SEL=AFS_SEL[self.range_g]))
        regs.write("INT_ENABLE", m["INT_ENABLE"].encode(FIFO_OFLOW_EN=1, DATA_RDY_EN=1))
        regs.write("FIFO_EN", m["FIFO_EN"].encode(ACCEL_FIFO_EN=1))
        self._reset_fifo()
        regs.read("INT_STATUS")  # clear flags raised while configuring

    def _reset_fifo(self) -> None:
        # Register 106: FIFO_RESET only acts while FIFO_EN is 0, so disable, reset, enable.
        u = MPU6050_REGISTERS["USER_CTRL"]
        self.regs.write("USER_CTRL", u.encode(FIFO_EN=0, FIFO_RESET=1))
        self.regs.write("USER_CTRL", u.encode(FIFO_EN=1))
        self._fifo_reset_ns = self.clock.now_ns()

    def close(self) -> None:
        """Put the chip to sleep (about 5 uA); safe to call twice."""
        if not self._open:
            return
        self._open = False
        sleep = MPU6050_REGISTERS["PWR_MGMT_1"].encode(SLEEP=1, CLKSEL=CLKSEL_PLL_XGYRO)
        self.regs.write("PWR_MGMT_1", sleep)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------
    @property
    def lsb_per_g(self) -> float:
        return LSB_PER_G[self.range_g]

    @property
    def poll_interval_s(self) -> float:
        """How often to call ``read()``: a quarter of the FIFO's capacity, at most 0.1 s."""
        fifo_s = (FIFO_SIZE_BYTES // SAMPLE_BYTES) / self.rate_hz
        return min(0.1, fifo_s / 4)

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError(f"{self.where}: not open (call open() first)")

    def read_accel_g(self) -> tuple[float, float, float]:
        """The latest sample from the data registers (one 6-byte burst, so X/Y/Z match)."""
        self._require_open()
        first = MPU6050_REGISTERS["ACCEL_XOUT"].address
        data = self.bus.read_i2c_block_data(self.address, first, 6)
        x, y, z = np.frombuffer(bytes(data), dtype=">i2").astype(np.float64) / self.lsb_per_g
        return float(x), float(y), float(z)

    def read(self) -> list[SampleBlock]:
        """Drain the FIFO: one block per channel, or none when the FIFO has no whole sample."""
        self._require_open()
        t_read_ns = self.clock.now_ns()
        status = self.regs.read_fields("INT_STATUS")
        count = self.regs.read("FIFO_COUNT")
        # After an overflow the oldest bytes were overwritten one by one: 1024 is not a
        # multiple of 6, so what is left is misaligned and must be discarded. More than 170
        # whole samples' worth means the FIFO is overflowing even if someone else read the flag.
        if status["FIFO_OFLOW_INT"] or count > _FIFO_WHOLE_BYTES:
            self._recover_overflow()
            return []
        n = count // SAMPLE_BYTES  # a partial sample stays in the FIFO for the next read
        if n == 0:
            return []
        raw = self._read_fifo(n * SAMPLE_BYTES)
        g = np.frombuffer(raw, dtype=">i2").reshape(n, 3).astype(np.float64) / self.lsb_per_g
        t0_ns = self._stamp(n, t_read_ns)
        return [SampleBlock(name, self.rate_hz, t0_ns, g[:, i].copy(), "g")
                for i, name in enumerate(CHANNELS)]

    def _read_fifo(self, nbytes: int) -> bytes:
        # FIFO_R_W does not auto-increment: each byte of a burst is the next FIFO byte.
        out = bytearray()
        fifo = MPU6050_REGISTERS["FIFO_R_W"].address
        while len(out) < nbytes:
            chunk = min(SMBUS_BLOCK_MAX, nbytes - len(out))
            out += bytes(self.bus.read_i2c_block_data(self.address, fifo, chunk))
        return bytes(out)

    def _recover_overflow(self) -> None:
        now_ns = self.clock.now_ns()
        self._reset_fifo()
        self.overflows += 1
        if self._anchor_ns is not None:
            next_ns = self._anchor_ns + self._index * self._period_ns
            lost = int((now_ns - next_ns) // self._period_ns) + 1
        else:
            lost = int((now_ns - self._fifo_reset_ns) // self._period_ns)
        self.dropped_samples += max(lost, 0)
        self._anchor_ns = None

    def _stamp(self, n: int, t_read_ns: int) -> int:
        t0_est = t_read_ns - (n - 0.5) * self._period_ns
        if self._anchor_ns is not None:
            expected = self._anchor_ns + self._index * self._period_ns
            if abs(t0_est - expected) <= RESYNC_PERIODS * self._period_ns:
                t0_ns = self._anchor_ns + round(self._index * self._period_ns)
                self._index += n
                return t0_ns
            self.resyncs += 1
        self._anchor_ns = round(t0_est)
        self._index = n
        return self._anchor_ns
