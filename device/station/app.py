"""``painmon station``: migrate the database, start ingest, serve the screen."""

from __future__ import annotations

import getpass
import logging
import signal
import socket
import sys
import threading

from device.station.config import StationConfig
from device.station.ingest import Ingest
from device.station.store import Store

log = logging.getLogger(__name__)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def run_station(config: StationConfig, seconds: float | None = None) -> int:
    settings = config.station
    host, port = parse_listen(settings.listen)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config.database_url())
    revision = store.migrate()
    log.info("station: database %s at revision %s", store.engine.url.render_as_string(
        hide_password=True), revision)
    # A stable client id: a station restarted after a crash resumes its broker session and
    # gets what it had not acknowledged. Each process needs its own (mqtt.client_id, or a
    # distinct listen port on one host).
    client_id = config.mqtt.client_id or (
        f"painmon-station-{socket.gethostname()}-{settings.group}-{port}")
    ingest = Ingest(store, config.mqtt, group=settings.group, retention=settings.retention,
                    client_id=client_id[:128])
    ingest.start()
    print(f"painmon station: broker {config.mqtt.host}:{config.mqtt.port} "
          f"(shared group {settings.group!r}), database {store.dialect}"
          + (f", screen on http://{host}:{port}/" if settings.web else ", no screen"), flush=True)
    try:
        if settings.web:
            import uvicorn

            from device.station.web import create_app, load_secret

            app = create_app(store, settings, ingest, load_secret(config.secret_file()))
            server = uvicorn.Server(uvicorn.Config(
                app, host=host, port=port, log_level="warning", proxy_headers=True,
                forwarded_allow_ips="127.0.0.1", timeout_graceful_shutdown=2))
            if seconds is not None:
                threading.Timer(seconds, lambda: setattr(server, "should_exit", True)).start()
            server.run()
        else:
            done = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: done.set())
            done.wait(seconds)
    finally:
        ingest.stop()
        store.close()
    return 0


def add_user_interactive(config: StationConfig, username: str, role: str,
                         password_file: str | None) -> int:
    from device.station import people

    if password_file:
        with open(password_file, encoding="utf-8") as f:
            password = f.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {username}: ")
        if getpass.getpass("again: ") != password:
            print("painmon station adduser: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    config.station.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config.database_url())
    try:
        store.migrate()
        people.add_user(store, username, password, role)
    except ValueError as exc:
        print(f"painmon station adduser: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"{username}: {role}")
    return 0
