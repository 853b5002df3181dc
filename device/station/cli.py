"""The ``painmon station`` subcommand's arguments (light: nothing of the station is imported
until it runs, so the device's command line works without the station extra)."""

from __future__ import annotations

import argparse
import sys

EXIT_BAD_INPUT = 2


def add_parser(sub, handler) -> None:
    p = sub.add_parser(
        "station", help="the ward station: every bed on one screen, fed over MQTT",
        description="Subscribe to every device under the topic prefix (MQTT 5 shared "
        "subscription), store what they publish (SQLite, or PostgreSQL with --db) and serve "
        "the ward screen. `painmon station adduser NAME --role nurse` creates an account.")
    p.add_argument("action", nargs="?", choices=("serve", "adduser"), default="serve",
                   help="serve (default) or adduser")
    p.add_argument("username", nargs="?", help="adduser: the account's user name")
    p.add_argument("--role", choices=("viewer", "nurse", "admin"), default="nurse",
                   help="adduser: viewer, nurse (acknowledges alarms) or admin (default nurse)")
    p.add_argument("--password-file", metavar="FILE",
                   help="adduser: read the password from FILE (else asked, or standard input)")
    p.add_argument("--config", metavar="FILE", help="station configuration (TOML: [mqtt] as "
                   "on the device, [station])")
    p.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker (default 127.0.0.1:1883)")
    p.add_argument("--db", metavar="URL", help="database URL: sqlite:///PATH (default: "
                   "station.db in the state directory) or postgresql+psycopg://USER@HOST/DB")
    p.add_argument("--listen", metavar="HOST:PORT", help="serve the screen here "
                   "(default 127.0.0.1:8080)")
    p.add_argument("--state-dir", metavar="DIR", help="SQLite file and cookie secret")
    p.add_argument("--group", help="shared-subscription group (default station)")
    p.add_argument("--no-web", action="store_true", help="ingest only, no screen")
    p.add_argument("--insecure-cookies", action="store_true", help="send the session cookie "
                   "over plain http (only for a browser on this machine, http://localhost)")
    p.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=handler)


def run(args: argparse.Namespace) -> int:
    try:
        from device.station.config import load_station_config
    except ImportError as exc:
        print(f"painmon station: {exc.name or exc} is missing: pip install 'painmon[station]'",
              file=sys.stderr)
        return 1
    from device.config import ConfigError

    overrides = {"station.database_url": args.db, "station.listen": args.listen,
                 "station.state_dir": args.state_dir, "station.group": args.group}
    if args.no_web:
        overrides["station.web"] = False
    if args.insecure_cookies:
        overrides["station.secure_cookies"] = False
    if args.broker:
        host, _, port = args.broker.rpartition(":")
        if not host or not port.isdigit():
            print(f"painmon station: --broker must be HOST:PORT, got {args.broker!r}",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        overrides.update({"mqtt.host": host, "mqtt.port": int(port)})
    try:
        config = load_station_config(args.config, **overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.action == "adduser":
        if not args.username:
            print("painmon station adduser: give the user name", file=sys.stderr)
            return EXIT_BAD_INPUT
        from device.station.app import add_user_interactive

        return add_user_interactive(config, args.username, args.role, args.password_file)
    from device.station.app import parse_listen, run_station

    try:
        parse_listen(config.station.listen)
    except ValueError as exc:
        print(f"painmon station: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return run_station(config, seconds=args.seconds)
    except KeyboardInterrupt:
        return 0
