"""The MPU-6050 driver against the register-level emulator, on a stepped clock."""

from __future__ import annotations

import errno
from itertools import pairwise

import numpy as np
import pytest

from sensors.bus import ChipIdError
from sensors.clock import SteppedClock
from sensors.emulated.i2c import EmulatedI2CBus
from sensors.emulated.mpu6050 import EmulatedMpu6050
from sensors.mpu6050 import (
    FIFO_SIZE_BYTES,
    LSB_PER_G,
    MPU6050_REGISTERS,
    Mpu6050,
    sample_rate_divider,
)

RAMP_G_PER_S = 0.1  # acc_x = 0.1 g/s * t: the value tells when the sample was taken


def ramp(t_s: np.ndarray) -> np.ndarray:
    t_s = np.asarray(t_s, dtype=float)
    return np.column_stack([RAMP_G_PER_S * t_s, -0.5 + 0.0 * t_s, 1.0 + 0.0 * t_s])


def rig(source=ramp, *, address=0x68, start_s=1.0, **chip_kw):
    clock = SteppedClock(start_ns=round(start_s * 1e9))
    bus = EmulatedI2CBus(1)
    chip = bus.attach(address, EmulatedMpu6050(clock, source, **chip_kw))
    return clock, bus, chip


def run(driver: Mpu6050, clock: SteppedClock, seconds: float, step_s: float | None = None) -> list:
    step_s = step_s or driver.poll_interval_s
    blocks = []
    for _ in range(round(seconds / step_s)):
        clock.advance(step_s)
        blocks += driver.read()
    return blocks


def channel(blocks, name):
    return [b for b in blocks if b.channel == name]


def test_wrong_who_am_i_names_chip_bus_address_and_found_id():
    clock, bus, _ = rig(who_am_i=0x70)
    with pytest.raises(ChipIdError) as err:
        Mpu6050(bus, 0x68, clock, bus_number=1).open()
    msg = str(err.value)
    for part in ("MPU-6050", "i2c-1", "0x68", "0x70", "MPU-6500"):
        assert part in msg


def test_no_chip_at_address_is_an_oserror_naming_it():
    clock, bus, _ = rig(address=0x68)
    with pytest.raises(OSError) as err:
        Mpu6050(bus, 0x69, clock).open()
    assert err.value.errno == errno.EREMOTEIO
    assert "MPU-6050" in str(err.value) and "0x69" in str(err.value)


def test_open_resets_wakes_and_configures_registers():
    clock, bus, chip = rig()
    Mpu6050(bus, 0x68, clock, range_g=8, sample_rate_hz=100, dlpf_cfg=3).open()
    r = chip.regs
    assert r.get_field("PWR_MGMT_1", "SLEEP") == 0 and r.get_field("PWR_MGMT_1", "CLKSEL") == 1
    assert r.get_field("CONFIG", "DLPF_CFG") == 3
    assert r.get("SMPLRT_DIV") == 9
    assert r.get_field("ACCEL_CONFIG", "AFS_SEL") == 2
    assert r.get("FIFO_EN") == MPU6050_REGISTERS["FIFO_EN"].encode(ACCEL_FIFO_EN=1)
    assert r.get_field("USER_CTRL", "FIFO_EN") == 1


@pytest.mark.parametrize("range_g", [2, 4, 8, 16])
def test_range_scaling_is_exact(range_g):
    # Values that are whole LSB counts at every range, plus one beyond full scale (saturates).
    want = np.array([0.5, -0.25, 1.0]) * range_g / 2
    clock, bus, _chip = rig(lambda t: np.tile(want, (len(t), 1)))
    imu = Mpu6050(bus, 0x68, clock, range_g=range_g)
    imu.open()
    blocks = run(imu, clock, 0.5)
    for i, name in enumerate(("acc_x", "acc_y", "acc_z")):
        samples = np.concatenate([b.samples for b in channel(blocks, name)])
        assert len(samples) > 0 and np.all(samples == want[i])
        assert all(b.unit == "g" for b in channel(blocks, name))
    assert imu.read_accel_g() == tuple(want)
    assert imu.lsb_per_g == LSB_PER_G[range_g]


def test_readings_beyond_the_range_saturate():
    clock, bus, _ = rig(lambda t: np.tile([3.0, -5.0, 0.0], (len(t), 1)))
    imu = Mpu6050(bus, 0x68, clock, range_g=2)
    imu.open()
    clock.advance(0.1)
    x, y, z = imu.read_accel_g()
    assert x == 32767 / 16384 and y == -2.0 and z == 0.0


@pytest.mark.parametrize(
    "rate_hz, dlpf_cfg, div",
    [(4, 3, 249), (10, 3, 99), (50, 3, 19), (200, 1, 4), (1000, 6, 0), (500, 0, 15), (1000, 0, 7)],
)
def test_sample_count_and_rate_follow_smplrt_div(rate_hz, dlpf_cfg, div):
    clock, bus, chip = rig()
    imu = Mpu6050(bus, 0x68, clock, sample_rate_hz=rate_hz, dlpf_cfg=dlpf_cfg)
    imu.open()
    assert chip.regs.get("SMPLRT_DIV") == div
    t_start_ns = clock.now_ns()
    blocks = channel(run(imu, clock, 3.0, 0.04), "acc_x")
    n = sum(len(b) for b in blocks)
    assert abs(n - (clock.now_ns() - t_start_ns) / 1e9 * rate_hz) <= 1
    assert all(b.rate_hz == rate_hz for b in blocks)


@pytest.mark.parametrize(
    "kw, word",
    [
        ({"sample_rate_hz": 700}, "sample_rate_hz"),
        ({"sample_rate_hz": 2000}, "sample_rate_hz"),
        ({"dlpf_cfg": 7}, "dlpf_cfg"),
        ({"range_g": 3}, "range_g"),
    ],
)
def test_impossible_settings_are_refused_by_name(kw, word):
    clock, bus, _ = rig()
    with pytest.raises(ValueError, match=word):
        Mpu6050(bus, 0x68, clock, **kw)


def test_divider_choice_is_within_one_percent():
    assert sample_rate_divider(333, 3) == 2  # 1000 / 3 = 333.3 Hz
    with pytest.raises(ValueError, match="nearest"):
        sample_rate_divider(3.5, 3)  # 1000 / 256 = 3.9 Hz is the slowest


def test_timestamps_are_contiguous_and_match_when_samples_were_taken():
    clock, bus, _ = rig()
    imu = Mpu6050(bus, 0x68, clock, range_g=8, sample_rate_hz=50)
    imu.open()
    rng = np.random.default_rng(7)
    blocks = []
    for step_s in rng.uniform(0.03, 0.3, 80):  # irregular polling, as a busy reader thread
        clock.advance(float(step_s))
        blocks += imu.read()
    xs = channel(blocks, "acc_x")
    assert len(xs) > 50
    for a, b in pairwise(xs):
        assert b.t0_ns == a.t_end_ns
    t_stamped = np.concatenate([b.times_ns() for b in xs]) / 1e9
    t_true = np.concatenate([b.samples for b in xs]) / RAMP_G_PER_S
    period_s = 1 / 50
    assert np.max(np.abs(t_stamped - t_true)) < period_s
    assert imu.resyncs == 0 and imu.dropped_samples == 0


def test_clock_drift_beyond_two_periods_restarts_the_timeline():
    clock, bus, _ = rig(rate_error=0.02)  # the chip's clock runs 2 % fast
    imu = Mpu6050(bus, 0x68, clock, range_g=8, sample_rate_hz=50)
    imu.open()
    xs = channel(run(imu, clock, 20.0, 0.1), "acc_x")
    assert imu.resyncs >= 2
    t_stamped = np.concatenate([b.times_ns() for b in xs]) / 1e9
    t_true = np.concatenate([b.samples for b in xs]) / RAMP_G_PER_S
    assert np.max(np.abs(t_stamped - t_true)) < 3.5 / 50


def test_fifo_overflow_is_detected_counted_and_starts_a_new_block():
    clock, bus, chip = rig()
    imu = Mpu6050(bus, 0x68, clock, range_g=8, sample_rate_hz=50)
    imu.open()
    before = channel(run(imu, clock, 1.0), "acc_x")
    delivered = sum(len(b) for b in before)
    taken_before_stall = chip.samples_taken
    clock.advance(10.0)  # the reader stalls: 500 samples, the FIFO holds 170
    assert imu.read() == []
    assert imu.overflows == 1
    lost_truth = chip.samples_taken - taken_before_stall
    assert abs(imu.dropped_samples - lost_truth) <= 1
    after = channel(run(imu, clock, 1.0), "acc_x")
    assert after and after[0].t0_ns - before[-1].t_end_ns > 9.9e9
    for a, b in pairwise(after):
        assert b.t0_ns == a.t_end_ns
    t_true = after[0].samples[0] / RAMP_G_PER_S
    assert abs(after[0].t0_ns / 1e9 - t_true) < 1 / 50
    assert delivered > 0


def test_emulated_fifo_overflow_keeps_newest_bytes_and_flags_it():
    clock, bus, chip = rig()
    imu = Mpu6050(bus, 0x68, clock, sample_rate_hz=100)
    imu.open()
    clock.advance(3.0)
    count = int.from_bytes(bytes(bus.read_i2c_block_data(0x68, 0x72, 2)), "big")
    assert count == FIFO_SIZE_BYTES and chip.fifo_bytes_lost > 0
    status = bus.read_byte_data(0x68, 0x3A)
    assert status & 0x10  # FIFO_OFLOW_INT
    assert bus.read_byte_data(0x68, 0x3A) & 0x10 == 0  # cleared by the read


def test_partial_sample_in_fifo_stays_for_the_next_read():
    # Each byte takes 1 ms to land, so a read can catch a sample half written.
    clock, bus, chip = rig(fifo_byte_ns=1_000_000)
    imu = Mpu6050(bus, 0x68, clock, range_g=8, sample_rate_hz=50)
    imu.open()
    odd_counts = 0
    blocks = []
    for step_s in [0.0633, 0.0517, 0.0891, 0.0702, 0.0555] * 8:
        clock.advance(step_s)
        if len(chip.fifo) % 6:
            odd_counts += 1
        blocks += imu.read()
    assert odd_counts > 5
    xs, ys, zs = (
        np.concatenate([b.samples for b in channel(blocks, c)]) for c in ("acc_x", "acc_y", "acc_z")
    )
    # Alignment held: every Y and Z is its constant, every X on the rising ramp.
    assert np.all(ys == -0.5) and np.all(zs == 1.0)
    assert np.all(np.diff(xs) > 0)
    assert chip.samples_taken - 1 <= len(xs) <= chip.samples_taken  # at most one still landing


def test_chip_sleeps_after_reset_until_woken():
    clock, bus, chip = rig()
    bus.write_byte_data(0x68, 0x6B, 0x80)  # DEVICE_RESET
    clock.advance(0.1)
    assert bus.read_byte_data(0x68, 0x6B) == 0x40
    assert chip.samples_taken == 0
    bus.write_byte_data(0x68, 0x6B, 0x01)
    clock.advance(0.1)
    bus.read_byte_data(0x68, 0x75)  # the chip catches up with time on each access
    assert chip.samples_taken == 800  # reset values: DLPF off, SMPLRT_DIV 0 -> 8 kHz


def test_close_sleeps_the_chip_and_is_idempotent():
    clock, bus, chip = rig()
    with Mpu6050(bus, 0x68, clock) as imu:
        run(imu, clock, 0.2)
    assert chip.regs.get_field("PWR_MGMT_1", "SLEEP") == 1
    imu.close()
    taken = chip.samples_taken
    clock.advance(1.0)
    bus.read_byte_data(0x68, 0x75)
    assert chip.samples_taken == taken
    with pytest.raises(RuntimeError, match="not open"):
        imu.read()


def test_poll_interval_leaves_room_in_the_fifo():
    clock, bus, _ = rig()
    for rate_hz in (50, 1000):
        imu = Mpu6050(bus, 0x68, clock, sample_rate_hz=rate_hz)
        assert 0 < imu.poll_interval_s * rate_hz * 6 <= FIFO_SIZE_BYTES / 2
