"""``painmon probe``: which chips answer where, against what the configuration expects.

I2C: every address 0x03-0x77 of each configured bus gets a one-byte read (what ``i2cdetect
-r`` does); each address that answers is identified by its ID register - MAX3010x PART_ID
(0xFF) = 0x15, MPU-6050 WHO_AM_I (0x75) = 0x68 - or, for the ADS1115 which has none, by its
threshold registers holding what is written (restored afterwards). SPI has no acknowledge:
the ADS1292R is identified by its ID register (0x73) after RESET and SDATAC, the MCP3008 by
the plausibility of its answers (null bit, LSB-first repeat, not all channels at 0). The
camera is opened and must deliver one frame. On the emulated board the same code talks to
the emulated chips.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sensors.bus import ChipIdError
from sensors.clock import Clock, MonotonicClock

from device.acquisition.sensor import DEVICE_ERRORS, describe_error

I2C_ADDRESSES = range(0x03, 0x78)
CAMERA_TIMEOUT_S = 5.0
#: What the ID registers can tell apart: a MAX30101 and a MAX30102 share PART_ID 0x15.
FAMILY = {"MAX30102": "MAX3010x", "MAX30101": "MAX3010x"}


@dataclass
class ProbeRow:
    bus: str
    address: str
    expected: str  # "" for a device nobody configured
    found: str  # "" when nothing answers
    status: str  # "ok" | "missing" | "wrong chip" | "extra" | "disabled"

    @property
    def problem(self) -> bool:
        return self.status in ("missing", "wrong chip")


def identify_i2c(bus, address: int, clock: Clock) -> str:
    """Name the chip at ``address`` by its ID register ("" when it is none painmon knows)."""
    from sensors.ads1115 import Ads1115

    try:
        if address in (0x57,) and bus.read_byte_data(address, 0xFF) == 0x15:
            return "MAX3010x (PART_ID 0x15)"
        if address in (0x68, 0x69) and bus.read_byte_data(address, 0x75) == 0x68:
            return "MPU-6050 (WHO_AM_I 0x68)"
        if 0x48 <= address <= 0x4B:
            Ads1115(bus, address, clock)._identify()
            return "ADS1115 (threshold registers)"
    except (ChipIdError, *DEVICE_ERRORS):
        pass
    return ""


def _i2c_rows(expected: dict[int, dict[int, str]], open_bus, clock) -> list[ProbeRow]:
    rows = []
    for number, wanted in sorted(expected.items()):
        name = f"i2c-{number}"
        try:
            bus = open_bus(number)
        except DEVICE_ERRORS as exc:
            rows += [ProbeRow(name, f"0x{a:02x}", chip, describe_error(exc), "missing")
                     for a, chip in sorted(wanted.items())]
            continue
        present = []
        for address in I2C_ADDRESSES:
            try:
                bus.read_byte(address)
                present.append(address)
            except DEVICE_ERRORS:
                continue
        for address in sorted(set(present) | set(wanted)):
            chip = wanted.get(address, "")
            found = identify_i2c(bus, address, clock) if address in present else ""
            if address in present and not found:
                found = "unknown device"
            if not chip:
                status = "extra"
            elif not found:
                status = "missing"
            else:
                status = "ok" if found.startswith(FAMILY.get(chip, chip)) else "wrong chip"
            rows.append(ProbeRow(name, f"0x{address:02x}", chip, found, status))
    return rows


def _spi_row(kind: str, bus: int, device: int, open_spi, clock) -> ProbeRow:
    where = f"spidev{bus}.{device}"
    try:
        spi = open_spi(bus, device)
        if kind == "ADS1292R":
            from sensors.ads1292r import Ads1292r, Opcode

            chip = Ads1292r(spi, clock, bus_number=bus, device=device)
            spi.mode, spi.max_speed_hz = 1, chip.max_speed_hz
            spi.xfer2([Opcode.RESET])
            clock.sleep(0.001)
            spi.xfer2([Opcode.SDATAC])
            chip.check_id()
            found = "ADS1292R (ID 0x73)"
        else:
            from sensors.mcp3008 import Mcp3008

            Mcp3008(spi, clock, bus_number=bus, device=device).open()
            found = "MCP3008 (answers plausibly)"
    except (ChipIdError, *DEVICE_ERRORS) as exc:
        return ProbeRow(f"spi-{bus}", where, kind, describe_error(exc), "missing")
    return ProbeRow(f"spi-{bus}", where, kind, found, "ok")


def _camera_row(face, clock) -> ProbeRow:
    if not face.enabled:
        return ProbeRow("camera", face.camera, "camera", "", "disabled")
    result: list[str] = []

    def grab() -> None:
        from device.acquisition.cameras import open_frame_source

        try:
            with open_frame_source(face.camera, clock=clock, rate_hz=face.fps) as source:
                frame = source.read()
                result.append("" if frame is None else
                              f"{frame.source} {frame.image.shape[1]}x{frame.image.shape[0]}")
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            result.append(f"error: {str(exc).splitlines()[0]}")

    thread = threading.Thread(target=grab, name="probe-camera", daemon=True)
    thread.start()
    thread.join(CAMERA_TIMEOUT_S)
    found = result[0] if result else f"no frame within {CAMERA_TIMEOUT_S:g} s"
    ok = bool(found) and not found.startswith(("error", "no frame"))
    return ProbeRow("camera", face.camera, "camera", found or "no frame", "ok" if ok else "missing")


def probe(config, *, emulated=None, clock: Clock | None = None) -> list[ProbeRow]:
    """The probe table for ``config``; ``emulated``: an EmulatedBoard to probe instead of the
    kernel's buses (built from the config when ``config.hardware`` is "emulated")."""
    clock = clock or MonotonicClock()
    s = config.sensors
    given = emulated
    if emulated is None and config.hardware == "emulated":
        from device.acquisition.board import emulated_board

        emulated = emulated_board(config, clock)
    if emulated is not None:
        open_bus, open_spi = emulated.i2c, emulated.spi
    else:
        from sensors.bus import open_i2c

        from device.acquisition.buses import LazySpi

        open_bus, open_spi = open_i2c, LazySpi
    expected: dict[int, dict[int, str]] = {}
    if s.ppg.enabled:
        expected.setdefault(s.ppg.i2c_bus, {})[s.ppg.address] = s.ppg.chip.upper()
    if s.accel.enabled:
        expected.setdefault(s.accel.i2c_bus, {})[s.accel.address] = "MPU-6050"
    analog = s.gsr.enabled or (s.ecg.enabled and s.ecg.source == "ad8232")
    if s.adc.enabled and analog and s.adc.chip == "ads1115":
        expected.setdefault(s.adc.i2c_bus, {})[s.adc.address] = "ADS1115"
    rows = _i2c_rows(expected, open_bus, clock)
    if s.adc.enabled and analog and s.adc.chip == "mcp3008":
        rows.append(_spi_row("MCP3008", s.adc.spi_bus, s.adc.spi_device, open_spi, clock))
    if s.ecg.enabled and s.ecg.source == "ads1292r":
        rows.append(_spi_row("ADS1292R", s.ecg.spi_bus, s.ecg.spi_device, open_spi, clock))
    rows.append(_camera_row(config.face, clock))
    if emulated is not None and emulated is not given:
        emulated.close()
    return rows


def format_table(rows: list[ProbeRow]) -> str:
    header = ("bus", "address", "expected", "found", "status")
    cells = [header] + [(r.bus, r.address, r.expected or "-", r.found or "-", r.status)
                        for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(header))).rstrip()
                     for c in cells)
