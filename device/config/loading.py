"""Loading the configuration: read the TOML file, apply the environment, validate, and
report every problem at once, each naming the file and the dotted key (checks across fields
of a section run once its fields are valid)."""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from device.config.base import KeyedValueError, is_section
from device.config.files import file_problems
from device.config.sections import HARDWARE_ENV, PainmonConfig


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    key: str  # dotted, e.g. "sensors.ppg.sample_rate_hz"; "" for file-level problems
    message: str

    def __str__(self) -> str:
        key = f" {self.key}:" if self.key else ""
        return f"{self.file}:{key} {self.message}"


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` lists every reason."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__(problems)
        self.problems = list(problems)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def _section(loc: tuple[str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = PainmonConfig
    for part in loc:
        field = model.model_fields.get(part)
        if field is None or not is_section(field.annotation):
            return None
        model = field.annotation
    return model


def _problem(file: str, err: dict, env_hardware: bool) -> ConfigProblem:
    loc = tuple(str(p) for p in err["loc"])
    error = (err.get("ctx") or {}).get("error")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
        section = _section(loc[:-1])
        close = difflib.get_close_matches(loc[-1], list(section.model_fields) if section else [], 1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    elif isinstance(error, KeyedValueError):
        loc += tuple(error.key.split("."))
        message = str(error)
    elif isinstance(error, ValueError):
        message = str(error)
    elif err["type"] == "model_type":
        message = "must be a table"
    elif loc[-1] == "address" and err["type"] == "literal_error" and type(err["input"]) is int:
        allowed = _section(loc[:-1]).model_fields["address"].annotation.__args__
        message = f"must be one of {', '.join(map(hex, allowed))}, got {hex(err['input'])}"
    else:
        message = err["msg"][0].lower() + err["msg"][1:]
        if isinstance(err.get("input"), (str, int, float, bool)):
            message += f", got {err['input']!r}"
    if loc == ("hardware",) and env_hardware:
        file = f"env {HARDWARE_ENV}"
    return ConfigProblem(file, ".".join(loc), message)


def validate_config(data: dict[str, Any], source: str = "<config>", *,
                    check_files: bool = True) -> PainmonConfig:
    """Validate a parsed TOML document, after applying the environment's overrides; with
    ``check_files``, also the files and directories it names (``device.config.files``)."""
    env_hardware = bool(os.environ.get(HARDWARE_ENV))
    if env_hardware:
        data = {**data, "hardware": os.environ[HARDWARE_ENV]}
    try:
        config = PainmonConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(source, e, env_hardware) for e in exc.errors()]) from None
    if check_files:
        problems = [ConfigProblem(source, key, message) for key, message in file_problems(config)]
        if problems:
            raise ConfigError(problems)
    return config


# Python 3.11's TOMLDecodeError carries the position only inside its message.
_TOML_POSITION = re.compile(r"^(?P<what>.*?) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")


#: A configuration is a few kilobytes; anything far larger is not one.
MAX_CONFIG_BYTES = 1 << 20


def load_config(path: str | os.PathLike, *, for_run: bool = False) -> PainmonConfig:
    """Read and validate a TOML configuration file; raises ``ConfigError``. ``for_run``: the
    file is a device's, so it must name the device (an empty file would otherwise run the
    demo's simulated patient as ``painmon-demo``)."""
    source = str(path)

    def fail(message: str, key: str = "") -> ConfigError:
        return ConfigError([ConfigProblem(source, key, message)])

    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise fail("is a directory, not a configuration file")
        if not stat.S_ISREG(info.st_mode):
            raise fail("not a regular file")  # /dev/zero would be read for ever
        if info.st_size > MAX_CONFIG_BYTES:
            raise fail(f"{info.st_size} bytes: a configuration is at most {MAX_CONFIG_BYTES}")
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POSITION.match(str(exc))
        where = f"line {m['line']}, column {m['col']}: " if m else ""
        raise fail(f"{where}invalid TOML: {m['what'] if m else exc}") from None
    problems = []
    if for_run and "device_id" not in data:
        problems.append(ConfigProblem(source, "device_id", "a device's configuration must set "
                                      "device_id (without it the device would run as the "
                                      "demo, 'painmon-demo')"))
    try:
        config = validate_config(data, source)
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def default_config() -> PainmonConfig:
    """The configuration the demo runs with (environment overrides applied)."""
    return validate_config({}, "<defaults>")


def reference_markdown() -> str:
    """The configuration reference (Markdown), generated from the models' descriptions."""
    from device.config.reference import reference_markdown as generate

    return generate(PainmonConfig)
