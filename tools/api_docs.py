"""Generate the command schemas and the MQTT API reference (device/comms/API.md).

    python -m tools.api_docs            # write device/comms/schemas/command.*.schema.json and API.md
    python -m tools.api_docs --check    # exit 1 when a committed file is out of date

The command schemas come from the pydantic models of the commands a running device registers
(the pipeline's, plus the recorder's); every other schema is a hand-written file in
device/comms/schemas/. API.md is rendered from all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from device.comms.schemas import SCHEMA_DIR, all_files, command_schema_name

API_MD = SCHEMA_DIR.parent / "API.md"
SCHEMA_BASE = "https://painmon.invalid/schemas/"
PREAMBLE = SCHEMA_DIR / "API.preamble.md"


def registered_commands():
    """The commands a device serves, from a pipeline built (not started) on the demo config."""
    from sensors.clock import SteppedClock

    from device.app.root import build_monitor
    from device.config import default_config
    from device.recording.writer import attach_recorder

    with tempfile.TemporaryDirectory() as state_dir:
        config = default_config()
        config = config.model_copy(update={"state_dir": Path(state_dir),
                                           "face": config.face.model_copy(update={"enabled": False})})
        monitor = build_monitor(config, SteppedClock())
        pipeline = monitor.pipeline
        try:
            attach_recorder(config, pipeline, monitor.commands, boot_id=monitor.envelope.boot_id,
                            wall=monitor.wall)
            return dict(monitor.commands.commands)
        finally:
            pipeline.stop()


def command_schemas(commands) -> dict[str, dict]:
    """File name -> JSON Schema of each command's request payload."""
    out = {}
    for name, command in sorted(commands.items()):
        schema = command.model.model_json_schema(by_alias=True)
        schema.pop("title", None)
        properties = schema.get("properties", {})
        properties["schema"] = {"const": command_schema_name(name),
                                "description": "Optional; when present it must be this."}
        out[f"command.{name}.v1.schema.json"] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{SCHEMA_BASE}command.{name}/1",
            "title": f"Command {name}",
            "description": command.description,
            "x-topic": f"painmon/<device_id>/cmd/<role>/{name}",
            "x-roles": sorted(command.roles),
            "x-urgent": command.urgent,
            "x-delivery": "command (sent to the device)",
            "x-qos": 1,
            "x-retain": False,
            **schema,
        }
    return out


def _type_text(prop: dict) -> str:
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    if "anyOf" in prop:
        return " or ".join(_type_text(p) for p in prop["anyOf"])
    kind = prop.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else kind
    bounds = [f"{sign} {prop[k]}" for k, sign in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                   ("maximum", "<="), ("exclusiveMaximum", "<"))
              if k in prop]
    if "maxLength" in prop:
        bounds.append(f"at most {prop['maxLength']} characters")
    if "format" in prop:
        bounds.append(prop["format"])
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _fields(schema: dict, prefix: str = "") -> list[str]:
    rows = []
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        desc = prop.get("description", "")
        rows.append(f"| `{prefix}{name}` | {_type_text(prop)} | "
                    f"{'yes' if name in required else ''} | {desc.replace('|', '/')} |")
        if prop.get("type") == "object" and "properties" in prop:
            rows += _fields(prop, f"{prefix}{name}.")
    return rows


def render_markdown(schemas: dict[str, dict]) -> str:
    lines = [PREAMBLE.read_text(encoding="utf-8").rstrip(), "", "## Topics", "",
             "| topic | payload | delivery | QoS | retained |", "|---|---|---|---|---|"]
    ordered = sorted(schemas.items(), key=lambda kv: (kv[0].startswith("command."), kv[0]))
    for file_name, schema in ordered:
        anchor = file_name.removesuffix(".schema.json").replace(".", "")
        lines.append(f"| `{schema.get('x-topic', '')}` | [{schema['title']}](#{anchor}) | "
                     f"{schema.get('x-delivery', '')} | {schema.get('x-qos', '')} | "
                     f"{'yes' if schema.get('x-retain') else 'no'} |")
    lines += ["", "## Payloads", ""]
    for file_name, schema in ordered:
        anchor = file_name.removesuffix(".schema.json").replace(".", "")
        lines += [f'<a id="{anchor}"></a>', f"### {schema['title']}", "",
                  schema.get("description", ""), "",
                  f"Topic `{schema.get('x-topic', '')}`; {schema.get('x-delivery', '')}"
                  + (f", expires after `{schema['x-expiry']}`" if "x-expiry" in schema else "")
                  + f". Schema: [`schemas/{file_name}`](schemas/{file_name}).", ""]
        if schema.get("type") == "object":
            extra = schema.get("additionalProperties", True) is not False
            lines += ["| field | type | required | description |", "|---|---|---|---|",
                      *_fields(schema), "",
                      "Unknown fields: " + ("ignore them (fields may be added within a version)."
                                            if extra else "refused (commands are strict)."), ""]
        else:
            lines += [("A JSON array of SenML records (RFC 8428): `bn` and `bt` on the first, "
                       "then `n`, `u`, `v`."), ""]
    return "\n".join(lines).rstrip() + "\n"


def generate() -> tuple[dict[str, dict], str]:
    commands = command_schemas(registered_commands())
    hand = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in all_files()
            if not p.name.startswith("command.")}
    return commands, render_markdown({**hand, **commands})


def _dump(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def stale_files() -> list[str]:
    """Files that differ from what the generator would write (empty when current)."""
    commands, markdown = generate()
    stale = [name for name, schema in commands.items()
             if not (SCHEMA_DIR / name).is_file()
             or (SCHEMA_DIR / name).read_text(encoding="utf-8") != _dump(schema)]
    stale += [p.name for p in SCHEMA_DIR.glob("command.*.schema.json") if p.name not in commands]
    if not API_MD.is_file() or API_MD.read_text(encoding="utf-8") != markdown:
        stale.append("API.md")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.api_docs", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"out of date: {name} (run python -m tools.api_docs)", file=sys.stderr)
        return 1 if stale else 0
    commands, markdown = generate()
    for old in SCHEMA_DIR.glob("command.*.schema.json"):
        if old.name not in commands:
            old.unlink()
    for name, schema in commands.items():
        (SCHEMA_DIR / name).write_text(_dump(schema), encoding="utf-8")
    API_MD.write_text(markdown, encoding="utf-8")
    print(f"wrote {len(commands)} command schemas and {API_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
