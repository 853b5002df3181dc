"""Checks across the sensor sections that describe how the board is wired: ADC inputs, SPI chip
selects and GPIO lines. Each failure names the key to change (relative to ``sensors``)."""

from __future__ import annotations

#: Header functions of BCM GPIOs that painmon's buses use (Raspberry Pi pinout).
_I2C1_PINS = {2: "I2C1 SDA", 3: "I2C1 SCL"}
_SPI0_PINS = {7: "SPI0 CE1", 8: "SPI0 CE0", 9: "SPI0 MISO", 10: "SPI0 MOSI", 11: "SPI0 SCLK"}
ADS1115_INPUTS = 4


def _error(key: str, message: str) -> ValueError:
    from device.config.base import KeyedValueError

    return KeyedValueError(key, message)


def check_wiring(s, analog: list[str]) -> None:
    """``s`` is a SensorsConfig; ``analog`` the enabled channels read through the ADC."""
    if s.adc.enabled and s.adc.chip == "ads1115":
        for name in analog:
            channel = getattr(s, name).adc_channel
            if channel >= ADS1115_INPUTS:
                raise _error(f"{name}.adc_channel", f"must be 0..3 with sensors.adc.chip = "
                             f"ads1115 (inputs AIN0-AIN3), got {channel}")
    spi_adc = s.adc.enabled and s.adc.chip == "mcp3008" and bool(analog)
    spi_ecg = s.ecg.enabled and s.ecg.source == "ads1292r"
    if spi_adc and spi_ecg and (s.adc.spi_bus, s.adc.spi_device) == (s.ecg.spi_bus, s.ecg.spi_device):
        raise _error("ecg.spi_device", f"the mcp3008 (sensors.adc.spi_bus/spi_device) already "
                     f"uses spidev{s.ecg.spi_bus}.{s.ecg.spi_device}; give the ads1292r the other "
                     "chip select")
    if s.ecg.source == "ads1292r":
        for key in ("lo_plus_pin", "lo_minus_pin"):
            if getattr(s.ecg, key) is not None:
                raise _error(f"ecg.{key}", "LO+/LO- are AD8232 outputs; the ads1292r reports "
                             "lead-off in its status word (sensors.ecg.source = ads1292r)")
    elif s.ecg.drdy_pin is not None:
        raise _error("ecg.drdy_pin", "DRDY is an ads1292r output; set sensors.ecg.source = "
                     "ads1292r or remove it")
    if (s.ecg.lo_plus_pin is None) != (s.ecg.lo_minus_pin is None):
        missing = "lo_minus_pin" if s.ecg.lo_minus_pin is None else "lo_plus_pin"
        raise _error(f"ecg.{missing}", "LO+ and LO- are read together: set both pins or neither")
    if s.adc.alert_pin is not None and s.adc.chip != "ads1115":
        raise _error("adc.alert_pin", "ALERT/RDY is an ads1115 output; the mcp3008 has none")
    _check_distinct(_sensor_pins(s), _reserved_pins(s, spi_adc), shown="sensors.")


def _reserved_pins(s, spi_adc: bool) -> dict[int, str]:
    """The GPIO lines the configured buses take (I2C1 always, SPI0 when a chip is on it)."""
    spi_ecg = s.ecg.enabled and s.ecg.source == "ads1292r"
    reserved = dict(_I2C1_PINS)
    if (spi_adc and s.adc.spi_bus == 0) or (spi_ecg and s.ecg.spi_bus == 0):
        reserved.update(_SPI0_PINS)
    return reserved


def _sensor_pins(s) -> dict[str, int | None]:
    """The enabled sensors' optional lines, keyed relative to ``sensors``."""
    return {"ppg.int_pin": s.ppg.int_pin if s.ppg.enabled else None,
            "adc.alert_pin": s.adc.alert_pin if s.adc.enabled else None,
            "ecg.lo_plus_pin": s.ecg.lo_plus_pin if s.ecg.enabled else None,
            "ecg.lo_minus_pin": s.ecg.lo_minus_pin if s.ecg.enabled else None,
            "ecg.drdy_pin": s.ecg.drdy_pin if s.ecg.enabled else None}


def _check_distinct(pins: dict[str, int | None], reserved: dict[int, str],
                    shown: str = "") -> None:
    """Each pin off the buses and used once; ``shown`` prefixes the key another pin names."""
    seen: dict[int, str] = {}
    for key, pin in pins.items():
        if pin is None:
            continue
        if pin in reserved:
            raise _error(key, f"GPIO{pin} is {reserved[pin]}, in use by a bus")
        if pin in seen:
            raise _error(key, f"GPIO{pin} is already {shown}{seen[pin]}")
        seen[pin] = key


def check_all_pins(c) -> None:
    """Every GPIO the configuration drives or reads (``c`` a PainmonConfig), across the
    sensors, the alarm output and the buttons, is one line of its own and not a bus's: a
    buzzer on an LED's pin would disable the whole local alarm."""
    s = c.sensors
    pins = {f"sensors.{key}": pin for key, pin in _sensor_pins(s).items()}
    pins.update({"alarm.led_high_pin": c.alarm.led_high_pin,
                 "alarm.led_medium_pin": c.alarm.led_medium_pin,
                 "alarm.buzzer_pin": c.alarm.buzzer_pin,
                 "buttons.acknowledge_pin": c.buttons.acknowledge_pin,
                 "buttons.report_pin": c.buttons.report_pin,
                 "buttons.stay_pin": c.buttons.stay_pin})
    _check_distinct(pins, _reserved_pins(s, s.adc.enabled and s.adc.chip == "mcp3008"))
