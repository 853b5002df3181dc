"""From the configuration to sensors on buses: the real board or the emulated one."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from sensors.ads1115 import Ads1115, AnalogChannel, AnalogSampler
from sensors.bus import open_i2c
from sensors.clock import Clock
from sensors.frontends import Ad8232, GsrDivider
from sensors.max3010x import Max30101, Max30102
from sensors.mpu6050 import Mpu6050

from device.acquisition import FifoChip, ScannedAdc, Sensor

log = logging.getLogger(__name__)


@dataclass
class Board:
    """The sensors grouped by the bus that carries them (one reader thread per bus)."""

    sensors_by_bus: dict[str, list[Sensor]] = field(default_factory=dict)
    emulated: object | None = None  # the EmulatedBoard, when there is one

    @property
    def sensors(self) -> list[Sensor]:
        return [s for group in self.sensors_by_bus.values() for s in group]


class _LazyI2C:
    """Opens /dev/i2c-N on first use, so a missing bus marks its sensors missing, not the app."""

    def __init__(self, number: int) -> None:
        self.number = number
        self._bus = None

    def __getattr__(self, name):
        if self._bus is None:
            self._bus = open_i2c(self.number)
        return getattr(self._bus, name)

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()


def gsr_frontend(cfg) -> GsrDivider:
    return GsrDivider(r_ref_ohm=cfg.r_ref_ohm, v_excitation_v=cfg.v_excitation_v, offset_v=cfg.offset_v)


def ecg_frontend(cfg) -> Ad8232:
    return Ad8232(gain=cfg.gain, v_ref_v=cfg.v_ref_v)


def emulated_board(config, clock: Clock):
    from sensors.emulated.board import EmulatedBoard
    from sensors.emulated.physiology import PhysiologySimulator, Scenario

    s = config.sensors
    scenario = Scenario.rest() if config.simulator.scenario == "rest" else Scenario.demo()
    return EmulatedBoard(
        clock,
        PhysiologySimulator(scenario, seed=config.simulator.seed),
        bus_number=s.ppg.i2c_bus,
        ppg_chip=s.ppg.chip,
        ppg_address=s.ppg.address,
        accel_address=s.accel.address,
        adc_address=s.adc.address,
        gsr=gsr_frontend(s.gsr),
        gsr_channel=s.gsr.adc_channel,
        ecg=ecg_frontend(s.ecg),
        ecg_channel=s.ecg.adc_channel,
    )


def build_board(config, clock: Clock, *, on_state=None) -> Board:
    """Drivers for every enabled sensor, on the emulated board or the kernel's buses."""
    s = config.sensors
    emulated = emulated_board(config, clock) if config.hardware == "emulated" else None
    buses: dict[int, object] = {}

    def i2c(number: int):
        if number not in buses:
            buses[number] = emulated.i2c(number) if emulated is not None else _LazyI2C(number)
        return buses[number]

    groups: dict[str, list[Sensor]] = defaultdict(list)

    def add(bus_name: str, name: str, acquirer) -> None:
        groups[bus_name].append(Sensor(name, acquirer, clock, on_state=on_state))

    if s.ppg.enabled:
        cls = Max30101 if s.ppg.chip == "max30101" else Max30102
        currents = {k: v for k, v in s.ppg.led_current_ma.model_dump().items()
                    if s.ppg.chip == "max30101" or k != "green"}
        driver = cls(i2c(s.ppg.i2c_bus), s.ppg.address, clock, mode=s.ppg.mode,
                     sample_rate_hz=s.ppg.sample_rate_hz, sample_averaging=s.ppg.sample_averaging,
                     pulse_width_us=s.ppg.pulse_width_us, adc_range_na=s.ppg.adc_range_na,
                     led_current_ma=currents, bus_number=s.ppg.i2c_bus)
        add(f"i2c-{s.ppg.i2c_bus}", "ppg", FifoChip(driver, clock))
    if s.accel.enabled:
        driver = Mpu6050(i2c(s.accel.i2c_bus), s.accel.address, clock, range_g=s.accel.range_g,
                         sample_rate_hz=s.accel.sample_rate_hz, bus_number=s.accel.i2c_bus)
        add(f"i2c-{s.accel.i2c_bus}", "accel", FifoChip(driver, clock))
    if s.adc.enabled and (s.gsr.enabled or s.ecg.enabled):
        adc = Ads1115(i2c(s.adc.i2c_bus), s.adc.address, clock,
                      data_rate_sps=s.adc.data_rate_sps, bus_number=s.adc.i2c_bus)
        channels = []
        if s.gsr.enabled:
            channels.append(AnalogChannel("eda", s.gsr.adc_channel, s.gsr.rate_hz, s.gsr.pga_v,
                                          gsr_frontend(s.gsr).to_microsiemens, "uS"))
        if s.ecg.enabled:
            channels.append(AnalogChannel("ecg", s.ecg.adc_channel, s.ecg.rate_hz, s.ecg.pga_v,
                                          ecg_frontend(s.ecg).to_millivolts, "mV"))
        add(f"i2c-{s.adc.i2c_bus}", "adc", ScannedAdc(adc, AnalogSampler(adc, channels, clock)))
    return Board(dict(groups), emulated)
