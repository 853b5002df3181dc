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
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    sent = c.post("/api/bed/bed-1/acknowledge", json={"alarm_id": "1"},
                  headers={"x-csrf-token": token})
    assert sent.status_code == 503
    assert people.audit_trail(app_store)[0]["action"] == "login"
