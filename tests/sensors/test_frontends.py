"""The GSR divider and AD8232 conversions, alone and through the emulated ADS1115."""

from __future__ import annotations

import numpy as np
import pytest

from sensors.ads1115 import Ads1115
from sensors.clock import SteppedClock
from sensors.emulated.ads1115 import EmulatedAds1115
from sensors.emulated.i2c import EmulatedI2CBus
from sensors.frontends import Ad8232, GsrDivider

EDA_RANGE_US = np.geomspace(0.05, 50.0, 200)


def test_gsr_round_trip_over_the_physiological_range():
    for divider in (GsrDivider(), GsrDivider(47_000, 0.48, 0.003)):
        volts = divider.volts_for(EDA_RANGE_US)
        assert np.all(np.diff(volts) > 0)
        assert np.allclose(divider.to_microsiemens(volts), EDA_RANGE_US, rtol=1e-10, atol=0)


def test_gsr_formula_at_known_points():
    d = GsrDivider()  # 100 kOhm, 0.5 V
    assert d.volts_for(10.0) == pytest.approx(0.25)  # skin 100 kOhm = R_ref: half of V_ex
    assert d.volts_for(1.0) == pytest.approx(0.5 * 1e5 / 1.1e6)
    assert d.to_microsiemens(0.25) == pytest.approx(10.0)


def test_gsr_through_the_adc_is_within_the_documented_resolution():
    divider = GsrDivider()
    clock = SteppedClock()
    state = {"us": 1.0}
    bus = EmulatedI2CBus(1)
    bus.attach(
        0x48,
        EmulatedAds1115(clock, lambda ain, t: divider.volts_for(np.full(np.shape(t), state["us"]))),
    )
    adc = Ads1115(bus, 0x48, clock)
    adc.open()
    for us in EDA_RANGE_US[::10]:
        state["us"] = us
        measured_us = divider.to_microsiemens(adc.read_voltage(0, 0.512))
        # Half an LSB (7.8 uV) of error, through dG/dV = V_ex / (R_ref (V_ex - V)^2).
        v = divider.volts_for(us)
        tol_us = 0.5 * 0.512 / 32768 * 0.5 / (1e5 * (0.5 - v) ** 2) * 1e6
        assert abs(measured_us - us) <= tol_us * 1.01


def test_calibration_recovers_excitation_and_offset():
    truth = GsrDivider(100_000, 0.487, 0.0023)
    resistors = [100e3, 1e6]
    points = [(r, float(truth.volts_for(1e6 / r))) for r in resistors]
    fitted = GsrDivider().calibrate(points)
    assert fitted.v_excitation_v == pytest.approx(0.487, rel=1e-9)
    assert fitted.offset_v == pytest.approx(0.0023, abs=1e-12)
    assert fitted.to_microsiemens(truth.volts_for(3.3)) == pytest.approx(3.3, rel=1e-9)


def test_least_squares_calibration_with_noisy_readings():
    truth = GsrDivider(100_000, 0.512, -0.0011)
    rng = np.random.default_rng(3)
    resistors = np.array([33e3, 100e3, 330e3, 1e6, 3.3e6, 10e6])
    volts = truth.volts_for(1e6 / resistors) + rng.normal(0, 10e-6, len(resistors))
    fitted = GsrDivider().calibrate(zip(resistors, volts))
    assert fitted.v_excitation_v == pytest.approx(0.512, abs=1e-4)
    assert fitted.offset_v == pytest.approx(-0.0011, abs=3e-5)
    uncal = GsrDivider()
    err_fit = abs(fitted.to_microsiemens(truth.volts_for(5.0)) - 5.0)
    err_uncal = abs(uncal.to_microsiemens(truth.volts_for(5.0)) - 5.0)
    assert err_fit < 0.01 < err_uncal


@pytest.mark.parametrize(
    "points, word",
    [
        ([(1e5, 0.25)], "two"),
        ([(1e5, 0.25), (1e5, 0.25)], "too close"),
        ([(-1.0, 0.1), (1e6, 0.2)], "> 0"),
    ],
)
def test_calibration_refuses_points_that_cannot_calibrate(points, word):
    with pytest.raises(ValueError, match=word):
        GsrDivider().calibrate(points)


def test_open_circuit_is_the_input_at_the_zero_volt_rail():
    d = GsrDivider(offset_v=0.001)
    v = np.array([0.0, 0.001, 0.0012, d.volts_for(0.05), d.volts_for(10.0)])
    assert d.is_open_circuit(v).tolist() == [True, True, True, False, False]
    assert not np.any(d.is_open_circuit(d.volts_for(EDA_RANGE_US)))


def test_out_of_range_voltages_do_not_give_nonsense():
    d = GsrDivider()
    g = d.to_microsiemens(np.array([-0.01, 0.0, 0.5, 0.6]))
    assert g[0] == 0.0 and g[1] == 0.0 and np.isinf(g[2]) and np.isinf(g[3])
    with pytest.raises(ValueError, match="microsiemens"):
        d.volts_for(-1.0)
    with pytest.raises(ValueError, match="r_ref_ohm"):
        GsrDivider(r_ref_ohm=0)


def test_ad8232_round_trip_and_gain():
    ecg = Ad8232()
    mv = np.linspace(-1.5, 1.5, 61)
    assert np.allclose(ecg.to_millivolts(ecg.volts_for(mv)), mv, rtol=0, atol=1e-12)
    assert ecg.volts_for(1.0) == pytest.approx(1.65 + 1.1)
    assert ecg.to_millivolts(1.65) == 0.0
    other = Ad8232(gain=100.0, v_ref_v=1.5)
    assert other.to_millivolts(2.5) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="gain"):
        Ad8232(gain=0)
