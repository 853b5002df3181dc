from sensors.clock import SteppedClock

from device.processing.alarms import AlarmBook


def book():
    clock = SteppedClock()
    b = AlarmBook(clock)
    events = []
    b.listeners.append(lambda event, alarm: events.append((event, alarm.id, alarm.priority)))
    return clock, b, events


def test_one_condition_is_one_alarm_until_cleared():
    clock, b, events = book()
    a = b.raise_alarm("finger_off", "ppg", category="technical", priority="low", message="x")
    again = b.raise_alarm("finger_off", "ppg", category="technical", priority="low", message="x")
    assert again is a and len(b.active()) == 1
    assert b.clear("finger_off", "ppg").state == "cleared"
    assert b.clear("finger_off", "ppg") is None
    assert events == [("raised", a.id, "low"), ("cleared", a.id, "low")]
    again = b.raise_alarm("finger_off", "ppg", category="technical", priority="low", message="x")
    assert again.id != a.id


def test_unacknowledged_medium_escalates_acknowledged_does_not():
    clock, b, events = book()
    a = b.raise_alarm("pain_high", "fusion", category="physiological", priority="medium",
                      message="pain >= 7 for 60 s", escalate_after_s=120)
    c = b.raise_alarm("pain_high", "other", category="physiological", priority="medium",
                      message="m", escalate_after_s=120)
    clock.advance(60)
    b.acknowledge(c.id, by="nurse")
    clock.advance(61)
    b.tick()
    assert a.priority == "high" and c.priority == "medium"
    assert ("escalated", a.id, "high") in events and ("escalated", c.id, "high") not in events
    assert b.loudest() == "high"
    b.acknowledge(a.id)
    assert b.loudest() is None and len(b.active()) == 2


def test_bad_priority_is_refused_by_name():
    _, b, _ = book()
    try:
        b.raise_alarm("k", "s", category="technical", priority="urgent", message="m")
    except ValueError as exc:
        assert "priority" in str(exc)
    else:
        raise AssertionError("accepted an unknown priority")


def test_a_failing_listener_does_not_silence_the_others():
    _, b, events = book()
    b.listeners.insert(0, lambda *_: 1 / 0)
    b.raise_alarm("k", "s", category="technical", priority="low", message="m")
    assert events and events[0][0] == "raised"
