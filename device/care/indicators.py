"""The local alarm: LEDs and a buzzer on GPIO, driven straight from the AlarmBook.

IEC 60601-1-8 does not let a distributed alarm system (the nurse station over MQTT) be the
only means of alarm, so this output listens to the AlarmBook directly and needs no network.
Its patterns follow the standard's visual and auditory signals in spirit (Table 1 and 3):

- high priority: red LED flashing at 2 Hz (standard: 1.4-2.8 Hz, 20-60 % on); the buzzer
  sounds a burst of 10 pulses, then pauses (standard: 10-pulse burst, repeated);
- medium priority: yellow LED flashing at 0.5 Hz (standard: 0.4-0.8 Hz); the buzzer sounds 3
  pulses, then a longer pause;
- low priority: yellow LED steady; buzzer silent (the standard makes it optional);
- acknowledged (silenced) alarms that are still active: yellow LED steady, buzzer silent.

A pattern restarts when the loudest priority changes, so a new alarm is seen and heard at
once. A ticker thread renders the patterns every ``tick_s``; every AlarmBook event renders too.
"""

from __future__ import annotations

import logging
import threading

from sensors.clock import Clock

from device.processing.alarms import Alarm, AlarmBook

log = logging.getLogger(__name__)

LED_PERIOD_S = {"high": 0.5, "medium": 2.0}
# (pulse on, pulse off, pulses per burst, burst repeat period) in seconds.
BUZZER_BURST = {"high": (0.15, 0.1, 10, 6.0), "medium": (0.2, 0.2, 3, 8.0)}


def led_pattern(loudest: str | None, silenced_active: bool, t_s: float) -> tuple[bool, bool]:
    """(red on, yellow on) at ``t_s`` since the pattern started."""
    if loudest in LED_PERIOD_S:
        on = (t_s % LED_PERIOD_S[loudest]) < LED_PERIOD_S[loudest] / 2
        return (on, False) if loudest == "high" else (False, on)
    if loudest == "low" or silenced_active:
        return False, True
    return False, False


def buzzer_pattern(loudest: str | None, t_s: float) -> bool:
    if loudest not in BUZZER_BURST:
        return False
    on_s, off_s, pulses, period_s = BUZZER_BURST[loudest]
    phase = t_s % period_s
    pulse, within = divmod(phase, on_s + off_s)
    return pulse < pulses and within < on_s


class AlarmOutput:
    """gpiozero LEDs and buzzer for the AlarmBook; pins None are simply not driven."""

    def __init__(self, book: AlarmBook, clock: Clock, *, led_high_pin: int | None = None,
                 led_medium_pin: int | None = None, buzzer_pin: int | None = None,
                 buzzer_active_high: bool = True, pin_factory=None, tick_s: float = 0.05) -> None:
        from gpiozero import LED, Buzzer

        self.book = book
        self.clock = clock
        self.tick_s = tick_s
        self.led_high = None if led_high_pin is None else LED(led_high_pin, pin_factory=pin_factory)
        self.led_medium = (None if led_medium_pin is None
                           else LED(led_medium_pin, pin_factory=pin_factory))
        self.buzzer = (None if buzzer_pin is None else
                       Buzzer(buzzer_pin, active_high=buzzer_active_high, pin_factory=pin_factory))
        self.shown: str | None = None
        self._origin_ns = clock.now_ns()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        book.listeners.append(self._on_event)

    @classmethod
    def from_config(cls, book: AlarmBook, clock: Clock, config, pin_factory=None) -> AlarmOutput | None:
        """From ``[alarm]``; None when no pin is configured."""
        if config.led_high_pin is None and config.led_medium_pin is None and config.buzzer_pin is None:
            return None
        return cls(book, clock, led_high_pin=config.led_high_pin,
                   led_medium_pin=config.led_medium_pin, buzzer_pin=config.buzzer_pin,
                   buzzer_active_high=config.buzzer_active_high, pin_factory=pin_factory)

    def _on_event(self, event: str, alarm: Alarm) -> None:
        self.render()

    def render(self) -> None:
        """Set the pins for now."""
        now = self.clock.now_ns()
        loudest = self.book.loudest()
        silenced = any(a.state == "acknowledged" for a in self.book.active())
        with self._lock:
            if loudest != self.shown:
                self.shown, self._origin_ns = loudest, now
            t_s = (now - self._origin_ns) / 1e9
            red, yellow = led_pattern(loudest, silenced, t_s)
            for device, on in ((self.led_high, red), (self.led_medium, yellow),
                               (self.buzzer, buzzer_pattern(loudest, t_s))):
                if device is not None and device.is_active != on:
                    device.on() if on else device.off()

    # -- the ticker --------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alarm-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        speed = getattr(self.clock, "speed", 1.0)
        while not self._stop.is_set():
            try:
                self.render()
            except Exception:  # noqa: BLE001 - keep trying: this is the alarm
                log.exception("alarm output render failed")
            self._stop.wait(self.tick_s / speed)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self._on_event in self.book.listeners:
            self.book.listeners.remove(self._on_event)
        for device in (self.led_high, self.led_medium, self.buzzer):
            if device is not None:
                device.off()
                device.close()
