"""The ward screen: Starlette, server-rendered pages, live updates by Server-Sent Events.

Every asset is served from ``static/`` (no CDN: a ward network may have no internet). Every
state-changing request needs the session's CSRF token (a form field or ``X-CSRF-Token``);
session cookies are signed, HttpOnly, SameSite=Strict and Secure unless configured off for
http://localhost. The Content-Security-Policy allows scripts from this origin only.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from device.station import forms, people, views
from device.station.config import StationSection
from device.station.store import Store

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = [
    (b"content-security-policy", (b"default-src 'self'; img-src 'self' data:; "
                                  b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)
        await self.app(scope, receive, with_headers)


class WardFeed:
    """One ward snapshot every refresh period, read once and pushed to every open screen of
    this process as soon as it is read (no screen waits on another's schedule)."""

    def __init__(self, store: Store, settings: StationSection, ingest) -> None:
        self.store, self.settings, self.ingest = store, settings, ingest
        self.snapshot: dict | None = None
        self.version = 0
        self._changed: asyncio.Condition | None = None
        self._task: asyncio.Task | None = None

    async def _read(self) -> dict:
        snap = await run_in_threadpool(views.ward, self.store, self.settings.stale_after_s)
        snap["broker"] = broker_state(self.ingest)
        return snap

    async def _run(self) -> None:
        while True:
            try:
                snap = await self._read()
            except Exception:
                log.exception("station: reading the ward failed")
            else:
                async with self._changed:
                    self.snapshot, self.version = snap, self.version + 1
                    self._changed.notify_all()
            await asyncio.sleep(self.settings.refresh_s)

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._changed = asyncio.Condition()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def latest(self) -> dict:
        self._start()
        if self.snapshot is None:
            return (await self.next(0))[1]
        return self.snapshot

    async def next(self, after_version: int) -> tuple[int, dict]:
        """(version, snapshot): the first snapshot newer than ``after_version``."""
        self._start()
        async with self._changed:
            await self._changed.wait_for(lambda: self.version > after_version)
            return self.version, self.snapshot


def broker_state(ingest) -> dict:
    if ingest is None:
        return {"connected": None}
    s = ingest.stats
    return {"connected": s.connected, "disconnected_since": s.disconnected_since,
            "rejected": s.rejected, "duplicates": s.duplicates, "stored": s.stored,
            "received": s.received, "store_retries": s.store_retries, "lag_ms": s.lag_ms()}


def create_app(store: Store, settings: StationSection, ingest, secret_key: str) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    bedside_forms = forms.forms()  # drawn once from the published schemas
    templates.env.filters["utc"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
    feed = WardFeed(store, settings, ingest)

    def user(request: Request) -> tuple[str, str] | None:
        name = request.session.get("user")
        if not name:
            return None
        role = people.role_of(store, name)  # a removed account or changed role counts at once
        return (name, role) if role else None

    def csrf_token(request: Request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    def csrf_ok(request: Request, sent: str | None) -> bool:
        expected = request.session.get("csrf")
        return bool(expected and sent and hmac.compare_digest(expected, sent))

    def page(request: Request, name: str, who, **context) -> Response:
        return templates.TemplateResponse(request, name, {
            "csrf": csrf_token(request), "user": who[0] if who else None,
            "role": who[1] if who else None, **context})

    async def login_form(request: Request) -> Response:
        return page(request, "login.html", None, error=None)

    async def login(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request, form.get("csrf_token")):
            hint = ("; this station sends its session cookie over HTTPS only: open it through "
                    "the TLS proxy, or run it with --insecure-cookies for a browser on this "
                    "machine" if settings.secure_cookies and request.url.scheme == "http" else "")
            return Response(f"CSRF token missing or wrong: reload the page{hint}",
                            status_code=403)
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        role = await run_in_threadpool(people.authenticate, store, name, password)
        if role is None:
            await run_in_threadpool(people.record, store, name[:64] or "?", "login.failed")
            return page(request, "login.html", None, error="Wrong user name or password.")
        request.session.clear()  # a new session on log-in (no fixation)
        request.session["user"] = name
        csrf_token(request)
        await run_in_threadpool(people.record, store, name, "login")
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request, form.get("csrf_token")):
            return Response("CSRF token missing or wrong", status_code=403)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    def guarded(needed: str, api: bool = False):
        def wrap(handler):
            async def endpoint(request: Request) -> Response:
                who = await run_in_threadpool(user, request)
                if who is None:
                    return (JSONResponse({"error": "log in first"}, status_code=401) if api
                            else RedirectResponse("/login", status_code=303))
                if not people.may(who[1], needed):
                    return JSONResponse({"error": f"needs the {needed} role"}, status_code=403)
                if request.method == "POST" and not csrf_ok(
                        request, request.headers.get("x-csrf-token")):
                    return JSONResponse({"error": "CSRF token missing or wrong"}, status_code=403)
                return await handler(request, who)
            return endpoint
        return wrap

    @guarded("viewer")
    async def ward_page(request: Request, who) -> Response:
        return page(request, "ward.html", who)

    @guarded("viewer")
    async def bed_page(request: Request, who) -> Response:
        return page(request, "bed.html", who, device_id=request.path_params["device_id"],
                    forms=bedside_forms)

    @guarded("viewer", api=True)
    async def ward_json(request: Request, who) -> Response:
        return JSONResponse(await feed.latest())

    @guarded("viewer", api=True)
    async def bed_json(request: Request, who) -> Response:
        data = await run_in_threadpool(views.bed, store, request.path_params["device_id"],
                                       settings.stale_after_s)
        if data is None:
            return JSONResponse({"error": "no such bed"}, status_code=404)
        data["top_contributions"] = views.top_contributions(data["contributions"])
        return JSONResponse(data)

    @guarded("viewer", api=True)
    async def events(request: Request, who) -> Response:
        async def stream():
            sent: dict[str, str] = {}
            version = 0
            while not await request.is_disconnected():
                try:
                    version, snap = await asyncio.wait_for(feed.next(version), timeout=15)
                except TimeoutError:
                    yield ": keep-alive\n\n"  # proxies close a silent connection
                    continue
                changed = []
                for b in snap["beds"]:
                    text = json.dumps(b, sort_keys=True)
                    if sent.get(b["device_id"]) != text:
                        sent[b["device_id"]] = text
                        changed.append(b)
                body = {k: v for k, v in snap.items() if k != "beds"}
                body["beds"] = changed
                yield f"event: ward\ndata: {json.dumps(body)}\n\n"
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    async def command(request: Request, who, name: str, payload: dict) -> Response:
        if ingest is None:
            return JSONResponse({"error": "this process does not talk to the broker"},
                                status_code=503)
        device_id = request.path_params["device_id"]
        try:
            request_id = await run_in_threadpool(ingest.send_command, device_id, name, payload,
                                                 who[0])
        except (RuntimeError, ValueError) as exc:
            return JSONResponse({"error": f"not sent: {exc}"}, status_code=503)
        return JSONResponse({"request_id": request_id})

    @guarded("nurse", api=True)
    async def acknowledge(request: Request, who) -> Response:
        body = await _json(request)
        alarm_id = body.get("alarm_id")
        if not isinstance(alarm_id, str) or not 0 < len(alarm_id) <= 64:
            return JSONResponse({"error": "alarm_id: a string of 1 to 64 characters"},
                                status_code=400)
        return await command(request, who, "acknowledge", {"alarm_id": alarm_id, "by": who[0]})

    @guarded("nurse", api=True)
    async def self_report(request: Request, who) -> Response:
        body = await _json(request)
        nrs = body.get("nrs")
        if not isinstance(nrs, int) or isinstance(nrs, bool) or not 0 <= nrs <= 10:
            return JSONResponse({"error": "nrs: a whole number 0 to 10"}, status_code=400)
        return await command(request, who, "self_report", {"nrs": nrs, "source": "nurse"})

    @guarded("nurse", api=True)
    async def bedside(request: Request, who) -> Response:
        name = request.path_params["command"]
        checked = forms.check(name, await _json(request))
        if isinstance(checked, str):
            return JSONResponse({"error": checked}, status_code=400)
        return await command(request, who, name, checked)

    @guarded("viewer", api=True)
    async def command_json(request: Request, who) -> Response:
        row = await run_in_threadpool(store.command, request.path_params["request_id"])
        if row is None:
            return JSONResponse({"error": "no such command"}, status_code=404)
        return JSONResponse(views._command(row))

    @guarded("admin")
    async def audit_page(request: Request, who) -> Response:
        rows = await run_in_threadpool(people.audit_trail, store)
        return page(request, "audit.html", who, rows=rows)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "broker": broker_state(ingest)})

    routes = [
        Route("/login", login_form, methods=["GET"]), Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", ward_page), Route("/bed/{device_id}", bed_page),
        Route("/api/ward", ward_json), Route("/api/bed/{device_id}", bed_json),
        Route("/events", events),
        Route("/api/bed/{device_id}/acknowledge", acknowledge, methods=["POST"]),
        Route("/api/bed/{device_id}/self_report", self_report, methods=["POST"]),
        Route("/api/bed/{device_id}/{command}", bedside, methods=["POST"]),
        Route("/api/command/{request_id}", command_json),
        Route("/audit", audit_page), Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=secret_key, session_cookie="painmon_station",
                   max_age=int(settings.session_hours * 3600), same_site="strict",
                   https_only=settings.secure_cookies),
    ]
    return Starlette(routes=routes, middleware=middleware)


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def load_secret(path: Path) -> str:
    """The cookie-signing key, created (0600) on first start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()
