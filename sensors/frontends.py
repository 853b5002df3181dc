"""The analog front-ends in front of the ADC, in both directions.

A driver turns ADC volts into physiology (``to_microsiemens``, ``to_millivolts``); the
emulated board turns simulated physiology into the volts the ADC sees (``volts_for``).

Skin conductance (EDA): ``GsrDivider``
-------------------------------------
Exosomatic DC measurement with a constant excitation of 0.5 V, as recommended for
skin-conductance recording by the SPR committee (Fowles et al. 1981, "Publication
recommendations for electrodermal measurements", Psychophysiology 18:232-239; confirmed by
Boucsein et al. 2012, Psychophysiology 49:1017-1034, and Boucsein, "Electrodermal Activity",
2nd ed., 2012, ch. 2). The skin (R_skin, between two palmar/finger electrodes) is in series
with a reference resistor R_ref; the ADC measures across R_ref::

    V = offset + V_ex * R_ref / (R_ref + R_skin)
    G = 1 / R_skin = (V - offset) / (R_ref * (V_ex - (V - offset)))      [S; x 1e6 for uS]

The skin sees V_ex - V: close to the recommended 0.5 V for dry skin (0.45 V at 1 uS) but
only 0.25 V at 10 uS with R_ref = 100 kOhm - a quasi-constant-voltage circuit. The formula is
exact either way; the SCR amplitude just depends slightly less linearly on sweat-duct
conductance than with a true constant voltage (a transimpedance stage would fix that).

Range and resolution with the ADS1115 on PGA 0.512 V (1 LSB = 15.625 uV), R_ref = 100 kOhm,
V_ex = 0.5 V (the divider output stays below V_ex < 0.512 V, so it never clips):

    G (uS)       0.05    1       10      50      100
    V (mV)       2.49    45.5    250     417     455
    uS / LSB     0.0003  0.0004  0.0013  0.011   0.038

i.e. finer than 0.01 uS (the smallest SCR amplitude scored by computer, Boucsein 2012) from
0.05 up to about 45 uS; above that the divider flattens (the skin barely sees a voltage).
No skin contact (open electrodes) leaves the input at the 0 V rail: ``is_open_circuit``.

Calibration: put two precision resistors (e.g. 0.1 % 100 kOhm and 1 MOhm, i.e. 10 and
1 uS; add 10 MOhm for the low end) in place of the electrodes, read the ADC volts for each,
and call ``GsrDivider().calibrate([(100e3, v1), (1e6, v2), ...])``. The fit is linear in
x = R_ref / (R_ref + R): V = V_ex * x + offset, so it absorbs the actual excitation voltage
(reference tolerance, load of the ADC input) and the ADC/buffer offset.

ECG: ``Ad8232``
---------------
The AD8232 data sheet's cardiac monitor configuration (rev. A, "Cardiac Monitor
Configuration", Figure 66) uses the instrumentation amplifier's fixed gain of 100 and an
op-amp stage with a gain of 11 (0.5-40 Hz band): a total gain of 1100 around the reference
voltage REFOUT, mid-supply (1.65 V on 3.3 V). The output swings rail to rail, so +-1.5 mV at
the electrodes fills 0..3.3 V; with the ADS1115 on PGA 4.096 V, 1 LSB = 125 uV at the output,
0.11 uV at the electrodes. Gain and reference are parameters because boards (e.g. the
SparkFun breakout) change the op-amp gain resistors. Leads-off (LO+/LO-) are digital pins,
read elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GsrDivider:
    """The skin in series with ``r_ref_ohm`` under ``v_excitation_v``, measured across R_ref."""

    r_ref_ohm: float = 100_000.0
    v_excitation_v: float = 0.5
    offset_v: float = 0.0

    def __post_init__(self) -> None:
        if not self.r_ref_ohm > 0:
            raise ValueError(f"r_ref_ohm must be > 0, got {self.r_ref_ohm}")
        if not self.v_excitation_v > 0:
            raise ValueError(f"v_excitation_v must be > 0, got {self.v_excitation_v}")

    def to_microsiemens(self, volts) -> np.ndarray:
        """Skin conductance in uS from volts across R_ref. At or above V_ex (shorted electrodes)
        the result is ``inf``; below the offset (open circuit, noise) it is 0."""
        v = np.clip(np.asarray(volts, dtype=np.float64) - self.offset_v, 0.0, None)
        headroom = self.v_excitation_v - v
        with np.errstate(divide="ignore"):
            safe = np.where(headroom > 0, headroom, 1.0)
            g_s = np.where(headroom > 0, v / (self.r_ref_ohm * safe), np.inf)
        return g_s * 1e6

    def volts_for(self, microsiemens) -> np.ndarray:
        """Volts across R_ref for a skin conductance in uS (inverse of ``to_microsiemens``)."""
        g_us = np.asarray(microsiemens, dtype=np.float64)
        if np.any(g_us < 0):
            raise ValueError(f"microsiemens must be >= 0, got min {np.min(g_us)}")
        gr = g_us * 1e-6 * self.r_ref_ohm
        return self.offset_v + self.v_excitation_v * gr / (1.0 + gr)

    def is_open_circuit(self, volts, min_contact_us: float = 0.02) -> np.ndarray:
        """True where the input sits near the 0 V rail: less conductance than any skin shows
        (``min_contact_us``, below the lowest tonic levels of ~0.05 uS), i.e. no contact."""
        return np.asarray(volts, dtype=np.float64) < self.volts_for(min_contact_us)

    def calibrate(self, points: Iterable[tuple[float, float]]) -> GsrDivider:
        """Fit V_ex and offset from (known resistance in ohms, measured volts) pairs.

        Two points give an exact solution, more a least-squares fit; R_ref is taken as exact
        (it is the precision part of the circuit).
        """
        pts = np.asarray(list(points), dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2:
            raise ValueError(
                f"calibrate needs at least two (resistance_ohm, volts) points, got {pts.tolist()}")
        r_ohm, v = pts[:, 0], pts[:, 1]
        if np.any(r_ohm <= 0):
            raise ValueError(f"calibration resistances must be > 0 ohm, got {r_ohm.tolist()}")
        x = self.r_ref_ohm / (self.r_ref_ohm + r_ohm)
        if np.ptp(x) < 1e-3:
            raise ValueError(
                f"calibration resistances {r_ohm.tolist()} are too close to tell gain from offset")
        a = np.column_stack([x, np.ones_like(x)])
        (v_ex, offset), *_ = np.linalg.lstsq(a, v, rcond=None)
        if not v_ex > 0:
            raise ValueError(
                f"calibration gives a non-positive excitation ({v_ex:.4g} V): check the points")
        return GsrDivider(self.r_ref_ohm, float(v_ex), float(offset))


@dataclass(frozen=True)
class Ad8232:
    """AD8232 output volts <-> ECG millivolts at the electrodes: V = v_ref + gain * mV / 1000."""

    gain: float = 1100.0
    v_ref_v: float = 1.65

    def __post_init__(self) -> None:
        if not self.gain > 0:
            raise ValueError(f"gain must be > 0, got {self.gain}")

    def to_millivolts(self, volts) -> np.ndarray:
        return (np.asarray(volts, dtype=np.float64) - self.v_ref_v) / self.gain * 1000.0

    def volts_for(self, millivolts) -> np.ndarray:
        return self.v_ref_v + np.asarray(millivolts, dtype=np.float64) * self.gain / 1000.0

    def is_railing(self, millivolts, margin_v: float = 0.1) -> np.ndarray:
        """True where the output sits at a supply rail (0 V or 2 x REFOUT, REFOUT being
        mid-supply): with a lead off the DC lead-off current drives the in-amp to saturation
        (data sheet, "Leads Off Detection"), and so does a loose electrode's DC offset."""
        v = self.volts_for(millivolts)
        return (v <= margin_v) | (v >= 2 * self.v_ref_v - margin_v)
