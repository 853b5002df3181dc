"""The ADS1292R driver against the register-level emulator, DRDY on a gpiozero MockFactory pin."""

from __future__ import annotations

import errno
from dataclasses import dataclass

import numpy as np
import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockFactory

from sensors.ads1292r import (
    CHIP_ID,
    CODE_MAX,
    DATA_RATES_SPS,
    GAINS,
    Ads1292r,
    Opcode,
    decode_frames,
    lsb_v,
)
from sensors.bus import ChipIdError
from sensors.clock import SteppedClock
from sensors.emulated.ads1292r import EmulatedAds1292r
from sensors.emulated.pins import EmulatedPinDriver
from sensors.emulated.spi import EmulatedSpiDev

DRDY = 25


def ecg(t_s):
    """A 1.2 Hz ECG-like wave crossing zero, in mV."""
    return 1.1 * np.sin(2 * np.pi * 1.2 * np.asarray(t_s)) - 0.2


def resp(t_s):
    """0.25 Hz breathing on the demodulator output, in mV."""
    return 40.0 + 15.0 * np.sin(2 * np.pi * 0.25 * np.asarray(t_s))


@dataclass
class Rig:
    clock: SteppedClock
    factory: MockFactory
    chip: EmulatedAds1292r
    spi: EmulatedSpiDev
    dev: Ads1292r

    def run(self, periods: int, step: int = 1, read_every: int = 1) -> list:
        """Advance ``periods`` data periods, ``step`` at a time (ticking the chip), reading
        after every ``read_every`` steps; returns the blocks read."""
        blocks = []
        for n in range(periods // step):
            self.clock.advance(step / self.dev.data_rate_sps)
            self.spi.tick()
            if (n + 1) % read_every == 0:
                blocks += self.dev.read()
        return blocks


def rig(ecg_source=ecg, resp_source=resp, *, pin=True, chip_kw=None, spi_kw=None, **driver_kw):
    clock = SteppedClock(start_ns=7_000_000_000)
    factory = MockFactory()
    drdy = EmulatedPinDriver(factory, DRDY) if pin else None
    chip = EmulatedAds1292r(clock, ecg_source, resp_source, drdy_pin=drdy, **(chip_kw or {}))
    spi = EmulatedSpiDev(chip, bus=0, device=1, **(spi_kw or {}))
    if pin:
        driver_kw.setdefault("drdy", DRDY)
        driver_kw.setdefault("pin_factory", factory)
    return Rig(clock, factory, chip, spi, Ads1292r(spi, clock, **driver_kw))


def samples(blocks, channel):
    picked = [b for b in blocks if b.channel == channel]
    if not picked:
        return np.array([]), np.array([], dtype=np.int64)
    return (np.concatenate([b.samples for b in picked]),
            np.concatenate([b.times_ns() for b in picked]))


def lsb_mv(gain):
    return lsb_v(gain) * 1e3


# -- identification and configuration ---------------------------------------------------------
def test_open_resets_identifies_configures_and_streams():
    r = rig()
    r.dev.open()
    ops = r.chip.commands
    assert ops[:2] == [Opcode.RESET, Opcode.SDATAC]
    assert ops[-2:] == [Opcode.RDATAC, Opcode.START]
    assert r.chip.rdatac and r.chip.converting
    assert r.spi.mode == 1 and r.spi.max_speed_hz == 1_000_000 and r.spi.garbled == 0


def test_wrong_id_names_chip_bus_found_and_expected():
    r = rig(chip_kw={"chip_id": 0x53})
    with pytest.raises(ChipIdError, match=r"spidev0\.1: ID is 0x53 \(ADS1292\), expected 0x73") as info:
        r.dev.open()
    assert (info.value.found, info.value.expected, info.value.chip) == (0x53, CHIP_ID, "ADS1292R")
    assert Opcode.START not in r.chip.commands  # a wrong chip is not configured


@pytest.mark.parametrize("idle", [0x00, 0xFF])
def test_unplugged_chip_reads_as_a_stuck_miso(idle):
    r = rig(spi_kw={"miso_idle": idle})
    r.spi.detach()
    with pytest.raises(ChipIdError, match=f"0x{idle:02x} \\(MISO stuck") as info:
        r.dev.open()
    assert info.value.found == idle


def test_register_writes_land_and_read_back():
    r = rig()
    r.dev.open()
    wanted = r.dev.configuration()
    names = ["CONFIG1", "CONFIG2", "LOFF", "CH1SET", "CH2SET", "RLD_SENS", "LOFF_SENS",
             "LOFF_STAT", "RESP1", "RESP2"]
    assert [r.chip.regs.get(n) for n in names] == wanted
    # RREG is ignored while streaming: the bytes are frame data, not the ID.
    assert r.dev.read_registers("ID") != [CHIP_ID]
    r.spi.xfer2([Opcode.SDATAC])
    assert r.dev.read_registers("ID") == [CHIP_ID]
    r.dev.write_registers("CH1SET", [0x15])
    r.dev.write_registers("ID", [0x00])  # read-only
    assert r.dev.read_registers("ID", 5) == [CHIP_ID, wanted[0], wanted[1], wanted[2], 0x15]


def test_fast_command_bytes_are_not_understood():
    r = rig()
    r.dev.open()
    r.spi.xfer2([Opcode.SDATAC])
    before = r.chip.regs.get("LOFF")
    r.spi.xfer2([Opcode.WREG | 0x03, 0, 0xF0], speed_hz=4_000_000)  # tSDECODE violated
    assert r.chip.protocol_errors == 1 and r.chip.regs.get("LOFF") == before
    with pytest.raises(ValueError, match="max_speed_hz"):
        rig(max_speed_hz=4_000_000)


def test_settings_are_checked():
    for kw, match in (({"data_rate_sps": 300}, "data_rate_sps"), ({"ecg_gain": 5}, "ecg_gain"),
                      ({"vref_v": 3.3}, "vref_v")):
        with pytest.raises(ValueError, match=match):
            rig(**kw)
    with pytest.raises(RuntimeError, match="not open"):
        rig().dev.read()


# -- data rate, gain, format ----------------------------------------------------------------------
@pytest.mark.parametrize("rate", [250, 500])
def test_data_rate(rate):
    r = rig(data_rate_sps=rate)
    r.dev.open()
    assert r.chip.regs.get_field("CONFIG1", "DR") == DATA_RATES_SPS.index(rate)
    blocks = r.run(rate * 2, read_every=rate // 10)
    ecg_mv, t_ns = samples(blocks, "ecg")
    assert len(ecg_mv) == 2 * rate and {b.rate_hz for b in blocks} == {rate}
    assert np.all(np.diff(t_ns) == round(1e9 / rate))


@pytest.mark.parametrize("gain", GAINS)
def test_gain_scaling_within_one_lsb(gain):
    level_mv = 0.8 * 2420.0 / gain  # 80 % of full scale
    r = rig(lambda t: np.full(np.shape(t), level_mv), ecg_gain=gain, respiration=False)
    r.dev.open()
    ecg_mv, _ = samples(r.run(10), "ecg")
    assert len(ecg_mv) == 10
    assert np.all(np.abs(ecg_mv - level_mv) <= lsb_mv(gain))
    assert r.chip.regs.get_field("CH2SET", "GAIN") == GAINS.index(gain)


def test_signal_follows_the_source_at_the_sample_times():
    r = rig()
    r.dev.open()
    blocks = r.run(500, read_every=25)
    ecg_mv, t_ns = samples(blocks, "ecg")
    resp_mv, _ = samples(blocks, "resp")
    assert np.all(np.abs(ecg_mv - ecg(t_ns / 1e9)) <= lsb_mv(6))
    assert np.all(np.abs(resp_mv - resp(t_ns / 1e9)) <= lsb_mv(1))
    assert ecg_mv.min() < 0 < ecg_mv.max()


def test_negative_values_are_24_bit_twos_complement():
    r = rig(lambda t: np.full(np.shape(t), -1.234), respiration=False)
    r.dev.open()
    r.clock.advance(0.004)
    r.spi.tick()
    frame = r.chip.output
    assert frame[6] & 0x80  # CH2 MSB set: negative
    code = int.from_bytes(frame[6:9], "big") - (1 << 24)
    assert code == round(-1.234e-3 * 6 / 2.42 * CODE_MAX)
    ecg_mv, _ = samples(r.dev.read(), "ecg")
    assert abs(ecg_mv[0] + 1.234) <= lsb_mv(6)


def test_decode_frames_sign_extension():
    frame = bytes([0xC0, 0, 0, 0x80, 0x00, 0x00, 0xFF, 0xFF, 0xFF,
                   0xC0, 0, 0, 0x7F, 0xFF, 0xFF, 0x00, 0x00, 0x01])
    status, ch1, ch2 = decode_frames(frame)
    assert list(status) == [0xC00000, 0xC00000]
    assert list(ch1) == [-(1 << 23), CODE_MAX] and list(ch2) == [-1, 1]


def test_full_scale_inputs_clip_at_the_extreme_codes():
    r = rig(lambda t: np.full(np.shape(t), 500.0), lambda t: np.full(np.shape(t), -5000.0))
    r.dev.open()
    blocks = r.run(2)
    assert samples(blocks, "ecg")[0][0] == pytest.approx(CODE_MAX * lsb_mv(6))
    assert samples(blocks, "resp")[0][0] == pytest.approx(-(CODE_MAX + 1) * lsb_mv(1))


# -- streaming and lost frames ---------------------------------------------------------------------
def test_drdy_edges_read_every_frame_with_no_loss():
    r = rig()
    r.dev.open()
    blocks = r.run(600, step=3, read_every=10)  # the chip pulses DRDY 3 times per tick
    ecg_mv, t_ns = samples(blocks, "ecg")
    assert len(ecg_mv) == 600 == r.chip.frames_produced == r.chip.frames_read
    assert r.dev.dropped_samples == 0 == r.chip.frames_lost
    assert r.dev.poll_interval_s == pytest.approx(0.1)
    assert np.all(np.diff(t_ns) == 4_000_000)  # blocks follow each other without gaps


def test_drdy_without_reading_on_edge_counts_lost_frames():
    r = rig(read_on_edge=False)
    r.dev.open()
    assert r.dev.poll_interval_s == pytest.approx(1 / 250)
    blocks = r.run(90)  # read after every DRDY: nothing lost
    assert len(samples(blocks, "ecg")[0]) == 90 and r.dev.dropped_samples == 0
    blocks = r.run(90, read_every=3)  # read after every third DRDY: two of three lost
    ecg_mv, t_ns = samples(blocks, "ecg")
    assert len(ecg_mv) == 30
    assert r.dev.dropped_samples == 60 == r.chip.frames_lost
    assert np.all(np.abs(ecg_mv - ecg(t_ns / 1e9)) <= lsb_mv(6))


def test_polling_without_a_pin_paces_itself_by_the_data_rate():
    r = rig(pin=False, data_rate_sps=500)
    r.dev.open()
    assert r.dev.drdy is None and r.dev.poll_interval_s == pytest.approx(1 / 500)
    assert r.dev.read() == []  # nothing due yet
    blocks = r.run(100)
    ecg_mv, t_ns = samples(blocks, "ecg")
    assert len(ecg_mv) == 100 and r.dev.dropped_samples == 0 == r.chip.frames_lost
    assert np.all(np.abs(ecg_mv - ecg(t_ns / 1e9)) <= lsb_mv(6))
    assert r.dev.read() == []  # read again before the next conversion: no duplicate
    blocks = r.run(100, read_every=4)
    ecg_mv, t_ns = samples(blocks, "ecg")
    assert len(ecg_mv) == 25 and r.dev.dropped_samples == 75 == r.chip.frames_lost
    assert np.all(np.abs(ecg_mv - ecg(t_ns / 1e9)) <= lsb_mv(6))
    assert len(blocks) == 2 * 25  # every read after a loss starts a new block


def test_unplugged_while_streaming_raises_eio():
    r = rig(pin=False)
    r.dev.open()
    r.spi.detach()
    r.clock.advance(0.01)
    with pytest.raises(OSError, match="status word 0x000000") as info:
        r.dev.read()
    assert info.value.errno == errno.EIO


def test_silent_drdy_pin_times_out():
    r = rig()
    r.dev.open()
    r.run(10)
    r.spi.detach()  # the ticks reach no chip: DRDY stops
    assert r.run(100) == []  # 0.4 s of silence is tolerated
    with pytest.raises(OSError, match="no DRDY edge for 0.5") as info:
        r.run(50)
    assert info.value.errno == errno.ETIMEDOUT


# -- lead-off and respiration ------------------------------------------------------------------------
def test_lead_off_bits_are_decoded_per_electrode():
    r = rig()
    r.dev.open()
    r.run(5)
    assert r.dev.lead_off == {"la": False, "ra": False, "rl": False}
    r.chip.set_lead_off(ra=True)
    ecg_mv, _ = samples(r.run(5), "ecg")
    assert r.dev.lead_off == {"la": False, "ra": True, "rl": False}
    assert np.all(ecg_mv == -(CODE_MAX + 1) * lsb_mv(6))  # IN2N pulled to the rail
    r.chip.set_lead_off(ra=False, la=True, rl=True)
    ecg_mv, _ = samples(r.run(5), "ecg")
    assert r.dev.lead_off == {"la": True, "ra": False, "rl": True}
    assert np.all(ecg_mv == CODE_MAX * lsb_mv(6))
    r.chip.set_lead_off(la=False, rl=False)
    r.run(5)
    assert not any(r.dev.lead_off.values())


def test_lead_off_is_only_reported_for_sensed_inputs():
    clock = SteppedClock()
    chip = EmulatedAds1292r(clock, ecg)  # reset values: sensing and comparators off
    chip.set_lead_off(la=True, ra=True, rl=True)
    assert chip.loff_status() == 0
    chip.regs.set_field("CONFIG2", "PDB_LOFF_COMP", 1)
    chip.regs.set_field("LOFF_SENS", "LOFF2P", 1)
    assert chip.loff_status() == 0b00100  # IN2P_OFF only


def test_respiration_channel_present_when_configured():
    r = rig()
    r.dev.open()
    assert r.chip.regs.get_field("RESP1", "RESP_DEMOD_EN1") == 1
    assert {b.channel for b in r.run(10)} == {"ecg", "resp"}


def test_respiration_channel_absent_when_not_configured():
    r = rig(respiration=False)
    r.dev.open()
    assert r.chip.regs.get_field("RESP1", "RESP_DEMOD_EN1") == 0
    assert r.chip.regs.get_field("CH1SET", "PD") == 1
    blocks = r.run(10)
    assert {b.channel for b in blocks} == {"ecg"} and r.dev.channels == ("ecg",)
    assert np.all(r.chip.codes(1, np.array([1.0, 2.0])) == 0)  # CH1 powered down


# -- closing -----------------------------------------------------------------------------------------
def test_close_is_idempotent_and_releases_the_pin():
    r = rig()
    r.dev.open()
    r.run(10)
    r.dev.close()
    r.dev.close()
    assert r.chip.commands[-3:] == [Opcode.SDATAC, Opcode.STOP, Opcode.STANDBY]
    assert r.chip.commands.count(Opcode.STANDBY) == 1
    assert not r.chip.converting and r.dev.drdy is None
    DigitalInputDevice(DRDY, pin_factory=r.factory).close()  # the pin is free again
    r.dev.open()  # and the chip comes back (RESET leaves standby)
    assert len(samples(r.run(10), "ecg")[0]) == 10


def test_context_manager_and_reopen_after_fault():
    r = rig(pin=False)
    with r.dev as dev:
        dev.open()  # re-initialising an open driver is a recovery, not an error
        assert len(samples(r.run(5), "ecg")[0]) == 5
    assert not r.dev.is_open
