"""The ward screen in a real headless Chromium, fed by simulated beds through a real mosquitto,
on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from tests.device.station.conftest import ADMIN, VIEWER, log_in, wait_for
from tests.device.station.test_ingest import raw_publish
from tools.bench.ward_sim import SimulatedBed

TIMEOUT_MS = 10_000


def viewer_may_look_but_not_acknowledge(browser, station, device_id: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, station, VIEWER)
        tile = page.locator(f"#bed-{device_id}")
        expect(tile.locator(".alarm")).to_have_count(1, timeout=TIMEOUT_MS)
        expect(tile.get_by_role("button", name="Acknowledge")).to_have_count(0)
        # Even a hand-made request with the page's own CSRF token is refused.
        status = page.evaluate("""async (device) => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch(`/api/bed/${device}/acknowledge`, {method: 'POST',
                headers: {'content-type': 'application/json', 'x-csrf-token': token},
                body: JSON.stringify({alarm_id: 'all'})});
            return r.status; }""", device_id)
        assert status == 403
    finally:
        context.close()


def admin_reads_who_acknowledged(browser, station, alarm_id: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, station, ADMIN)
        page.get_by_role("link", name="Audit trail").click()
        row = page.locator("#audit tr", has_text="command.acknowledge")
        expect(row).to_contain_text("nurse-ann")
        expect(row).to_contain_text(f'"alarm_id": "{alarm_id}"')
        expect(page.locator("#audit")).to_contain_text("login.failed")
    finally:
        context.close()


def test_log_in_see_a_bed_and_acknowledge_its_alarm(station, browser, page, mosquitto):
    page.goto(station.url + "/")
    expect(page).to_have_url(station.url + "/login")
    page.fill("input[name=username]", "nurse-ann")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("Wrong user name or password")
    log_in(page, station)

    bed = SimulatedBed(mosquitto.host, mosquitto.port, "bed-07").start()
    try:
        bed.hop(score=7.2)
        tile = page.locator("#bed-bed-07")
        expect(tile).to_be_visible(timeout=TIMEOUT_MS)
        # The level in text and in colour.
        expect(tile.locator(".level")).to_have_text("severe", timeout=TIMEOUT_MS)
        expect(tile.locator(".level")).to_have_class("level severe")
        expect(tile.locator(".score")).to_have_text("7.2")
        expect(tile.locator(".avail")).to_have_text("online")
        expect(tile).to_contain_text("confidence 72%")

        alarm = bed.raise_pain_alarm()
        row = tile.locator(f'[data-alarm="{alarm.id}"]')
        expect(row).to_contain_text("medium · raised", timeout=TIMEOUT_MS)
        row.get_by_role("button", name="Acknowledge").click()
        expect(tile.locator(".command")).to_contain_text(
            f"acknowledge {alarm.id} by nurse-ann: done by the bed", timeout=TIMEOUT_MS)
        assert bed.book.get("pain_high", "pain").acknowledged_by == "nurse-ann"
        expect(row).to_contain_text("medium · acknowledged", timeout=TIMEOUT_MS)
        expect(row.get_by_role("button")).to_have_count(0)

        viewer_may_look_but_not_acknowledge(browser, station, "bed-07")
        admin_reads_who_acknowledged(browser, station, alarm.id)

        bed.clear_pain_alarm()
        expect(tile.locator(".alarm")).to_have_count(0, timeout=TIMEOUT_MS)
        bed.hop(score=1.0)
        expect(tile.locator(".level")).to_have_text("mild", timeout=TIMEOUT_MS)

        # The bed view: the estimate's why, the alarm's history, who acknowledged it.
        tile.get_by_role("link", name="bed-07").click()
        expect(page.locator("#bed-why")).to_contain_text("pspi", timeout=TIMEOUT_MS)
        events = page.locator("#bed-events")
        expect(events).to_contain_text("acknowledged", timeout=TIMEOUT_MS)
        expect(events).to_contain_text("nurse-ann")
        expect(events).to_contain_text("cleared")
    finally:
        bed.stop()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_forged_payload_vanished_bed_and_broker_restart_are_shown(station, page, mosquitto):
    log_in(page, station)
    steady = SimulatedBed(mosquitto.host, mosquitto.port, "bed-01").start()
    lost = SimulatedBed(mosquitto.host, mosquitto.port, "bed-02", keepalive_s=1).start()
    try:
        steady.hop(score=2.0)
        lost.hop(score=3.0)
        expect(page.locator("#bed-bed-02 .avail")).to_have_text("online", timeout=TIMEOUT_MS)
        lost.vanish()  # silent: the broker's keep-alive and last will tell

        forged = {**steady.envelope("painmon.pain/1"), "device_id": "bed-02", "score": 10,
                  "level": "severe", "confidence": 1, "contributions": {}, "flags": []}
        raw_publish(mosquitto, steady.topic("pain"), json.dumps(forged).encode())
        expect(page.locator("#rejected")).to_contain_text(
            "does not match the topic", timeout=TIMEOUT_MS)
        expect(page.locator("#bed-bed-01")).to_contain_text("1 refused message")
        expect(page.locator("#bed-bed-01 .score")).to_have_text("2.0")

        expect(page.locator("#bed-bed-02 .avail")).to_contain_text("offline", timeout=TIMEOUT_MS)

        steady.connected.clear()
        mosquitto.kill()
        expect(page.locator("#broker")).to_have_text(
            "Broker unreachable: beds are not updating", timeout=TIMEOUT_MS)
        expect(page.locator("#bed-bed-01 .avail")).to_contain_text("stale", timeout=TIMEOUT_MS)
        mosquitto.start()
        expect(page.locator("#broker")).to_have_text("", timeout=TIMEOUT_MS)
        assert steady.connected.wait(10), "the bed did not reconnect"
        steady.hop(score=4.0)
        expect(page.locator("#bed-bed-01 .avail")).to_have_text("online", timeout=TIMEOUT_MS)
        expect(page.locator("#bed-bed-01 .score")).to_have_text("4.0", timeout=TIMEOUT_MS)
    finally:
        steady.stop()


def fill_form(page, command: str, **fields) -> None:
    """A nurse fills a bedside form on the bed view and sends it."""
    form = page.locator(f"#form-{command}")
    for name, value in fields.items():
        control = form.locator(f"[name={name}]")
        if control.evaluate("c => c.tagName") == "SELECT":
            control.select_option(str(value))
        else:
            control.fill(str(value))
    form.get_by_role("button").click()


def a_dose_and_a_painad_score_entered_on_the_bed_view(page) -> None:
    """A dose given a minute ago (the demo reassesses after 30 s: overdue at once), a CPOT the
    station refuses (no fourth item), then a PAINAD, which answers the dose's reassessment; all
    entered on the bed view's forms, drawn and listed, in words."""
    fill_form(page, "analgesia", route="iv", drug_class="opioid", minutes_ago=1)
    expect(page.locator("#bed-command")).to_contain_text(
        "analgesia by nurse-ann: done by the bed", timeout=TIMEOUT_MS)
    doses = page.locator("#bed-doses")
    expect(doses).to_contain_text("iv opioid", timeout=TIMEOUT_MS)
    expect(doses.locator("li.dose.overdue")).to_contain_text("reassessment overdue since")
    expect(page.locator("#chart-doses .mark.dose")).to_contain_text("▲ iv opioid")
    expect(page.locator("#chart-pain line.dose")).to_have_count(1)

    fill_form(page, "cpot", facial_expression=1, body_movements=0, muscle_tension=1)
    expect(page.locator("#bed-command")).to_contain_text(
        "not sent: payload: Value error, give exactly one of ventilator_compliance")
    expect(page.locator("#bed-scales")).not_to_contain_text("CPOT")

    fill_form(page, "painad", breathing=1, negative_vocalization=0, facial_expression=2,
              body_language=0, consolability=0)
    expect(page.locator("#bed-command")).to_contain_text(
        "painad by nurse-ann: done by the bed", timeout=TIMEOUT_MS)
    expect(page.locator("#bed-scales")).to_contain_text("PAINAD 3/10 (3.0/10)",
                                                        timeout=TIMEOUT_MS)
    expect(page.locator("#chart-pain rect.scale.painad")).to_have_count(1)
    expect(page.locator("#chart-pain .mark.scale")).to_have_text("■ PAINAD 3/10 (3.0/10)")
    expect(doses.locator("li.dose.answered")).to_contain_text(
        re.compile(r"iv opioid — reassessed .+ \(painad\)"), timeout=TIMEOUT_MS)
    expect(doses.locator("li.dose.overdue")).to_have_count(0)
    expect(page.locator("#chart-doses .mark.dose")).to_contain_text("reassessed")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_demo_bed_live_and_a_rating_entered_at_the_station(station, page, mosquitto,
                                                               face_model_dir):
    """``painmon demo`` and ``painmon station`` side by side: the demo device appears, a pain
    rating entered on its bed view is answered by the device's own command handler, and a
    nurse's dose and PAINAD score entered on its forms are drawn and listed on the bed view.
    (The demo reads the face models from the default directory ``face_model_dir`` fills: its
    face gives the first estimate within seconds, long before the physiology's.)"""
    from tests.device.app.test_demo import demo_process

    demo = demo_process("--broker", f"{mosquitto.host}:{mosquitto.port}", "--seconds", "90")
    try:
        log_in(page, station)
        tile = page.locator("#bed-painmon-demo")
        expect(tile.locator(".avail")).to_have_text("online", timeout=20_000)
        expect(tile.locator(".level")).to_have_text(
            re.compile("^(none|mild|moderate|severe)$"), timeout=20_000)
        tile.get_by_role("link", name="painmon-demo").click()
        page.fill("#nrs", "6")
        page.get_by_role("button", name="Send to the bed").click()
        expect(page.locator("#bed-command")).to_contain_text(
            "self_report by nurse-ann: done by the bed", timeout=TIMEOUT_MS)
        expect(page.locator("#bed-reports")).to_contain_text("NRS 6 (nurse)", timeout=TIMEOUT_MS)
        a_dose_and_a_painad_score_entered_on_the_bed_view(page)
    finally:
        demo.terminate()
        demo.wait(10)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_station_killed_mid_stream_loses_nothing(station, mosquitto):
    """SIGKILL mid-stream: the restarted station resumes its broker session (the same client
    id) and gets what was published while it was down, and whatever it had received but not
    stored (acknowledged only once stored)."""
    import sqlalchemy as sa

    from device.station import tables as T
    from device.station.store import Store

    bed = SimulatedBed(mosquitto.host, mosquitto.port, "bed-k").start()
    try:
        for i in range(40):
            bed.hop(score=1.0, face=False, health=False)
            if i == 20:
                station.process.kill()
                station.process.wait(5)
            time.sleep(0.05)
        station.start()
        published = {seq for sub, seq, _ in bed.published if sub == "pain"}
        store = Store(station.db_url)
        try:
            def stored():
                with store.engine.connect() as conn:
                    return {r.seq for r in conn.execute(
                        sa.select(T.pain.c.seq).where(T.pain.c.device_id == "bed-k"))}
            wait_for(lambda: stored() >= published, 15, "every estimate stored")
        finally:
            store.close()
    finally:
        bed.stop()


def test_crowded_doses_and_scale_scores_are_labelled_without_covering_one_another(
        station, page, mosquitto):
    """Five doses and five PAINAD/CPOT scores within twenty minutes of a 24 h chart: every label
    is drawn, none covers another, and the pain chart's labels that had to move stay inside it."""
    from tests.device.station.test_views import dose, painad

    bed = SimulatedBed(mosquitto.host, mosquitto.port, "bed-c").start()
    try:
        bed.hop(score=4.0)
        now = time.time()
        results = []
        for i, ago in enumerate((1500, 1200, 900, 600, 300)):
            given = dose(i + 1, "iv", "opioid", ago, 1800)
            results.append(("analgesia", ago, given))
            total = 3 + i % 3
            score = (painad(total) if i % 2 == 0 else
                     {**painad(total), "scale": "cpot", "max_total": 8,
                      "score_0_10": round(total * 10 / 8, 2)})
            results.append((score["scale"], ago - 30, score))
        for command_name, ago, result in results:
            bed.send("cmd/result", {**bed.envelope("painmon.command_result/1", now - ago),
                                    "command": command_name, "request_id": f"{command_name}-{ago}",
                                    "ok": True, "result": result})
        log_in(page, station)
        page.goto(f"{station.url}/bed/bed-c")
        expect(page.locator("#chart-doses .mark")).to_have_count(5, timeout=TIMEOUT_MS)
        expect(page.locator("#chart-pain .mark")).to_have_count(5, timeout=TIMEOUT_MS)
        page.wait_for_timeout(300)  # one layout after the last refresh's labels
        for chart in ("#chart-doses", "#chart-pain"):
            box = page.locator(chart).bounding_box()
            marks = [page.locator(f"{chart} .mark").nth(i).bounding_box() for i in range(5)]
            for i, a in enumerate(marks):
                assert a["height"] > 0 and a["width"] > 0, f"{chart}: label {i} not drawn"
                assert box["y"] - 1 <= a["y"] and a["y"] + a["height"] <= box["y"] + box["height"] + 1, \
                    f"{chart}: label {i} {a} outside the chart {box}"
                for j, b in enumerate(marks[:i]):
                    overlap = (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
                               and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])
                    assert not overlap, f"{chart}: labels {j} and {i} overlap: {b} {a}"
    finally:
        bed.stop()
