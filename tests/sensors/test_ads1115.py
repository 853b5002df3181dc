"""The ADS1115 driver and the channel scanner against the register-level emulator."""

from __future__ import annotations

import errno
from itertools import pairwise

import numpy as np
import pytest

from sensors.ads1115 import (
    ADS1115_REGISTERS,
    DATA_RATES_SPS,
    PGA_FULL_SCALE_V,
    Ads1115,
    AnalogChannel,
    AnalogSampler,
)
from sensors.bus import ChipIdError
from sensors.clock import SteppedClock
from sensors.emulated.ads1115 import EmulatedAds1115
from sensors.emulated.i2c import EmulatedI2CBus, RegisterChip
from sensors.regmap import Register, RegisterFile, RegisterMap

PGAS_V = [PGA_FULL_SCALE_V[c] for c in range(6)]


def rig(source, *, data_rate_sps=860, **chip_kw):
    clock = SteppedClock(start_ns=2_000_000_000)
    bus = EmulatedI2CBus(1)
    chip = bus.attach(0x48, EmulatedAds1115(clock, source, **chip_kw))
    adc = Ads1115(bus, 0x48, clock, data_rate_sps=data_rate_sps, bus_number=1)
    adc.open()
    return clock, bus, chip, adc


def constant(volts_by_ain):
    return lambda ain, t: np.full(np.shape(t), volts_by_ain[ain])


# -- identification --------------------------------------------------------------------------
def test_no_chip_is_an_oserror_naming_it():
    bus = EmulatedI2CBus(1)
    with pytest.raises(OSError) as err:
        Ads1115(bus, 0x49, SteppedClock()).open()
    assert (
        err.value.errno == errno.EREMOTEIO
        and "ADS1115" in str(err.value)
        and "0x49" in str(err.value)
    )


def test_a_different_chip_at_the_address_is_not_taken_for_an_ads1115():
    # A TMP102-like temperature sensor: pointer-addressed, but its registers do not hold
    # what is written to them the way the ADS1115's thresholds do.
    tmp102 = RegisterMap(
        "TMP102",
        [
            Register("TEMP", 0, reset=0x19, access="r"),
            Register("CONF", 1, reset=0x60),
            Register("TLOW", 2, reset=0x4B, access="r"),
            Register("THIGH", 3, reset=0x50, access="r"),
        ],
    )
    bus = EmulatedI2CBus(1)
    bus.attach(0x48, RegisterChip(RegisterFile(tmp102)))
    with pytest.raises(ChipIdError) as err:
        Ads1115(bus, 0x48, SteppedClock(), bus_number=1).open()
    msg = str(err.value)
    assert "ADS1115" in msg and "i2c-1" in msg and "0x48" in msg and "LO_THRESH" in msg


def test_open_restores_thresholds_and_powers_down():
    _, _, chip, _ = rig(constant([0, 0, 0, 0]))
    assert chip.regs.get("LO_THRESH") == 0x8000 and chip.regs.get("HI_THRESH") == 0x7FFF
    assert chip.regs.get_field("CONFIG", "MODE") == 1 and not chip.converting


@pytest.mark.parametrize(
    "kw, word", [({"address": 0x50}, "address"), ({"data_rate_sps": 100}, "data_rate_sps")]
)
def test_bad_settings_are_refused_by_name(kw, word):
    with pytest.raises(ValueError, match=word):
        Ads1115(EmulatedI2CBus(1), clock=SteppedClock(), **kw)


# -- single shot -----------------------------------------------------------------------------
@pytest.mark.parametrize("pga_v", PGAS_V)
def test_single_shot_matches_the_input_within_one_lsb(pga_v):
    volts = [0.83 * pga_v, 0.31 * pga_v, 0.0, 0.997 * pga_v]
    _clock, _, _, adc = rig(constant(volts))
    for ain, v in enumerate(volts):
        v = min(v, 3.3 + 0.3)  # the 6.144 V range still cannot see past the supply
        assert abs(adc.read_voltage(ain, pga_v) - v) <= pga_v / 32768


def test_single_shot_clips_at_full_scale():
    _, _, _, adc = rig(constant([1.0, 0, 0, 0]))
    assert adc.read_voltage(0, 0.512) == 0.512 * 32767 / 32768


def test_single_shot_waits_for_the_conversion():
    clock, _, _chip, adc = rig(
        lambda ain, t: np.asarray(t, float), data_rate_sps=128, rate_error=-0.08
    )
    t0_ns = clock.now_ns()
    v = adc.read_voltage(0, 6.144)  # the input is the time in seconds: 2.0 V at the start
    took_s = (clock.now_ns() - t0_ns) / 1e9
    assert 1 / (128 * 0.92) <= took_s < 1.2 / 128
    assert abs(v - 2.0) <= 6.144 / 32768


def test_a_conversion_that_never_finishes_times_out():
    _, _, _, adc = rig(constant([0.1] * 4), data_rate_sps=860, rate_error=-0.95)
    with pytest.raises(TimeoutError, match="ADS1115.*AIN2"):
        adc.read_voltage(2, 0.512)


@pytest.mark.parametrize("dr", DATA_RATES_SPS)
@pytest.mark.parametrize("ain, pga_v", [(0, 6.144), (1, 4.096), (2, 1.024), (3, 0.256)])
def test_config_encodings_land_in_the_chip(dr, ain, pga_v):
    _, _, chip, adc = rig(constant([0.1] * 4), data_rate_sps=dr)
    adc.read_voltage(ain, pga_v)
    f = ADS1115_REGISTERS["CONFIG"].decode(chip.regs.get("CONFIG"))
    assert f["MUX"] == 4 + ain
    assert PGA_FULL_SCALE_V[f["PGA"]] == pga_v
    assert DATA_RATES_SPS[f["DR"]] == dr
    assert f["MODE"] == 1 and f["COMP_QUE"] == 0b11


def test_differential_mux_and_rails_in_the_emulator():
    clock = SteppedClock()
    chip = EmulatedAds1115(clock, constant([0.5, 0.2, 5.0, -1.0]))
    codes = [int(chip.convert(0, mux, 1)[0]) for mux in range(8)]
    lsb = 4.096 / 32768
    assert codes[0] == round(0.3 / lsb)  # AIN0 - AIN1
    assert codes[1] == round((0.5 + 0.3) / lsb)  # AIN0 - AIN3, AIN3 clamped at -0.3 V
    assert codes[6] == round(3.6 / lsb)  # AIN2 clamped at VDD + 0.3 V
    assert codes[7] == round(-0.3 / lsb)


# -- continuous ------------------------------------------------------------------------------
def test_continuous_mode_follows_the_input():
    slope_v_per_s = 0.05
    clock, _, chip, adc = rig(
        lambda ain, t: (ain + 1) * slope_v_per_s * (np.asarray(t, float) - 2.0), data_rate_sps=250
    )
    adc.start_continuous(1, 2.048)
    assert chip.regs.get_field("CONFIG", "MODE") == 0
    lsb = 2.048 / 32768
    for _ in range(20):
        clock.advance(0.0371)
        now_s = clock.now_ns() / 1e9
        v = adc.read_latest_voltage()
        # The newest result sampled its input between 1 and 2 conversion times ago.
        lo, hi = (2 * slope_v_per_s * (now_s - 2.0 - k / 250) for k in (2, 1))
        assert lo - lsb <= v <= hi + lsb


def test_continuous_first_read_waits_for_a_conversion_and_a_config_write_restarts():
    clock, _bus, chip, adc = rig(constant([0.0, 0.3, 0.0, 0.1]), data_rate_sps=8)
    adc.start_continuous(1, 4.096)
    t0_ns = clock.now_ns()
    assert abs(adc.read_latest_voltage() - 0.3) <= 4.096 / 32768
    assert clock.now_ns() - t0_ns >= 1e9 / 8
    adc.start_continuous(3, 4.096)
    assert abs(adc.read_latest_voltage() - 0.1) <= 4.096 / 32768
    assert chip.regs.get_field("CONFIG", "MUX") == 7


def test_reading_continuous_without_starting_is_an_error():
    _, _, _, adc = rig(constant([0.0] * 4))
    with pytest.raises(RuntimeError, match="start_continuous"):
        adc.read_latest_voltage()


def test_conversion_ready_pin_setup():
    _, _, chip, adc = rig(constant([0.2] * 4))
    assert not chip.conversion_ready_mode
    adc.enable_conversion_ready_pin()
    adc.read_voltage(0, 0.512)
    assert chip.regs.get("HI_THRESH") & 0x8000 and not chip.regs.get("LO_THRESH") & 0x8000
    assert chip.regs.get_field("CONFIG", "COMP_QUE") != 0b11
    assert chip.conversion_ready_mode


def test_close_stops_continuous_and_is_idempotent():
    _clock, _, chip, adc = rig(constant([0.2] * 4))
    adc.start_continuous(0, 0.512)
    adc.close()
    adc.close()
    assert not chip.converting and chip.regs.get_field("CONFIG", "MODE") == 1
    with pytest.raises(RuntimeError, match="not open"):
        adc.read_voltage(0, 0.512)


# -- scanning --------------------------------------------------------------------------------
def ecg_v(t_s):
    return 1.65 + 0.5 * np.sin(2 * np.pi * 1.2 * np.asarray(t_s, float))


def eda_v(t_s):
    return 0.2 + 0.02 * np.asarray(t_s, float)


def scan_rig():
    clock, _bus, chip, adc = rig(lambda ain, t: ecg_v(t) if ain == 1 else eda_v(t))
    channels = [
        AnalogChannel("ecg", 1, 250, 4.096, lambda v: (v - 1.65) * 1000, "mV"),
        AnalogChannel("eda", 0, 8, 0.512, lambda v: v * 2, "x2"),
    ]
    return clock, chip, AnalogSampler(adc, channels, clock)


def scan(clock, sampler, seconds):
    blocks = []
    end_ns = clock.now_ns() + round(seconds * 1e9)
    while clock.now_ns() < end_ns:
        due = sampler.next_due_ns()
        if due > clock.now_ns():
            clock.advance((due - clock.now_ns()) / 1e9)
        blocks += sampler.poll()
    return blocks


def test_scanning_two_channels_gives_blocks_at_their_rates_with_the_right_values():
    clock, _, sampler = scan_rig()
    t_start_ns = clock.now_ns()
    blocks = scan(clock, sampler, 3.0) + sampler.flush()
    for name, rate_hz, unit, truth, slope, lsb in (
        (
            "ecg",
            250,
            "mV",
            lambda t: (ecg_v(t) - 1.65) * 1000,
            2 * np.pi * 1.2 * 500,
            4.096 / 32768 * 1000,
        ),
        ("eda", 8, "x2", lambda t: eda_v(t) * 2, 0.04, 0.512 / 32768 * 2),
    ):
        mine = [b for b in blocks if b.channel == name]
        assert all(b.rate_hz == rate_hz and b.unit == unit for b in mine)
        for a, b in pairwise(mine):
            assert b.t0_ns == a.t_end_ns
        n = sum(len(b) for b in mine)
        assert abs(n - 3.0 * rate_hz) <= 1
        assert mine[0].t0_ns == t_start_ns
        t_s = np.concatenate([b.times_ns() for b in mine]) / 1e9
        values = np.concatenate([b.samples for b in mine])
        # A conversion runs one conversion time after its slot when the other channel is due too.
        assert np.max(np.abs(values - truth(t_s))) <= slope * 1.01 / 860 + lsb
    block_s = [len(b) / b.rate_hz for b in blocks if b.channel == "ecg"][:-1]
    assert all(0.1 <= s <= 0.25 for s in block_s)
    assert sampler.missed_samples == {"ecg": 0, "eda": 0}


def test_scanner_reanchors_after_a_stall():
    clock, _, sampler = scan_rig()
    blocks = scan(clock, sampler, 1.0)
    clock.advance(0.5)
    t_resume_ns = clock.now_ns()
    blocks += scan(clock, sampler, 1.0) + sampler.flush()
    assert abs(sampler.missed_samples["ecg"] - 125) <= 1
    assert abs(sampler.missed_samples["eda"] - 4) <= 1
    for name, rate_hz in (("ecg", 250), ("eda", 8)):
        mine = [b for b in blocks if b.channel == name]
        gaps = [b.t0_ns - a.t_end_ns for a, b in pairwise(mine)]
        assert sum(g != 0 for g in gaps) == 1
        gap_s = max(gaps) / 1e9
        assert 0.5 - 2 / rate_hz <= gap_s <= 0.5 + 2 / rate_hz
        resumed = [b for b in mine if b.t0_ns >= t_resume_ns]
        assert resumed and resumed[0].t0_ns - t_resume_ns < 5e6


def test_scanner_rides_out_a_short_stall_without_a_gap():
    """A thread late by less than max_late_s catches up; the series stays contiguous."""
    clock, _, sampler = scan_rig()
    blocks = scan(clock, sampler, 1.0)
    clock.advance(0.03)
    blocks += scan(clock, sampler, 1.0) + sampler.flush()
    assert sampler.missed_samples == {"ecg": 0, "eda": 0}
    for name, rate_hz in (("ecg", 250), ("eda", 8)):
        mine = [b for b in blocks if b.channel == name]
        assert all(b.t0_ns == a.t_end_ns for a, b in pairwise(mine))
        assert abs(sum(len(b) for b in mine) - 2.03 * rate_hz) <= 2


def test_scanner_refuses_more_than_the_adc_can_convert():
    _, _, _, adc = rig(constant([0.0] * 4), data_rate_sps=250)
    chans = [
        AnalogChannel("ecg", 1, 250, 4.096, lambda v: v, "V"),
        AnalogChannel("eda", 0, 8, 0.512, lambda v: v, "V"),
    ]
    with pytest.raises(ValueError, match="250 conversions/s"):
        AnalogSampler(adc, chans, adc.clock)
    with pytest.raises(ValueError, match="unique"):
        AnalogSampler(adc, [chans[1], chans[1]], adc.clock)
    with pytest.raises(ValueError, match="pga_v"):
        AnalogChannel("eda", 0, 8, 0.5, lambda v: v, "V")
    with pytest.raises(ValueError, match="ain"):
        AnalogChannel("eda", 4, 8, 0.512, lambda v: v, "V")
