"""The screen's security, in process (Starlette's test client over the real app and store)."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from device.station import people
from device.station.config import StationSection
from device.station.store import Store
from device.station.web import create_app


@pytest.fixture
def app_store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.migrate()
    people.add_user(store, "nurse-ann", "correct horse battery", "nurse")
    yield store
    store.close()


def client(store, secure: bool) -> TestClient:
    settings = StationSection(state_dir=str(store.url), secure_cookies=secure)
    base = "https://station.test" if secure else "http://127.0.0.1"
    return TestClient(create_app(store, settings, None, "k" * 64), base_url=base)


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def page_token(html: str) -> str:
    """The CSRF token a logged-in page gives its scripts (the x-csrf-token header)."""
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def test_cookies_are_secure_httponly_samesite_and_pages_carry_a_csp(app_store):
    c = client(app_store, secure=True)
    page = c.get("/login")
    cookie = page.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    dev = client(app_store, secure=False).get("/login").headers["set-cookie"].lower()
    assert "secure" not in dev.replace("samesite", "")


def test_log_in_needs_the_csrf_token_and_the_right_password(app_store):
    c = client(app_store, secure=False)
    token = csrf(c.get("/login").text)
    no_token = c.post("/login", data={"username": "nurse-ann", "password": "correct horse battery"})
    assert no_token.status_code == 403
    wrong = c.post("/login", data={"csrf_token": token, "username": "nurse-ann",
                                   "password": "correct horse batterY"})
    assert "Wrong user name or password" in wrong.text
    assert c.get("/api/ward").status_code == 401
    ok = c.post("/login", data={"csrf_token": token, "username": "nurse-ann",
                                "password": "correct horse battery"}, follow_redirects=False)
    assert ok.status_code == 303
    assert c.get("/api/ward").json()["beds"] == []
    # A state-changing request without the session's token is refused before anything is sent.
    refused = c.post("/api/bed/bed-1/acknowledge", json={"alarm_id": "1"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    forged = c.post("/api/bed/bed-1/acknowledge", json={"alarm_id": "1"},
                    headers={"x-csrf-token": "guess"})
    assert forged.status_code == 403
    # With the token it passes the checks; this process has no broker link, and says so.
    page = c.get("/")
    token = page_token(page.text)
    sent = c.post("/api/bed/bed-1/acknowledge", json={"alarm_id": "1"},
                  headers={"x-csrf-token": token})
    assert sent.status_code == 503
    assert people.audit_trail(app_store)[0]["action"] == "login"


def logged_in(store, user=("nurse-ann", "correct horse battery")) -> tuple[TestClient, str]:
    c = client(store, secure=False)
    token = csrf(c.get("/login").text)
    c.post("/login", data={"csrf_token": token, "username": user[0], "password": user[1]})
    page = c.get("/")
    return c, page_token(page.text)


@pytest.mark.parametrize("command, body, reason", [
    ("cpot", {"facial_expression": 1, "body_movements": 0, "muscle_tension": 2},
     "give exactly one of ventilator_compliance (intubated) and vocalization"),
    ("cpot", {"facial_expression": 1, "body_movements": 0, "muscle_tension": 2,
              "ventilator_compliance": 1, "vocalization": 0}, "got ['ventilator_compliance'"),
    ("painad", {"breathing": 3, "negative_vocalization": 0, "facial_expression": 0,
                "body_language": 0, "consolability": 0}, "breathing: Input should be less"),
    ("painad", {"breathing": "1", "negative_vocalization": 0, "facial_expression": 0,
                "body_language": 0, "consolability": 0}, "breathing: Input should be a valid integer"),
    ("painad", {"breathing": True, "negative_vocalization": 0, "facial_expression": 0,
                "body_language": 0, "consolability": 0}, "breathing: Input should be a valid integer"),
    ("painad", {"breathing": 1}, "consolability: Field required"),
    ("analgesia", {"route": "into the eye"}, "route: Input should be 'iv'"),
    ("analgesia", {"minutes_ago": 721}, "minutes_ago: Input should be less than or equal to 720"),
    ("analgesia", {"route": "iv", "dose_mg": 5}, "dose_mg: unknown field"),
    ("analgesia", {"route": "iv", "request_id": "mine"}, "request_id: set by the station"),
    ("admit", {"reference": "P-1"}, "no form for 'admit'"),
])
def test_a_bedside_form_the_device_would_refuse_is_refused_at_the_station_with_its_reason(
        app_store, command, body, reason):
    c, token = logged_in(app_store)
    r = c.post(f"/api/bed/bed-1/{command}", json=body, headers={"x-csrf-token": token})
    assert r.status_code == 400, r.text
    assert reason in r.json()["error"]


def test_bedside_forms_are_drawn_from_the_published_schemas_and_pass_the_station_when_valid(
        app_store):
    c, token = logged_in(app_store)
    html = c.get("/bed/bed-1").text
    for command in ("painad", "cpot", "analgesia"):
        assert f'id="form-{command}"' in html
    assert html.count('<select name="breathing" data-kind="int" required>') == 1
    assert '<option value="transdermal">' in html  # the route list is the schema's
    assert "Give this or vocalization" in html  # the CPOT's fourth item says what to do
    # Valid: past the station's checks; this process has no broker link, and says so (503).
    ok = c.post("/api/bed/bed-1/cpot", json={"facial_expression": 1, "body_movements": 0,
                                             "muscle_tension": 2, "vocalization": 1},
                headers={"x-csrf-token": token})
    assert ok.status_code == 503 and "does not talk to the broker" in ok.json()["error"]


def test_a_viewer_sees_no_bedside_form_and_may_not_send_one(app_store):
    people.add_user(app_store, "viewer-bob", "another long password", "viewer")
    c, token = logged_in(app_store, ("viewer-bob", "another long password"))
    assert 'class="bedside"' not in c.get("/bed/bed-1").text
    r = c.post("/api/bed/bed-1/analgesia", json={"route": "iv"}, headers={"x-csrf-token": token})
    assert r.status_code == 403
