"""The demo's --fault: parsed strictly, played on the emulated subject's contact flags."""

from __future__ import annotations

import pytest

from sensors.clock import SteppedClock
from sensors.emulated.board import FlagOverrides
from sensors.emulated.scenario import Scenario

from device.app.demo_faults import DemoFault, parse_fault, schedule_faults
from device.cli import main


def test_faults_parse_and_refuse_nonsense():
    assert parse_fault("finger_off@30-90") == DemoFault("finger_off", 30.0, 90.0)
    assert parse_fault("lead_off@5.5") == DemoFault("lead_off", 5.5, None)
    for bad, says in (("finger_off", "KIND@START"), ("nose_off@3", "finger_off, lead_off"),
                      ("gsr_open@9-4", "after the start"), ("finger_off@-3", "KIND@START")):
        with pytest.raises(ValueError, match=says):
            parse_fault(bad)


def test_a_bad_fault_is_refused_before_the_demo_starts(capsys):
    assert main(["demo", "--fault", "nose_off@3"]) == 2
    assert "--fault kind must be one of" in capsys.readouterr().err


class _Board:
    def __init__(self, clock) -> None:
        self.clock = clock
        self.overrides = FlagOverrides(Scenario.demo())


def test_faults_take_the_contact_away_for_their_window_only():
    clock = SteppedClock()
    clock.advance_to(100 * 10**9)
    board = _Board(clock)
    schedule_faults(board, [parse_fault("finger_off@10-20"), parse_fault("gsr_open@15")])
    at = board.overrides.state_at
    assert at(105).finger_on and at(115).finger_on is False and at(121).finger_on
    assert at(114).skin_contact and at(116).skin_contact is False and at(500).skin_contact is False
    assert at(115).leads_on
