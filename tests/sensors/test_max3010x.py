"""The MAX30102/MAX30101 driver against the register-level emulator, on a stepped clock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from sensors.bus import SMBUS_BLOCK_MAX, ChipIdError
from sensors.clock import SteppedClock
from sensors.emulated.i2c import EmulatedI2CBus
from sensors.emulated.max3010x import REFERENCE_COUNTS, EmulatedMax30101, EmulatedMax30102
from sensors.max3010x import (
    ADC_RANGES_NA,
    AVERAGING,
    FIFO_DEPTH,
    PULSE_WIDTHS_US,
    SAMPLE_RATES_HZ,
    Max30101,
    Max30102,
    decode_fifo,
)

ADDRESS = 0x57


def constant(red=0.8, ir=1.0, green=0.6):
    levels = {"red": red, "ir": ir, "green": green}
    return lambda t: {led: np.full(t.shape, level) for led, level in levels.items()}


def pulse(t):
    """A finger-like signal: DC plus a 1.2 Hz cardiac wave, different on each LED."""
    beat = np.sin(2 * np.pi * 1.2 * t)
    return {"red": 0.8 + 0.02 * beat, "ir": 1.0 + 0.03 * beat, "green": 0.5 + 0.05 * beat}


def ramp(t):
    """Intensity that rises with time, so each sample's position can be told from its value."""
    return {"red": 0.1 + 0.05 * t, "ir": 0.2 + 0.05 * t, "green": 0.3 + 0.05 * t}


class RecordingBus(EmulatedI2CBus):
    """The emulated bus, remembering the length of every block read."""

    def __init__(self) -> None:
        super().__init__(bus_number=1)
        self.block_reads: list[tuple[int, int]] = []

    def read_i2c_block_data(self, i2c_addr, register, length):
        self.block_reads.append((register, length))
        return super().read_i2c_block_data(i2c_addr, register, length)


@dataclass
class Rig:
    clock: SteppedClock
    bus: RecordingBus
    emu: EmulatedMax30102
    dev: Max30102


def rig(source=pulse, chip=EmulatedMax30102, driver=Max30102, chip_kw=None, **driver_kw) -> Rig:
    """A driver and its emulated chip on one bus; the clock starts at 5 s."""
    clock = SteppedClock(start_ns=5_000_000_000)
    bus = RecordingBus()
    emu = bus.attach(ADDRESS, chip(clock, source, **(chip_kw or {})))
    return Rig(clock, bus, emu, driver(bus, clock=clock, **driver_kw))


def expected_counts(emu, source, block, led, averaging=1, rate_hz=None):
    """Counts the emulator's model gives for ``source`` at the driver's time stamps."""
    raw_period_s = 1.0 / (rate_hz or block.rate_hz * averaging)
    t_s = block.times_ns()[:, None] / 1e9 - raw_period_s * np.arange(averaging - 1, -1, -1)[None, :]
    return emu.counts(led, source(t_s.ravel())[led].reshape(t_s.shape))


# -- configuration --------------------------------------------------------------------------------
def test_configuration_lands_in_registers_as_encoded():
    r = rig(
        mode="spo2", sample_rate_hz=400, sample_averaging=4, pulse_width_us=215, adc_range_na=8192,
        led_current_ma={"red": 10.2, "ir": 25.0}, fifo_rollover=True)
    r.dev.open()
    # SPO2_CONFIG: ADC_RGE [6:5] = 8192 nA (code 2), SR [4:2] = 400 Hz (code 3),
    # LED_PW [1:0] = 215 us (code 2)
    assert r.emu.regs.get("SPO2_CONFIG") == (2 << 5) | (3 << 2) | 2
    # FIFO_CONFIG: SMP_AVE [7:5] = 4 (code 2), ROLLOVER b4
    assert r.emu.regs.get("FIFO_CONFIG") == (2 << 5) | (1 << 4)
    assert r.emu.regs.get("MODE_CONFIG") == 0b011  # SpO2, not shut down
    assert r.emu.regs.get("LED1_PA") == round(10.2 / 0.2)
    assert r.emu.regs.get("LED2_PA") == round(25.0 / 0.2)
    assert r.emu.led_current_ma("ir") == pytest.approx(25.0)
    pointers = ("FIFO_WR_PTR", "OVF_COUNTER", "FIFO_RD_PTR")
    assert [r.emu.peek(name) for name in pointers] == [0, 0, 0]
    assert r.emu.regs.get("INTR_STATUS_1") == 0  # PWR_RDY from the reset was read and cleared


def test_multi_led_slots_and_green_current_on_max30101():
    r = rig(chip=EmulatedMax30101, driver=Max30101, mode="multi_led",
                               led_current_ma={"green": 12.0})
    r.dev.open()
    assert r.emu.regs.get("MODE_CONFIG") == 0b111
    assert r.emu.regs.get("MULTI_LED_CTRL1") == (0b010 << 4) | 0b001  # SLOT1 red, SLOT2 IR
    assert r.emu.regs.get("MULTI_LED_CTRL2") == 0b011  # SLOT3 green, SLOT4 off
    assert r.emu.regs.get("LED3_PA") == 60
    assert r.emu.led_current_ma("red") == pytest.approx(7.0)  # unnamed active LEDs default to 7 mA


def test_unused_led_is_switched_off_in_hr_mode():
    r = rig(mode="hr")
    r.dev.open()
    assert r.emu.regs.get("MODE_CONFIG") == 0b010
    assert r.emu.regs.get("LED1_PA") > 0
    assert r.emu.regs.get("LED2_PA") == 0


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"sample_rate_hz": 123}, ["sample_rate_hz", "123", "3200"]),
        ({"pulse_width_us": 100}, ["pulse_width_us", "69, 118, 215, 411"]),
        ({"adc_range_na": 1000}, ["adc_range_na", "16384"]),
        ({"sample_averaging": 3}, ["sample_averaging", "1, 2, 4, 8, 16, 32"]),
        ({"mode": "multi_led"}, ["MAX30102", "mode", "hr, spo2"]),
        ({"led_current_ma": {"red": 60.0}}, ["led_current_ma", "'red'", "51"]),
        ({"led_current_ma": {"blue": 1.0}}, ["led_current_ma", "'blue'", "red, ir"]),
        ({"sample_rate_hz": 1000, "pulse_width_us": 411},
         ["pulse_width_us=411", "1000", "69, 118"]),
        ({"sample_rate_hz": 3200, "pulse_width_us": 69}, ["3200", "spo2", "none"]),
    ],
)
def test_invalid_settings_name_the_setting_and_allowed_values(kwargs, words):
    with pytest.raises(ValueError) as err:
        Max30102(EmulatedI2CBus(), clock=SteppedClock(), **kwargs)
    for word in words:
        assert word in str(err.value)


def test_hr_mode_allows_3200_hz_with_short_pulses():
    r = rig(mode="hr", sample_rate_hz=3200, pulse_width_us=69)
    r.dev.open()
    r.clock.advance(0.005)
    (red,) = r.dev.read()
    assert len(red) == 16 and red.rate_hz == 3200


def test_wrong_part_id_raises_chip_id_error_and_leaves_chip_alone():
    r = rig(chip_kw={"part_id": 0x11})
    with pytest.raises(ChipIdError) as err:
        r.dev.open()
    message = str(err.value)
    assert "0x57" in message and "0x11" in message and "0x15" in message and "i2c-1" in message
    assert r.emu.regs.get("MODE_CONFIG") == 0 and r.emu.regs.get("SPO2_CONFIG") == 0
    assert not r.dev.is_open


def test_revision_id_is_read():
    r = rig(chip_kw={"rev_id": 0x07})
    r.dev.open()
    assert r.dev.revision_id == 0x07


def test_reset_that_never_clears_times_out_on_the_deadline():
    r = rig(chip_kw={"reset_stuck": True})
    t_start = r.clock.now_ns()
    with pytest.raises(TimeoutError, match="MAX30102"):
        r.dev.open()
    waited_s = (r.clock.now_ns() - t_start) / 1e9
    assert 0.1 <= waited_s < 0.2


# -- samples ---------------------------------------------------------------------------------------
def test_exact_sample_count_after_advancing_the_clock():
    r = rig()
    r.dev.open()
    r.clock.advance(0.25)
    red, ir = r.dev.read()
    assert (red.channel, ir.channel) == ("ppg_red", "ppg_ir")
    assert len(red) == len(ir) == 25 and red.unit == "counts" and red.rate_hz == 100
    assert red.times_ns()[-1] == r.clock.now_ns()  # the newest sample was taken at read time
    r.clock.advance(0.07)
    assert len(r.dev.read()[0]) == 7
    assert r.dev.read() == []


def test_decoded_counts_equal_the_emulator_model_for_a_sine():
    r = rig(source=pulse)
    r.dev.open()
    r.clock.advance(0.3)
    red, ir = r.dev.read()
    np.testing.assert_array_equal(red.samples, expected_counts(r.emu, pulse, red, "red"))
    np.testing.assert_array_equal(ir.samples, expected_counts(r.emu, pulse, ir, "ir"))
    assert np.ptp(ir.samples) > 1000  # the cardiac wave is visible, not a flat line


def test_reference_intensity_gives_about_120000_counts_on_ir():
    r = rig(source=constant(red=0.5, ir=1.0))
    r.dev.open()
    r.clock.advance(0.1)
    red, ir = r.dev.read()
    assert np.all(ir.samples == REFERENCE_COUNTS)
    assert np.all(red.samples == REFERENCE_COUNTS // 2)


def test_gain_follows_pulse_width_range_and_current():
    r = rig(source=constant(ir=1.0), pulse_width_us=215, adc_range_na=16384,
                               led_current_ma={"red": 7.0, "ir": 14.0})
    r.dev.open()
    r.clock.advance(0.1)
    _, ir = r.dev.read()
    model = REFERENCE_COUNTS * (215 / 411) * (4096 / 16384) * (14.0 / 7.0)
    assert abs(ir.samples[0] - model) <= 4  # 17-bit resolution: 2-count steps


def test_saturation_clips_at_18_bits():
    r = rig(source=constant(ir=5.0), adc_range_na=2048)
    r.dev.open()
    r.clock.advance(0.1)
    _, ir = r.dev.read()
    assert np.all(ir.samples == 2**18 - 1)


@pytest.mark.parametrize("pulse_width_us, zero_bits", [(69, 3), (118, 2), (215, 1)])
def test_lower_resolutions_zero_the_low_bits(pulse_width_us, zero_bits):
    r = rig(source=pulse, pulse_width_us=pulse_width_us)
    r.dev.open()
    r.clock.advance(0.3)
    for block in r.dev.read():
        counts = block.samples.astype(np.int64)
        assert np.all(counts & ((1 << zero_bits) - 1) == 0)
        assert np.any(counts & (1 << zero_bits))  # the next bit up does carry data


def test_full_resolution_uses_the_low_bits():
    r = rig(source=pulse, pulse_width_us=411)
    r.dev.open()
    r.clock.advance(0.3)
    counts = r.dev.read()[1].samples.astype(np.int64)
    assert np.any(counts & 1)


@pytest.mark.parametrize(
    "driver, chip, mode, channels",
    [
        (Max30102, EmulatedMax30102, "hr", ("ppg_red",)),
        (Max30102, EmulatedMax30102, "spo2", ("ppg_red", "ppg_ir")),
        (Max30101, EmulatedMax30101, "spo2", ("ppg_red", "ppg_ir")),
        (Max30101, EmulatedMax30101, "multi_led", ("ppg_red", "ppg_ir", "ppg_green")),
    ],
)
def test_modes_give_one_block_per_led(driver, chip, mode, channels):
    r = rig(source=pulse, chip=chip, driver=driver, mode=mode)
    r.dev.open()
    r.clock.advance(0.2)
    blocks = r.dev.read()
    assert tuple(b.channel for b in blocks) == channels == r.dev.channels
    for block in blocks:
        assert len(block) == 20
        led = block.channel.removeprefix("ppg_")
        np.testing.assert_array_equal(block.samples, expected_counts(r.emu, pulse, block, led))
    # FIFO reads are whole samples in SMBus-sized blocks.
    sample_bytes = 3 * len(channels)
    fifo_reads = [length for register, length in r.bus.block_reads if register == 0x07]
    assert sum(fifo_reads) == 20 * sample_bytes
    assert all(length <= SMBUS_BLOCK_MAX and length % sample_bytes == 0 for length in fifo_reads)


@pytest.mark.parametrize("averaging", [2, 4])
def test_averaging_divides_the_rate_and_averages_raw_samples(averaging):
    r = rig(source=pulse, sample_rate_hz=200, sample_averaging=averaging)
    r.dev.open()
    r.clock.advance(0.3)
    red, ir = r.dev.read()
    assert red.rate_hz == 200 / averaging
    assert len(red) == round(0.3 * 200 / averaging)
    expected = expected_counts(r.emu, pulse, ir, "ir", averaging, rate_hz=200)
    np.testing.assert_array_equal(ir.samples, expected)
    assert r.dev.poll_interval_s == pytest.approx(FIFO_DEPTH / (200 / averaging) / 3)


# -- FIFO pointers ---------------------------------------------------------------------------------
def test_reads_across_the_pointer_wrap():
    r = rig(source=ramp)
    r.dev.open()
    r.clock.advance(0.25)
    first = r.dev.read()[0]
    assert r.emu.peek("FIFO_RD_PTR") == 25
    r.clock.advance(0.20)  # the write pointer passes 31 -> 0 and stops at 13
    assert r.emu.peek("FIFO_WR_PTR") == 13 and r.emu.fifo_level == 20
    second = r.dev.read()[0]
    assert len(second) == 20 and r.emu.peek("FIFO_RD_PTR") == 13
    assert second.t0_ns == first.t_end_ns
    np.testing.assert_array_equal(second.samples, expected_counts(r.emu, ramp, second, "red"))
    assert r.dev.dropped_samples == 0 and r.dev.overflow_events == 0


def test_full_fifo_with_lost_samples_yields_32():
    r = rig(source=ramp)
    r.dev.open()
    r.clock.advance(0.35)  # 35 samples, room for 32
    assert r.emu.peek("FIFO_WR_PTR") == r.emu.peek("FIFO_RD_PTR")
    assert r.emu.peek("OVF_COUNTER") == 3
    red, ir = r.dev.read()
    assert len(red) == FIFO_DEPTH
    assert r.dev.dropped_samples == 3 == r.emu.samples_lost and r.dev.overflow_events == 1
    # The FIFO stopped on full: it holds the 32 oldest samples, the first one 10 ms after start.
    assert red.t0_ns == 5_010_000_000
    np.testing.assert_array_equal(red.samples, expected_counts(r.emu, ramp, red, "red"))
    np.testing.assert_array_equal(ir.samples, expected_counts(r.emu, ramp, ir, "ir"))
    assert r.emu.peek("OVF_COUNTER") == 0  # cleared by reading a sample


def test_overflow_without_rollover_counts_losses_and_breaks_the_next_block():
    r = rig(source=ramp)
    r.dev.open()
    r.clock.advance(0.1)
    before = r.dev.read()[0]
    r.clock.advance(0.5)  # 50 new samples, 32 fit
    full = r.dev.read()[0]
    assert len(full) == 32 and r.dev.dropped_samples == r.emu.samples_lost == 18
    assert full.t0_ns == before.t_end_ns  # what the FIFO kept follows the previous block
    r.clock.advance(0.1)
    after = r.dev.read()[0]
    gap_samples = (after.t0_ns - full.t_end_ns) / full.period_ns
    assert gap_samples == pytest.approx(r.dev.dropped_samples)
    for block in (full, after):
        np.testing.assert_array_equal(block.samples, expected_counts(r.emu, ramp, block, "red"))


def test_rollover_keeps_the_newest_samples_and_breaks_this_block():
    r = rig(source=ramp, fifo_rollover=True)
    r.dev.open()
    r.clock.advance(0.1)
    before = r.dev.read()[0]
    r.clock.advance(0.5)
    newest = r.dev.read()[0]
    assert len(newest) == 32 and r.dev.dropped_samples == r.emu.samples_lost == 18
    assert newest.times_ns()[-1] == r.clock.now_ns()
    assert (newest.t0_ns - before.t_end_ns) / newest.period_ns == pytest.approx(18)
    np.testing.assert_array_equal(newest.samples, expected_counts(r.emu, ramp, newest, "red"))
    r.clock.advance(0.1)
    assert r.dev.read()[0].t0_ns == newest.t_end_ns


@pytest.mark.parametrize("rollover", [False, True])
def test_saturated_overflow_counter_still_counts_every_lost_sample(rollover):
    r = rig(source=ramp, fifo_rollover=rollover)
    r.dev.open()
    r.clock.advance(2.0)  # 200 samples into a 32-deep FIFO
    assert r.emu.peek("OVF_COUNTER") == 31
    r.dev.read()
    r.clock.advance(0.1)
    r.dev.read()
    assert r.dev.dropped_samples == r.emu.samples_lost == 168


def test_partial_fifo_read_leaves_the_read_pointer():
    r = rig(source=ramp)
    r.dev.open()
    r.clock.advance(0.05)
    head = r.bus.read_i2c_block_data(ADDRESS, 0x07, 3)  # red half of a 6-byte SpO2 sample
    assert r.emu.peek("FIFO_RD_PTR") == 0 and r.emu.fifo_level == 5
    whole = r.bus.read_i2c_block_data(ADDRESS, 0x07, 6)
    assert whole[:3] == head  # the sample is read again from its first byte
    assert r.emu.peek("FIFO_RD_PTR") == 1 and r.emu.fifo_level == 4
    red, ir = decode_fifo(bytes(whole), 2)[0]
    first_t_s = np.array([5.01])
    assert red == r.emu.counts("red", ramp(first_t_s)["red"])[0]
    assert ir == r.emu.counts("ir", ramp(first_t_s)["ir"])[0]
    assert len(r.dev.read()[0]) == 4


# -- time stamps -----------------------------------------------------------------------------------
def test_time_stamps_stay_contiguous_across_uneven_reads():
    r = rig(source=pulse)
    r.dev.open()
    blocks = []
    for step_s in (0.05, 0.13, 0.07, 0.2, 0.011, 0.3, 0.09):
        r.clock.advance(step_s)
        blocks += [b for b in r.dev.read() if b.channel == "ppg_ir"]
    for previous, block in itertools.pairwise(blocks):
        assert block.t0_ns == previous.t_end_ns
    samples = np.concatenate([b.samples for b in blocks])
    times = np.concatenate([b.times_ns() for b in blocks])
    assert len(samples) == r.emu.samples_produced
    np.testing.assert_array_equal(samples, r.emu.counts("ir", pulse(times / 1e9)["ir"]))


def test_drifting_chip_clock_is_reanchored():
    # The chip's oscillator runs 5 % fast against the host clock.
    host, chip_clock = SteppedClock(), SteppedClock()
    bus = EmulatedI2CBus()
    bus.attach(ADDRESS, EmulatedMax30102(chip_clock, pulse))
    dev = Max30102(bus, clock=host).open()
    t0s, ends = [], []
    for _ in range(40):
        host.advance(0.1)
        chip_clock.advance(0.105)
        (red, _) = dev.read()
        t0s.append(red.t0_ns)
        ends.append(red.t_end_ns)
        # The newest sample never strays more than a few periods from when it was read.
        assert abs(red.times_ns()[-1] - host.now_ns()) <= 3 * red.period_ns
    breaks = sum(t0 != end for t0, end in zip(t0s[1:], ends))
    assert 1 <= breaks < 20
    assert dev.dropped_samples == 0


def test_poll_interval_keeps_the_fifo_from_overflowing():
    r = rig(sample_rate_hz=400, pulse_width_us=411)
    r.dev.open()
    total = 0
    for _ in range(round(5.0 / r.dev.poll_interval_s)):
        r.clock.advance(r.dev.poll_interval_s)
        blocks = r.dev.read()
        total += len(blocks[0]) if blocks else 0
    assert r.dev.dropped_samples == 0 and r.emu.samples_lost == 0
    assert total == r.emu.samples_produced


# -- temperature, life cycle ----------------------------------------------------------------------
@pytest.mark.parametrize("temperature_c", [31.25, -5.5, 0.0625, 24.9])
def test_die_temperature(temperature_c):
    r = rig(chip_kw={"temperature_c": temperature_c})
    r.dev.open()
    t_start = r.clock.now_ns()
    assert r.dev.read_temperature_c() == pytest.approx(round(temperature_c * 16) / 16)
    assert r.clock.now_ns() - t_start >= 29_000_000
    assert r.emu.regs.get("DIE_TEMP_CONFIG") == 0  # TEMP_EN cleared itself


def test_close_shuts_down_is_idempotent_and_stops_sampling():
    r = rig()
    with r.dev:
        assert r.dev.is_open
        r.clock.advance(0.1)
        assert len(r.dev.read()[0]) == 10
    assert r.emu.regs.get_field("MODE_CONFIG", "SHDN") == 1
    r.dev.close()
    r.dev.close()
    produced = r.emu.samples_produced
    r.clock.advance(1.0)
    assert r.emu.fifo_level == 0 and r.emu.samples_produced == produced
    with pytest.raises(RuntimeError, match="not open"):
        r.dev.read()


def test_reopen_after_close_resets_and_samples_again():
    r = rig()
    r.dev.open()
    r.dev.close()
    r.dev.open()
    assert r.emu.regs.get_field("MODE_CONFIG", "SHDN") == 0
    r.clock.advance(0.1)
    assert len(r.dev.read()[0]) == 10


def test_emulator_does_not_sample_before_a_mode_is_set():
    clock = SteppedClock()
    emu = EmulatedMax30102(clock, pulse)
    clock.advance(1.0)
    assert emu.fifo_level == 0 and emu.samples_produced == 0
    assert emu.regs.get_field("INTR_STATUS_1", "PWR_RDY") == 1


def test_emulator_status_flags_clear_on_read():
    r = rig()
    r.dev.open()
    r.clock.advance(0.32)
    status = r.bus.read_byte_data(ADDRESS, 0x00)
    assert status & 0x40 and status & 0x80  # PPG_RDY, and A_FULL with FIFO_A_FULL = 0 (32 unread)
    assert r.bus.read_byte_data(ADDRESS, 0x00) == 0


def test_table_constants_match_the_register_codes():
    assert SAMPLE_RATES_HZ[0b001] == 100 and SAMPLE_RATES_HZ[0b111] == 3200
    assert PULSE_WIDTHS_US[0b11] == 411 and ADC_RANGES_NA[0b01] == 4096 and AVERAGING[0b101] == 32
