"""The design card's sensor board, emulated at register level, and the faults it can suffer.

I2C bus 1 carries a MAX30102 (or MAX30101) at 0x57 and an MPU-6050 at 0x68. The analog
front-ends - a GSR divider and an AD8232 ECG output - go to an ADS1115 at 0x48 (I2C) or, on
the SPI variant, to an MCP3008 on spidev0.0. The ECG can come from an ADS1292R on spidev0.1
instead of the AD8232. Every chip is fed by one `PhysiologySimulator`, so PPG, ECG, EDA and
motion are coherent, and the real drivers read it through the same smbus2 / spidev calls they
use on a Raspberry Pi. Digital lines are gpiozero ``MockFactory`` pins: the ADS1292R's DRDY and
the AD8232's LO+/LO- are driven by a ``Ticker`` thread, the MAX30102's INT and the ADS1115's
ALERT/RDY by a ``PinScheduler`` at the moment the chip raises them. ``pins`` maps the roles
"ppg_int", "adc_alert", "ecg_drdy", "ecg_lo_plus", "ecg_lo_minus" to GPIO numbers.

Faults, for tests and demonstrations (``name`` is "ppg", "accel", "adc" or "ecg"):

- ``unplug(name)`` / ``plug(name)``: the cable pulled (I2C NACK; SPI MISO floating to its
  pull) and put back; a replugged chip comes back in its power-on state.
- ``bus_errors(name, seconds=..., count=...)``: transactions to the chip fail with EIO.
- ``stall(name, seconds)``: the next transaction blocks that long (a chip stretching SCL).
- ``crash(name, exc)``: the next transaction raises ``exc`` (a bug, not a bus error).
- ``set_stuck(name, True)``: the FIFO stops filling (MAX3010x, MPU-6050), conversions never
  finish (ADS1115) or stop (ADS1292R), while the chip still answers.
- ``set_state(finger_on=False, leads_on=False, skin_contact=False)``: the subject's contact
  flags from now on, overriding the scenario (finger off, lead off, open GSR electrodes).
"""

from __future__ import annotations

import errno
import os

import numpy as np

from sensors.clock import Clock
from sensors.emulated.ads1115 import EmulatedAds1115
from sensors.emulated.ads1292r import EmulatedAds1292r
from sensors.emulated.i2c import EmulatedI2CBus
from sensors.emulated.max3010x import EmulatedMax30101, EmulatedMax30102
from sensors.emulated.mcp3008 import EmulatedMcp3008
from sensors.emulated.mpu6050 import EmulatedMpu6050
from sensors.emulated.physiology import PhysiologySimulator
from sensors.emulated.pins import EmulatedPinDriver, InterruptLine, PinScheduler, Ticker
from sensors.emulated.scenario import FLAG_FIELDS, State
from sensors.emulated.spi import EmulatedSpiDev
from sensors.frontends import Ad8232, GsrDivider


class AbsentDevice:
    """A bus device file the board does not have: every use fails with ENOENT naming the file,
    as the device's lazily opened buses fail on a machine without it."""

    def __init__(self, path: str) -> None:
        object.__setattr__(self, "path", path)

    def _missing(self) -> FileNotFoundError:
        return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), self.path)

    def __getattr__(self, name: str):
        raise self._missing()

    def __setattr__(self, name: str, value) -> None:
        raise self._missing()

    def close(self) -> None:
        pass

class FlagOverrides:
    """A scenario whose contact flags are overridden from given times on."""

    def __init__(self, base) -> None:
        self.base = base
        self.changes: list[tuple[float, str, bool]] = []  # (from t_s, flag, value), in order

    def __getattr__(self, name):
        return getattr(self.base, name)

    def set(self, t_s: float, **flags: bool) -> None:
        unknown = set(flags) - set(FLAG_FIELDS)
        if unknown:
            raise ValueError(f"unknown contact flag(s) {sorted(unknown)}; known: {FLAG_FIELDS}")
        self.changes = self.changes + [(float(t_s), k, bool(v)) for k, v in flags.items()]

    def columns_at(self, t_s) -> dict[str, np.ndarray]:
        cols = self.base.columns_at(t_s)
        t = np.asarray(t_s, dtype=np.float64)
        for t_from, flag, value in self.changes:
            cols[flag] = np.where(t >= t_from, value, cols[flag])
        return cols

    def state_at(self, t_s: float) -> State:
        cols = self.columns_at(float(t_s))
        return State(**{k: (bool(v) if k in FLAG_FIELDS else float(v)) for k, v in cols.items()})


class _ContactFollower:
    """Ticked: puts the simulated contact state on the pins and chips that report it."""

    def __init__(self, board: EmulatedBoard, period_s: float = 0.02) -> None:
        self.board = board
        self.period_ns = round(period_s * 1e9)
        self._due_ns = 0

    def tick(self) -> None:
        now = self.board.clock.now_ns()
        if now < self._due_ns:
            return
        self._due_ns = now + self.period_ns
        self.board.apply_contacts()


class EmulatedBoard:
    def __init__(
        self,
        clock: Clock,
        simulator: PhysiologySimulator,
        *,
        bus_number: int = 1,
        ppg_chip: str = "max30102",
        ppg_address: int = 0x57,
        accel_address: int = 0x68,
        adc_chip: str = "ads1115",
        adc_address: int = 0x48,
        adc_spi: tuple[int, int] = (0, 0),
        adc_v_ref_v: float = 3.3,
        gsr: GsrDivider | None = None,
        gsr_channel: int = 0,
        ecg: Ad8232 | None = None,
        ecg_channel: int = 1,
        ecg_source: str = "ad8232",
        ecg_spi: tuple[int, int] = (0, 1),
        pins: dict[str, int | None] | None = None,
        pin_factory=None,
        tick_s: float = 0.002,
    ) -> None:
        self.clock = clock
        self.simulator = simulator
        self.overrides = FlagOverrides(simulator.scenario)
        simulator.scenario = self.overrides
        self.bus_number = bus_number
        self.gsr = gsr or GsrDivider()
        self.ecg = ecg or Ad8232()
        self.gsr_channel = gsr_channel
        self.ecg_channel = ecg_channel
        self.adc_chip = adc_chip
        self.ecg_source = ecg_source
        self.bus = EmulatedI2CBus(bus_number)
        self.spidevs: dict[tuple[int, int], EmulatedSpiDev] = {}
        pins = {k: v for k, v in (pins or {}).items() if v is not None}
        if pins and pin_factory is None:
            from sensors.emulated.pins import bounded_mock_factory

            pin_factory = bounded_mock_factory()
        self.pin_factory = pin_factory
        # Data-ready lines idle high (active low); the LO outputs idle low (leads on).
        self.pins = {role: EmulatedPinDriver(pin_factory, n, level=not role.startswith("ecg_lo"))
                     for role, n in pins.items()}
        self.pin_scheduler = (PinScheduler(clock) if {"ppg_int", "adc_alert"} & set(self.pins)
                              else None)
        ppg_cls = EmulatedMax30101 if ppg_chip == "max30101" else EmulatedMax30102
        self._factories = {
            "ppg": lambda: ppg_cls(clock, simulator.ppg, interrupt=self._line("ppg_int")),
            "accel": lambda: EmulatedMpu6050(clock, simulator.accel_g),
        }
        self.where: dict[str, tuple[str, object]] = {"ppg": ("i2c", ppg_address),
                                                     "accel": ("i2c", accel_address)}
        if adc_chip == "mcp3008":
            self._factories["adc"] = lambda: EmulatedMcp3008(clock, self.analog_input_v,
                                                             v_ref_v=adc_v_ref_v)
            self.where["adc"] = ("spi", tuple(adc_spi))
        else:
            self._factories["adc"] = lambda: EmulatedAds1115(clock, self.analog_input_v,
                                                             interrupt=self._line("adc_alert"))
            self.where["adc"] = ("i2c", adc_address)
        if ecg_source == "ads1292r":
            self._factories["ecg"] = lambda: EmulatedAds1292r(
                clock, simulator.ecg_mv, self._respiration_mv, drdy_pin=self.pins.get("ecg_drdy"))
            self.where["ecg"] = ("spi", tuple(ecg_spi))
        self.chips: dict[str, object] = {}
        self._contacts_seen: dict[str, bool] = {}
        for name in self.where:
            self.plug(name)
        targets = list(self.spidevs.values()) if ecg_source == "ads1292r" else []
        if ecg_source == "ads1292r" or "ecg_lo_plus" in self.pins:
            targets.append(_ContactFollower(self))
        self.ticker = Ticker(targets, period_s=tick_s).start() if targets else None

    def _line(self, role: str) -> InterruptLine | None:
        """A fresh chip's interrupt output on the pin wired for ``role``, if one is."""
        if role not in self.pins:
            return None
        return InterruptLine(self.pins[role], self.pin_scheduler)

    # -- what the chips see ------------------------------------------------------------------
    def analog_input_v(self, ain: int, t_s: np.ndarray) -> np.ndarray:
        """The voltage on ADC input ``ain`` at times ``t_s``: what the front-ends output."""
        t_s = np.asarray(t_s, dtype=float)
        if ain == self.gsr_channel:
            return self.gsr.volts_for(self.simulator.eda_us(t_s))
        if ain == self.ecg_channel and self.ecg_source == "ad8232":
            # The AD8232's output swings rail to rail and no further (REFOUT is mid-supply).
            return np.clip(self.ecg.volts_for(self.simulator.ecg_mv(t_s)), 0.0, 2 * self.ecg.v_ref_v)
        return np.zeros_like(t_s)

    def _respiration_mv(self, t_s: np.ndarray) -> np.ndarray:
        # The demodulated impedance signal follows the breath; 0.5 mV at the CH1 input is a
        # typical swing for ~1 ohm of thoracic impedance change on the ADS1292R's 32 kHz drive.
        return 0.5 * np.sin(2 * np.pi * self.simulator.breath_phase(np.asarray(t_s, dtype=float)))

    def apply_contacts(self) -> None:
        """Drive the lead-off reports (AD8232 LO pins, ADS1292R electrodes) from the scenario."""
        now_s = self.clock.now_ns() / 1e9
        leads_on = bool(self.simulator.scenario.columns_at(np.array([now_s]))["leads_on"][0])
        if self._contacts_seen.get("leads_on") == leads_on:
            return
        self._contacts_seen["leads_on"] = leads_on
        if "ecg_lo_plus" in self.pins:
            # A lead off drives LO+ high (the left-arm electrode here); LO- stays low.
            self.pins["ecg_lo_plus"].set(not leads_on)
            self.pins["ecg_lo_minus"].set(False)
        chip = self.chips.get("ecg")
        if chip is not None:
            spi = self.spidevs[self.where["ecg"][1]]
            with spi.held():  # the spidev lock first, as a transaction takes them
                chip.set_lead_off(la=not leads_on)

    # -- the buses ---------------------------------------------------------------------------
    def i2c(self, bus_number: int) -> EmulatedI2CBus | AbsentDevice:
        """The bus a driver would get from ``smbus2.SMBus(bus_number)``, opened on first use
        as the device's are: a bus the board does not have fails at its first transaction."""
        if bus_number != self.bus_number:
            return AbsentDevice(f"/dev/i2c-{bus_number}")
        return self.bus

    def spi(self, bus: int, device: int) -> EmulatedSpiDev | AbsentDevice:
        """What ``spidev.SpiDev(bus, device)`` would open (on first use, as above)."""
        dev = self.spidevs.get((bus, device))
        return AbsentDevice(f"/dev/spidev{bus}.{device}") if dev is None else dev

    def _spidev(self, name: str) -> EmulatedSpiDev:
        bus, device = self.where[name][1]
        if (bus, device) not in self.spidevs:
            self.spidevs[(bus, device)] = EmulatedSpiDev(bus=bus, device=device)
        return self.spidevs[(bus, device)]

    def close(self) -> None:
        if self.ticker is not None:
            self.ticker.stop()
        if self.pin_scheduler is not None:
            self.pin_scheduler.close()

    # -- cables get pulled -------------------------------------------------------------------
    def unplug(self, name: str) -> None:
        kind, where = self._where(name)
        if kind == "i2c":
            self.bus.detach(where)
        else:
            self._spidev(name).detach()

    def plug(self, name: str) -> None:
        """Connect ``name``; a chip that was unplugged comes back powered up afresh."""
        kind, where = self._where(name)
        if kind == "i2c":
            if where in self.bus.chips:
                return
            self.chips[name] = self._factories[name]()
            self.bus.attach(where, self.chips[name])
        else:
            spi = self._spidev(name)
            if spi.plugged:
                return
            self.chips[name] = self._factories[name]()
            spi.attach(self.chips[name])
            self._contacts_seen.clear()

    def _where(self, name: str) -> tuple[str, object]:
        if name not in self.where:
            raise KeyError(f"no chip {name!r} on this board; it has {sorted(self.where)}")
        return self.where[name]

    def _hooks(self, name: str) -> tuple[list, object]:
        kind, where = self._where(name)
        return (self.bus.fault_hooks, where) if kind == "i2c" else (self._spidev(name).fault_hooks, None)

    # -- faults ------------------------------------------------------------------------------
    def bus_errors(self, name: str, *, seconds: float | None = None, count: int | None = None,
                   code: int = errno.EIO) -> None:
        """Transactions to ``name`` fail with ``OSError(code)`` for ``seconds`` of clock time
        or ``count`` transactions (whichever is given)."""
        if (seconds is None) == (count is None):
            raise ValueError("give exactly one of seconds or count")
        hooks, address = self._hooks(name)
        until_ns = None if seconds is None else self.clock.now_ns() + round(seconds * 1e9)
        left = [count]

        def hook(*target) -> None:
            if address is not None and target[0] != address:
                return
            if until_ns is not None and self.clock.now_ns() >= until_ns:
                hooks.remove(hook)
                return
            if left[0] is not None:
                left[0] -= 1
                if left[0] <= 0:
                    hooks.remove(hook)
            raise OSError(code, os.strerror(code))

        hooks.append(hook)

    def stall(self, name: str, seconds: float) -> None:
        """The next transaction to ``name`` takes ``seconds`` of clock time."""
        self._once(name, lambda: self.clock.sleep(seconds))

    def crash(self, name: str, exc: BaseException) -> None:
        """The next transaction to ``name`` raises ``exc``."""
        def fail() -> None:
            raise exc

        self._once(name, fail)

    def _once(self, name: str, action) -> None:
        hooks, address = self._hooks(name)

        def hook(*target) -> None:
            if address is not None and target[0] != address:
                return
            hooks.remove(hook)
            action()

        hooks.append(hook)

    def set_stuck(self, name: str, stuck: bool = True) -> None:
        chip = self.chips[name]
        for knob in ("fifo_stuck", "conversion_stuck", "halted"):
            if hasattr(chip, knob):
                setattr(chip, knob, bool(stuck))
                return
        raise ValueError(f"{name} ({type(chip).__name__}) has nothing that can get stuck")

    def set_state(self, **flags: bool) -> None:
        """Contact flags (finger_on, leads_on, skin_contact) from now on."""
        self.overrides.set(self.clock.now_ns() / 1e9, **flags)
        self.apply_contacts()
