"""Data-ready and lead-off pins on gpiozero's MockFactory, driven as emulated chips drive them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockFactory

from sensors.ads1292r import Ads1292r
from sensors.clock import ScaledClock, SteppedClock
from sensors.emulated.ads1292r import EmulatedAds1292r
from sensors.emulated.pins import EmulatedPinDriver, Ticker
from sensors.emulated.spi import EmulatedSpiDev
from sensors.gpio import DataReadyPin, LeadOffPins


@pytest.fixture
def factory():
    return MockFactory()


def test_falling_edges_are_counted_and_consumed(factory):
    line = EmulatedPinDriver(factory, 17, level=True)
    pin = DataReadyPin(17, pin_factory=factory, name="DRDY")
    assert pin.pending() == 0 and not pin.is_active
    for _ in range(3):
        line.low()
        line.high()  # rising edges do not count on an active-low line
    assert pin.pending() == 3 and pin.edges == 3
    assert pin.consume() == 3 and pin.pending() == 0
    line.low()
    assert pin.is_active and pin.consume() == 1 and pin.edges == 4
    assert line.transitions == 8
    pin.close()


def test_active_high_counts_rising_edges(factory):
    line = EmulatedPinDriver(factory, 5, level=False)
    pin = DataReadyPin(5, pin_factory=factory, active_low=False)
    line.high()
    line.low()
    line.high()
    assert pin.consume() == 2
    pin.close()


def test_open_drain_line_with_pull_up(factory):
    pin = DataReadyPin(4, pin_factory=factory, pull_up=True)  # MAX30102 INT
    line = EmulatedPinDriver(factory, 4)
    assert line.level  # the pull-up holds it high
    line.low()
    assert pin.pending() == 1
    pin.close()
    with pytest.raises(ValueError, match="pull-up cannot be used with an active-high"):
        DataReadyPin(4, pin_factory=factory, pull_up=True, active_low=False)


def test_wait_times_out_without_an_edge(factory):
    EmulatedPinDriver(factory, 17, level=True)
    pin = DataReadyPin(17, pin_factory=factory)
    t0 = time.monotonic()
    assert pin.wait(0.05) is False
    elapsed = time.monotonic() - t0
    assert 0.04 <= elapsed < 1.0
    with pytest.raises(ValueError):
        pin.wait(-1)
    pin.close()


def test_wait_on_a_stepped_clock_does_not_block(factory):
    EmulatedPinDriver(factory, 17, level=True)
    pin = DataReadyPin(17, pin_factory=factory, clock=SteppedClock())
    t0 = time.monotonic()
    assert pin.wait(3600.0) is False
    assert time.monotonic() - t0 < 0.5
    pin.close()


def test_wait_returns_when_an_edge_comes_from_another_thread(factory):
    line = EmulatedPinDriver(factory, 17, level=True)
    pin = DataReadyPin(17, pin_factory=factory)
    calls = []
    pin.when_ready = lambda: calls.append(threading.current_thread().name)
    timer = threading.Timer(0.02, line.low)
    timer.name = "chip"
    t0 = time.monotonic()
    timer.start()
    assert pin.wait(5.0) is True
    assert time.monotonic() - t0 < 2.0
    timer.join()
    assert calls == ["chip"] and pin.consume() == 1
    assert pin.wait(0.0) is False
    pin.close()


def test_close_is_idempotent_and_frees_the_pin(factory):
    pin = DataReadyPin(17, pin_factory=factory)
    pin.close()
    pin.close()
    assert pin.closed
    with pytest.raises(RuntimeError, match="closed"):
        pin.wait(0.01)
    DigitalInputDevice(17, pin_factory=factory).close()


def test_wraps_a_device_made_by_the_caller_and_leaves_it_open(factory):
    device = DigitalInputDevice(22, pull_up=None, active_state=False, pin_factory=factory)
    line = EmulatedPinDriver(factory, 22, level=True)
    pin = DataReadyPin(device)
    line.low()
    assert pin.pending() == 1
    pin.close()
    assert not device.closed and device.when_activated is None
    device.close()


def test_lead_off_pins(factory):
    lo_plus = EmulatedPinDriver(factory, 23)
    lo_minus = EmulatedPinDriver(factory, 24)
    leads = LeadOffPins(23, 24, pin_factory=factory)
    seen = []
    leads.when_changed = seen.append
    assert not leads.lead_off and leads.state() == {"plus": False, "minus": False}
    lo_minus.high()
    assert leads.minus_off and not leads.plus_off and leads.lead_off
    lo_plus.high()
    lo_minus.low()
    lo_plus.low()
    assert not leads.lead_off and leads.lead_off_events == 2
    assert seen == [{"plus": False, "minus": True}, {"plus": True, "minus": True},
                    {"plus": True, "minus": False}, {"plus": False, "minus": False}]
    leads.close()
    leads.close()
    DigitalInputDevice(23, pin_factory=factory).close()


def test_ticker_streams_an_emulated_ads1292r_in_real_time(factory):
    """Threads as in the demo: the ticker moves DRDY, the driver reads in gpiozero's callback."""
    clock = ScaledClock(speed=1.0)
    chip = EmulatedAds1292r(clock, lambda t: np.sin(t), drdy_pin=EmulatedPinDriver(factory, 25))
    spi = EmulatedSpiDev(chip, bus=0, device=1)
    dev = Ads1292r(spi, clock, drdy=25, pin_factory=factory).open()
    with Ticker([spi], period_s=0.002):
        time.sleep(0.4)
        blocks = dev.read()
    dev.close()
    n = sum(len(b) for b in blocks if b.channel == "ecg")
    assert 50 <= n <= 0.5 * 250 + 5
    assert dev.dropped_samples == 0 == chip.frames_lost


def test_ticker_drops_a_failing_chip_and_reports_it(factory):
    def broken(t):
        raise ValueError("simulator crashed")

    clock = ScaledClock(speed=1.0)
    chip = EmulatedAds1292r(clock, broken, drdy_pin=EmulatedPinDriver(factory, 25))
    spi = EmulatedSpiDev(chip)
    spi.mode = 1
    spi.xfer2([0x11])
    spi.xfer2([0x08])  # START: the next tick converts, calling the broken source
    ticker = Ticker([spi], period_s=0.005).start()
    deadline = time.monotonic() + 2.0
    while not ticker.errors and time.monotonic() < deadline:
        time.sleep(0.01)
    ticker.stop()
    assert isinstance(ticker.errors[0], ValueError) and ticker.targets == []


def test_demo_pins_keep_a_bounded_history():
    """gpiozero's MockPin remembers every level change; the demo's pins keep the last few."""
    from gpiozero import DigitalInputDevice

    from sensors.emulated.pins import PIN_HISTORY, EmulatedPinDriver, bounded_mock_factory

    factory = bounded_mock_factory()
    line = EmulatedPinDriver(factory, 17, level=True)
    seen = []
    device = DigitalInputDevice(17, pin_factory=factory, pull_up=None, active_state=False)
    device.when_activated = lambda: seen.append(1)
    try:
        for _ in range(5000):  # 10 000 level changes, a data-ready line's 50 s at 100 Hz
            line.low()
            line.high()
        assert len(seen) == 5000  # every falling edge still reaches the driver
        assert len(line.pin.states) <= 2 * PIN_HISTORY + 1
        assert line.pin.states[-1].state is True and line.transitions == 10_001
    finally:
        device.close()
