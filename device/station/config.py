"""The station's configuration (TOML): ``[mqtt]`` as on the device, ``[station]`` its own.

```toml
[mqtt]                       # the device's MqttConfig: host, port, topic_prefix, tls, username...
host = "broker.ward.example"
port = 8883
tls = { enabled = true, ca_file = "/etc/painmon/ca.pem" }
username = "station"
password_file = "/etc/painmon/station.pass"

[station]
database_url = "postgresql+psycopg://station@db.ward.example/painmon"
listen = "127.0.0.1:8080"    # behind the reverse proxy that terminates TLS
```
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from device.config import ConfigError, ConfigProblem, MqttConfig
from device.config.base import STRICT


def default_state_dir() -> Path:
    # As the device: systemd's StateDirectory= (first entry), else ~/.local/state/painmon.
    given = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(given) if given else Path.home() / ".local" / "state" / "painmon"


class RetentionConfig(BaseModel):
    model_config = STRICT

    pain_raw_days: float = Field(7, gt=0, description="Raw pain estimates (1 Hz).")
    vitals_raw_days: float = Field(2, gt=0, description="Raw vitals (1 Hz).")
    alarm_days: float = Field(400, gt=0, description="Alarm events.")
    command_days: float = Field(400, gt=0, description="Commands sent and their results.")
    minutes_days: float = Field(400, gt=0, description="Minute roll-ups (long trends).")
    rejected_days: float = Field(30, gt=0, description="Refused messages.")


class StationSection(BaseModel):
    model_config = STRICT

    database_url: str | None = Field(
        None, description="SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB "
        "(default: station.db in the state directory).")
    state_dir: Path = Field(default_factory=default_state_dir, strict=False,
                            description="Where the SQLite file and the cookie secret live.")
    listen: str = Field("127.0.0.1:8080", description="HOST:PORT of the screen (HTTP; put a "
                        "reverse proxy with TLS in front).")
    group: str = Field("station", pattern=r"^[A-Za-z0-9_-]{1,64}$",
                       description="Shared-subscription group: processes in one group split "
                       "the messages.")
    stale_after_s: float = Field(15.0, gt=0, description="A bed online but silent this long is "
                                 "shown stale.")
    refresh_s: float = Field(1.0, gt=0, le=60, description="How often the screen is updated.")
    secure_cookies: bool = Field(True, description="Session cookie only over HTTPS; false only "
                                 "for a browser on the same machine over http://localhost.")
    secret_file: Path | None = Field(None, strict=False, description="Key that signs session "
                                     "cookies (created on first start; share it between "
                                     "processes behind one proxy). Default: in state_dir.")
    session_hours: float = Field(12, gt=0, le=168, description="A log-in lasts this long.")
    web: bool = Field(True, description="Serve the screen from this process (false: ingest only).")
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


class StationConfig(BaseModel):
    model_config = STRICT

    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    station: StationSection = Field(default_factory=StationSection)

    def database_url(self) -> str:
        if self.station.database_url:
            return self.station.database_url
        return f"sqlite:///{self.station.state_dir / 'station.db'}"

    def secret_file(self) -> Path:
        return self.station.secret_file or self.station.state_dir / "station-secret"


def load_station_config(path: str | os.PathLike | None, **overrides) -> StationConfig:
    """Read and validate; ``overrides`` are dotted keys (``mqtt.host``) from the command line.
    Raises ``ConfigError`` naming the file and key."""
    source = str(path) if path else "<defaults>"
    data: dict = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError([ConfigProblem(source, "", f"cannot read: {exc}")]) from None
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        data.setdefault(section, {})[key] = value
    try:
        return StationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([ConfigProblem(source, ".".join(str(p) for p in e["loc"]), e["msg"])
                           for e in exc.errors()]) from None
