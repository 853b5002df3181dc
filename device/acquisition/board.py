"""From the configuration to sensors on buses: the real board or the emulated one.

The sensors are "ppg" (MAX3010x), "accel" (MPU-6050), "adc" (ADS1115 on I2C or MCP3008 on SPI,
carrying the GSR divider and the AD8232) and, with ``sensors.ecg.source = "ads1292r"``, "ecg"
(ADS1292R on SPI). One reader thread per bus: "i2c-1", "spi-0", ...
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpiozero import Factory

from sensors.ads1115 import Ads1115, AnalogChannel, AnalogSampler
from sensors.clock import Clock
from sensors.frontends import Ad8232, GsrDivider
from sensors.max3010x import FULL_SCALE_COUNTS as PPG_FULL_SCALE_COUNTS
from sensors.max3010x import Max30101, Max30102
from sensors.mpu6050 import Mpu6050

from device.acquisition.buses import LazyI2C, LazySpi, TimedBus
from device.acquisition.sensor import DEVICE_ERRORS, FifoChip, ScannedAdc, Sensor, SensorState
from device.config import PainmonConfig

if TYPE_CHECKING:  # the emulated board and the SPI chips load only where they are used
    from sensors.ads1292r import Ads1292r
    from sensors.emulated.board import EmulatedBoard
    from sensors.gpio import LeadOffPins

log = logging.getLogger(__name__)

#: Longest a single bus transaction may take (a 32-byte SMBus block at 100 kHz takes ~4 ms).
TRANSACTION_DEADLINE_S = 0.25
#: No new samples for this long while the chip answers: stuck.
STALL_S = 1.0


@dataclass
class Board:
    """The sensors grouped by the bus that carries them (one reader thread per bus), and what
    reports contact: the front-ends, the AD8232's LO pins, the ADS1292R's status word."""

    sensors_by_bus: dict[str, list[Sensor]] = field(default_factory=dict)
    emulated: EmulatedBoard | None = None
    gsr: GsrDivider | None = None
    ecg_frontend: Ad8232 | None = None  # the AD8232 when it feeds the ADC
    lead_off_pins: LeadOffPins | None = None
    ecg_chip: Ads1292r | None = None
    ppg_full_scale: int = PPG_FULL_SCALE_COUNTS

    @property
    def sensors(self) -> list[Sensor]:
        return [s for group in self.sensors_by_bus.values() for s in group]

    def close(self) -> None:
        if self.lead_off_pins is not None:
            self.lead_off_pins.close()
        if self.emulated is not None:
            self.emulated.close()


def gsr_frontend(cfg) -> GsrDivider:
    return GsrDivider(r_ref_ohm=cfg.r_ref_ohm, v_excitation_v=cfg.v_excitation_v, offset_v=cfg.offset_v)


def ecg_frontend(cfg) -> Ad8232:
    return Ad8232(gain=cfg.gain, v_ref_v=cfg.v_ref_v)


def emulated_board(config: PainmonConfig, clock: Clock, pin_factory: Factory | None = None
                   ) -> EmulatedBoard:
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
        adc_chip=s.adc.chip,
        adc_address=s.adc.address,
        adc_spi=(s.adc.spi_bus, s.adc.spi_device),
        adc_v_ref_v=s.adc.v_ref_v,
        gsr=gsr_frontend(s.gsr),
        gsr_channel=s.gsr.adc_channel,
        ecg=ecg_frontend(s.ecg),
        ecg_channel=s.ecg.adc_channel,
        ecg_source=s.ecg.source,
        ecg_spi=(s.ecg.spi_bus, s.ecg.spi_device),
        pins={"ppg_int": s.ppg.int_pin,
              "adc_alert": s.adc.alert_pin if s.adc.chip == "ads1115" else None,
              "ecg_drdy": s.ecg.drdy_pin if s.ecg.source == "ads1292r" else None,
              "ecg_lo_plus": s.ecg.lo_plus_pin, "ecg_lo_minus": s.ecg.lo_minus_pin},
        pin_factory=pin_factory,
    )


def _lead_off_pins(cfg, pin_factory):
    from sensors.gpio import LeadOffPins

    try:
        return LeadOffPins(cfg.lo_plus_pin, cfg.lo_minus_pin, pin_factory=pin_factory)
    except (*DEVICE_ERRORS, RuntimeError) as exc:
        # Lead-off is still seen from the output railing; the pins only make it faster.
        log.warning("AD8232 LO+/LO- on GPIO%d/%d unavailable (%s); lead-off from the signal only",
                    cfg.lo_plus_pin, cfg.lo_minus_pin, exc)
        return None


def build_board(config: PainmonConfig, clock: Clock, *, pin_factory: Factory | None = None,
                on_state: Callable[[SensorState], None] | None = None) -> Board:
    """Drivers for every enabled sensor, on the emulated board (its data-ready and lead-off
    lines on ``pin_factory``, a gpiozero MockFactory) or the kernel's buses and GPIO."""
    s = config.sensors
    emulated = (emulated_board(config, clock, pin_factory) if config.hardware == "emulated"
                else None)
    if emulated is not None:
        pin_factory = emulated.pin_factory
    buses: dict[object, object] = {}

    def i2c(number: int):
        if number not in buses:
            raw = emulated.i2c(number) if emulated is not None else LazyI2C(number)
            buses[number] = TimedBus(raw, clock, TRANSACTION_DEADLINE_S, f"i2c-{number}")
        return buses[number]

    def spi(bus: int, device: int):
        # Not shared: each chip select is its own spidev file, with its own mode and speed.
        raw = emulated.spi(bus, device) if emulated is not None else LazySpi(bus, device)
        return TimedBus(raw, clock, TRANSACTION_DEADLINE_S, f"spidev{bus}.{device}")

    groups: dict[str, list[Sensor]] = defaultdict(list)
    board = Board(emulated=emulated)

    def add(bus_name: str, name: str, acquirer) -> None:
        groups[bus_name].append(Sensor(name, acquirer, clock, stall_s=STALL_S, on_state=on_state))

    if s.ppg.enabled:
        cls = Max30101 if s.ppg.chip == "max30101" else Max30102
        currents = {k: v for k, v in s.ppg.led_current_ma.model_dump().items()
                    if s.ppg.chip == "max30101" or k != "green"}
        driver = cls(i2c(s.ppg.i2c_bus), s.ppg.address, clock, mode=s.ppg.mode,
                     sample_rate_hz=s.ppg.sample_rate_hz, sample_averaging=s.ppg.sample_averaging,
                     pulse_width_us=s.ppg.pulse_width_us, adc_range_na=s.ppg.adc_range_na,
                     led_current_ma=currents, bus_number=s.ppg.i2c_bus,
                     int_pin=s.ppg.int_pin, pin_factory=pin_factory)
        add(f"i2c-{s.ppg.i2c_bus}", "ppg", FifoChip(driver, clock))
    if s.accel.enabled:
        driver = Mpu6050(i2c(s.accel.i2c_bus), s.accel.address, clock, range_g=s.accel.range_g,
                         sample_rate_hz=s.accel.sample_rate_hz, bus_number=s.accel.i2c_bus)
        add(f"i2c-{s.accel.i2c_bus}", "accel", FifoChip(driver, clock))
    analog_ecg = s.ecg.enabled and s.ecg.source == "ad8232"
    if s.adc.enabled and (s.gsr.enabled or analog_ecg):
        _add_adc(s, clock, i2c, spi, add, board, analog_ecg, pin_factory)
    if analog_ecg and s.ecg.lo_plus_pin is not None:
        board.lead_off_pins = _lead_off_pins(s.ecg, pin_factory)
    if s.ecg.enabled and s.ecg.source == "ads1292r":
        from sensors.ads1292r import Ads1292r

        driver = Ads1292r(spi(s.ecg.spi_bus, s.ecg.spi_device), clock,
                          data_rate_sps=s.ecg.data_rate_sps, ecg_gain=s.ecg.pga_gain,
                          respiration=s.ecg.respiration, drdy=s.ecg.drdy_pin,
                          pin_factory=pin_factory, bus_number=s.ecg.spi_bus,
                          device=s.ecg.spi_device)
        board.ecg_chip = driver
        add(f"spi-{s.ecg.spi_bus}", "ecg", FifoChip(driver, clock))
    board.sensors_by_bus = dict(groups)
    return board


def _add_adc(s, clock, i2c, spi, add, board: Board, analog_ecg: bool, pin_factory) -> None:
    if s.adc.chip == "mcp3008":
        from sensors.mcp3008 import CHANNELS, Mcp3008

        adc = Mcp3008(spi(s.adc.spi_bus, s.adc.spi_device), clock, v_ref_v=s.adc.v_ref_v,
                      bus_number=s.adc.spi_bus, device=s.adc.spi_device)
        bus_name, inputs = f"spi-{s.adc.spi_bus}", CHANNELS
    else:
        adc = Ads1115(i2c(s.adc.i2c_bus), s.adc.address, clock,
                      data_rate_sps=s.adc.data_rate_sps, bus_number=s.adc.i2c_bus,
                      alert_pin=s.adc.alert_pin, pin_factory=pin_factory)
        bus_name, inputs = f"i2c-{s.adc.i2c_bus}", 4
    channels = []
    if s.gsr.enabled:
        board.gsr = gsr_frontend(s.gsr)
        channels.append(AnalogChannel("eda", s.gsr.adc_channel, s.gsr.rate_hz, s.gsr.pga_v,
                                      board.gsr.to_microsiemens, "uS", inputs))
    if analog_ecg:
        board.ecg_frontend = ecg_frontend(s.ecg)
        channels.append(AnalogChannel("ecg", s.ecg.adc_channel, s.ecg.rate_hz, s.ecg.pga_v,
                                      board.ecg_frontend.to_millivolts, "mV", inputs))
    add(bus_name, "adc", ScannedAdc(adc, AnalogSampler(adc, channels, clock)))
