"""A Sensor keeps the app running when its chip vanishes, and takes it back when it returns."""

import numpy as np

from sensors.clock import SteppedClock
from sensors.emulated.i2c import EmulatedI2CBus
from sensors.emulated.mpu6050 import EmulatedMpu6050
from sensors.mpu6050 import Mpu6050

from device.acquisition.sensor import FifoChip, Sensor


def still(t_s):
    return np.tile([0.0, 0.0, 1.0], (len(np.atleast_1d(t_s)), 1))


def make_sensor(clock, events):
    bus = EmulatedI2CBus(1)
    chip = bus.attach(0x68, EmulatedMpu6050(clock, still))
    sensor = Sensor("accel", FifoChip(Mpu6050(bus, 0x68, clock, sample_rate_hz=50), clock), clock,
                    reopen_s=1.0, on_state=events.append)
    return bus, chip, sensor


def run(sensor, clock, seconds, step_s=0.02):
    blocks = []
    for _ in range(round(seconds / step_s)):
        clock.advance(step_s)
        blocks += sensor.step()
    return blocks


def test_unplugged_chip_is_flagged_retried_and_recovered():
    clock, events = SteppedClock(), []
    bus, chip, sensor = make_sensor(clock, events)
    assert sensor.open() and sensor.ok
    assert sum(len(b) for b in run(sensor, clock, 1.0) if b.channel == "acc_z") >= 45

    bus.detach(0x68)
    run(sensor, clock, 0.5)
    assert sensor.status.state == "missing"
    assert "EREMOTEIO" in sensor.status.reason
    missing_at = sensor.status.since_ns

    run(sensor, clock, 3.0)  # still gone: re-open attempts fail quietly, no exception
    assert sensor.status.state == "missing"

    bus.attach(0x68, chip)
    blocks = run(sensor, clock, 2.0)
    assert sensor.ok
    assert (sensor.status.since_ns - missing_at) / 1e9 < 5.5
    z = np.concatenate([b.samples for b in blocks if b.channel == "acc_z"])
    assert np.allclose(z, 1.0, atol=1e-3)
    assert [e.state for e in events] == ["ok", "missing", "ok"]


def test_wrong_chip_is_missing_with_the_id_in_the_reason():
    clock = SteppedClock()
    bus = EmulatedI2CBus(1)
    bus.attach(0x68, EmulatedMpu6050(clock, still, who_am_i=0x70))
    sensor = Sensor("accel", FifoChip(Mpu6050(bus, 0x68, clock), clock), clock)
    assert not sensor.open()
    assert sensor.status.state == "missing"
    assert "0x70" in sensor.status.reason
