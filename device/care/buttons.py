"""The bedside buttons, through gpiozero.

- Acknowledge button: a short press acknowledges every active alarm (silences the buzzer);
  holding it for ``hold_s`` starts a calibration at rest instead.
- Self-report button: the patient presses it N times (each press within ``report_window_s``
  of the one before) to report pain N on the 0-10 scale (10 or more presses report 10); the
  report is taken ``report_window_s`` after the last press. Holding it for ``hold_s`` reports
  0, no pain.
- Stay button: holding it for ``hold_s`` admits a patient under a generated pseudonymous
  reference when nobody is admitted, and discharges the open stay otherwise; a short press does
  nothing (a stay is not ended by a brush of the hand).

gpiozero calls back from its own threads; presses are counted under a lock and a sequence is
closed by ``tick()``, called on every processing hop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sensors.clock import Clock

log = logging.getLogger(__name__)

MAX_NRS = 10


class Buttons:
    def __init__(self, clock: Clock, *, acknowledge_pin: int | None = None,
                 report_pin: int | None = None, pull_up: bool = True, hold_s: float = 3.0,
                 report_window_s: float = 2.0, report_source: str = "patient",
                 on_acknowledge: Callable[[], None] | None = None,
                 on_calibrate: Callable[[], None] | None = None,
                 on_report: Callable[[int, str], None] | None = None,
                 stay_pin: int | None = None, on_stay: Callable[[], None] | None = None,
                 pin_factory=None) -> None:
        from gpiozero import Button

        self.clock = clock
        self.report_window_s = report_window_s
        self.report_source = report_source
        self.on_acknowledge = on_acknowledge or (lambda: None)
        self.on_calibrate = on_calibrate or (lambda: None)
        self.on_report = on_report or (lambda nrs, source: None)
        self.on_stay = on_stay or (lambda: None)
        self._lock = threading.Lock()
        self._presses = 0
        self._last_press_ns: int | None = None
        self._held = {"acknowledge": False, "report": False}
        self.acknowledge = self.report = self.stay = None
        if stay_pin is not None:
            self.stay = Button(stay_pin, pull_up=pull_up, hold_time=hold_s, pin_factory=pin_factory)
            self.stay.when_held = self._stay_held
        if acknowledge_pin is not None:
            self.acknowledge = Button(acknowledge_pin, pull_up=pull_up, hold_time=hold_s,
                                      pin_factory=pin_factory)
            self.acknowledge.when_held = self._acknowledge_held
            self.acknowledge.when_released = self._acknowledge_released
        if report_pin is not None:
            self.report = Button(report_pin, pull_up=pull_up, hold_time=hold_s,
                                 pin_factory=pin_factory)
            self.report.when_held = self._report_held
            self.report.when_released = self._report_released

    @classmethod
    def from_config(cls, clock: Clock, config, pin_factory=None, **callbacks) -> Buttons | None:
        """From ``[buttons]``; None when no button is configured."""
        if config.acknowledge_pin is None and config.report_pin is None and config.stay_pin is None:
            return None
        return cls(clock, acknowledge_pin=config.acknowledge_pin, report_pin=config.report_pin,
                   stay_pin=config.stay_pin,
                   pull_up=config.pull_up, hold_s=config.hold_s,
                   report_window_s=config.report_window_s, report_source=config.report_source,
                   pin_factory=pin_factory, **callbacks)

    # -- gpiozero callbacks (its threads) ----------------------------------------------------
    def _acknowledge_held(self) -> None:
        self._held["acknowledge"] = True
        log.info("acknowledge button held: calibration requested")
        self._call(self.on_calibrate)

    def _acknowledge_released(self) -> None:
        if self._held["acknowledge"]:
            self._held["acknowledge"] = False
            return
        log.info("acknowledge button pressed")
        self._call(self.on_acknowledge)

    def _stay_held(self) -> None:
        log.info("stay button held: admit or discharge")
        self._call(self.on_stay)

    def _report_held(self) -> None:
        self._held["report"] = True
        with self._lock:
            self._presses, self._last_press_ns = 0, None
        log.info("report button held: NRS 0")
        self._call(self.on_report, 0, self.report_source)

    def _report_released(self) -> None:
        if self._held["report"]:
            self._held["report"] = False
            return
        with self._lock:
            self._presses += 1
            self._last_press_ns = self.clock.now_ns()

    @staticmethod
    def _call(fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a refused request must not kill gpiozero's thread
            log.exception("button action failed")

    # -- on the hop ---------------------------------------------------------------------------
    @property
    def pending_presses(self) -> int:
        with self._lock:
            return self._presses

    def tick(self) -> int | None:
        """Close a press sequence whose window has passed; returns the NRS reported, if any."""
        with self._lock:
            if not self._presses or self._last_press_ns is None:
                return None
            if (self.clock.now_ns() - self._last_press_ns) / 1e9 < self.report_window_s:
                return None
            nrs = min(self._presses, MAX_NRS)
            self._presses, self._last_press_ns = 0, None
        log.info("report button: %d press(es), NRS %d", nrs, nrs)
        self._call(self.on_report, nrs, self.report_source)
        return nrs

    def close(self) -> None:
        for button in (self.acknowledge, self.report, self.stay):
            if button is not None:
                button.close()
