"""The MAX30102's INT and the ADS1115's ALERT/RDY: emulated chips move gpiozero mock pins at
the moment they raise them, and the drivers read on those edges instead of polling."""

from __future__ import annotations

import time

import numpy as np
import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockFactory

from sensors.ads1115 import Ads1115, AnalogChannel, AnalogSampler
from sensors.clock import ScaledClock, SteppedClock
from sensors.emulated.ads1115 import EmulatedAds1115
from sensors.emulated.i2c import EmulatedI2CBus
from sensors.emulated.max3010x import EmulatedMax30102
from sensors.emulated.pins import EmulatedPinDriver, InterruptLine, PinScheduler
from sensors.max3010x import FIFO_DEPTH, INT_THRESHOLD_SAMPLES, Max30102

from device.acquisition.readers import BusReader
from device.acquisition.sensor import FifoChip, ScannedAdc, Sensor

INT_PIN, RDY_PIN = 17, 27


def finger(t_s):
    pulse = 1.0 + 0.01 * np.sin(2 * np.pi * 1.2 * t_s)
    return {"red": 0.8 * pulse, "ir": pulse}


def ramp(ain, t_s):
    """AIN0: 0.1 V + 1 V/s, so each conversion's value shows when it sampled."""
    return 0.1 + np.asarray(t_s, dtype=float) % 1.0


class Rig:
    """One I2C bus with a MAX30102 and an ADS1115 whose INT and ALERT/RDY are mock pins."""

    def __init__(self, clock, *, pins: bool = True) -> None:
        self.clock = clock
        self.factory = MockFactory()
        self.scheduler = PinScheduler(clock)
        self.bus = EmulatedI2CBus(1)
        self.int_line = InterruptLine(EmulatedPinDriver(self.factory, INT_PIN), self.scheduler) if pins else None
        self.rdy_line = InterruptLine(EmulatedPinDriver(self.factory, RDY_PIN), self.scheduler) if pins else None
        self.ppg_chip = self.bus.attach(0x57, EmulatedMax30102(clock, finger, interrupt=self.int_line))
        self.adc_chip = self.bus.attach(0x48, EmulatedAds1115(clock, ramp, interrupt=self.rdy_line))

    def ppg(self, **kw) -> Max30102:
        return Max30102(self.bus, clock=self.clock, int_pin=INT_PIN, pin_factory=self.factory, **kw)

    def adc(self, **kw) -> Ads1115:
        return Ads1115(self.bus, 0x48, self.clock, alert_pin=RDY_PIN, pin_factory=self.factory, **kw)

    def close(self) -> None:
        self.scheduler.close()


@pytest.fixture
def rig():
    r = Rig(ScaledClock(1.0))
    yield r
    r.close()


# -- MAX30102 INT ------------------------------------------------------------------------------
def test_int_falls_when_the_fifo_reaches_its_threshold_and_rises_on_the_read(rig):
    ppg = rig.ppg(sample_rate_hz=100).open()
    regs = rig.ppg_chip
    assert regs.regs.get_field("INTR_ENABLE_1", "A_FULL_EN") == 1
    assert regs.regs.get_field("FIFO_CONFIG", "FIFO_A_FULL") == FIFO_DEPTH - INT_THRESHOLD_SAMPLES
    assert ppg.poll_interval_s > FIFO_DEPTH / 100 / 3  # the timer is only a safety net now
    edges0 = ppg.data_ready.edges  # the soft reset's PWR_RDY asserted INT once already
    sizes, gaps = [], []
    last = time.monotonic()
    for _ in range(4):
        assert ppg.data_ready.wait(1.0), "no INT edge within 1 s"
        now = time.monotonic()
        gaps.append(now - last)
        last = now
        assert rig.int_line.asserted
        ppg.data_ready.consume()
        red, ir = ppg.read()
        sizes.append(len(ir.samples))
        assert not rig.int_line.asserted  # reading FIFO_DATA cleared A_FULL
    # Each edge comes when 17 samples wait: a read every 170 ms at 100 Hz, never a full FIFO.
    assert all(INT_THRESHOLD_SAMPLES <= n <= INT_THRESHOLD_SAMPLES + 3 for n in sizes), sizes
    assert 0.12 < float(np.median(gaps[1:])) < 0.30, gaps
    assert ppg.dropped_samples == 0 and ppg.data_ready.edges - edges0 == 4
    ppg.close()
    assert ppg.data_ready is None


def test_no_int_pin_leaves_interrupts_off_and_the_fifo_polled():
    rig = Rig(SteppedClock(), pins=False)
    ppg = Max30102(rig.bus, clock=rig.clock).open()
    assert rig.ppg_chip.regs.get("INTR_ENABLE_1") == 0
    assert ppg.data_ready is None
    assert ppg.poll_interval_s == pytest.approx(FIFO_DEPTH / 100 / 3)
    rig.clock.advance(0.1)
    assert len(ppg.read()[0].samples) == 10
    rig.close()


def test_a_stuck_fifo_raises_no_int_and_an_unplugged_chip_lets_it_float_high(rig):
    ppg = rig.ppg().open()
    assert ppg.data_ready.wait(1.0)
    ppg.data_ready.consume()
    ppg.read()
    rig.ppg_chip.fifo_stuck = True
    assert not ppg.data_ready.wait(0.5)
    rig.ppg_chip.fifo_stuck = False
    assert ppg.data_ready.wait(1.0)
    rig.bus.detach(0x57)
    assert not rig.int_line.asserted  # the pull-up holds the line while nobody drives it
    ppg.data_ready.consume()
    assert not ppg.data_ready.wait(0.4)


def test_int_pin_in_use_falls_back_to_polling(rig, caplog):
    holder = DigitalInputDevice(INT_PIN, pin_factory=rig.factory)  # something else has GPIO17
    ppg = rig.ppg().open()
    assert ppg.data_ready is None
    assert ppg.poll_interval_s == pytest.approx(FIFO_DEPTH / 100 / 3)
    assert "INT on GPIO 17 unavailable" in caplog.text and "polling" in caplog.text
    holder.close()


def test_bus_reader_reads_the_ppg_on_its_edges(rig):
    """With INT the reader reads when 17 samples wait, not on its 107 ms timer: fewer, fuller
    reads and a contiguous series."""
    sensor = Sensor("ppg", FifoChip(rig.ppg(), rig.clock), rig.clock)
    blocks = []
    reader = BusReader("i2c-1", [sensor], blocks.append, rig.clock)
    reader.start()
    time.sleep(1.5)
    reader.stop()
    ir = [b for b in blocks if b.channel == "ppg_ir"]
    sizes = [len(b.samples) for b in ir]
    assert len(ir) >= 5 and float(np.median(sizes)) >= INT_THRESHOLD_SAMPLES, sizes
    for a, b in zip(ir, ir[1:]):  # each block starts where the previous ended
        assert b.t0_ns == a.t0_ns + round(len(a.samples) * 1e9 / 100)
    assert sensor.status.state == "ok" and sensor.dropped_samples == 0


# -- ADS1115 ALERT/RDY ---------------------------------------------------------------------------
def test_rdy_falls_when_a_single_shot_conversion_ends():
    clock = SteppedClock()
    rig = Rig(clock)
    adc = rig.adc(data_rate_sps=128)
    adc.open()
    start = adc._config(0, 2.048, single_shot=True, start=True)
    rig.bus.write_i2c_block_data(0x48, 1, list(start.to_bytes(2, "big")))
    assert rig.adc_chip.conversion_ready_mode and not rig.rdy_line.asserted
    clock.advance(0.5 / 128)
    time.sleep(0.02)  # the scheduler looks every millisecond whether the clock moved
    assert not rig.rdy_line.asserted
    clock.advance(0.6 / 128)
    deadline = time.monotonic() + 1.0
    while not rig.rdy_line.asserted and time.monotonic() < deadline:
        time.sleep(0.001)
    assert rig.rdy_line.asserted
    rig.close()


def test_read_voltage_waits_for_rdy_instead_of_polling_the_os_bit(rig):
    adc = rig.adc(data_rate_sps=860)
    adc.open()
    n = 40
    before = rig.bus.transactions
    volts = [adc.read_voltage(0, 2.048) for _ in range(n)]
    per_read = (rig.bus.transactions - before) / n
    # CONFIG write + CONVERSION read; a lost edge costs one OS-bit read (a loaded host).
    assert adc.missed_ready_edges <= n // 4
    assert per_read == pytest.approx(2 + adc.missed_ready_edges / n)
    assert all(0.1 <= v <= 1.1 for v in volts)
    assert adc.ready_pin.edges >= n - adc.missed_ready_edges


def test_rdy_pulses_after_each_continuous_conversion(rig):
    adc = rig.adc(data_rate_sps=128)
    adc.open()
    adc.start_continuous(0, 2.048)
    edges0 = adc.ready_pin.edges
    time.sleep(0.3)
    pulses = adc.ready_pin.edges - edges0
    assert 0.3 * 128 * 0.6 <= pulses <= 0.3 * 128 + 2, pulses
    adc.close()


def test_stuck_conversion_with_rdy_times_out(rig):
    adc = rig.adc()
    adc.open()
    rig.adc_chip.conversion_stuck = True
    with pytest.raises(TimeoutError, match="not ready"):
        adc.read_voltage(0, 2.048)
    assert adc.missed_ready_edges == 1


def test_sampler_on_rdy_keeps_its_rate(rig):
    adc = rig.adc(data_rate_sps=860)
    channels = [AnalogChannel("ecg", 0, 250.0, 2.048, lambda v: v, "V"),
                AnalogChannel("eda", 1, 32.0, 2.048, lambda v: v, "V")]
    sensor = Sensor("adc", ScannedAdc(adc, AnalogSampler(adc, channels, rig.clock)), rig.clock)
    blocks = []
    reader = BusReader("i2c-1", [sensor], blocks.append, rig.clock)
    reader.start()
    time.sleep(1.2)
    reader.stop()
    ecg = sum(len(b.samples) for b in blocks if b.channel == "ecg")
    assert ecg >= 0.8 * 250 * 1.0, ecg
    assert adc.ready_pin.edges >= ecg
