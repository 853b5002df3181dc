"""Checks of the files and directories a configuration names, made when it is validated so
that ``painmon validate-config`` saying ok means ``painmon run`` can start: each exists (or
can be made), is of the right kind, readable by this user, not empty, and a secret is
readable by its owner only (0600 or narrower). Each problem names the key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from device.config.sections import PainmonConfig

#: Read at most this much of a file to check what it holds (a PEM, a password).
PEEK_BYTES = 65536


def _regular_file(path: Path, *, secret: bool, expect: tuple[bytes, ...] = ()) -> str | None:
    """Why ``path`` cannot serve as the file it names, or None."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return f"{path}: no such file"
    except OSError as exc:
        return f"{path}: cannot be read: {exc.strerror or exc}"
    if stat.S_ISDIR(info.st_mode):
        return f"{path}: is a directory, not a file"
    if not stat.S_ISREG(info.st_mode):
        return f"{path}: not a regular file"  # /dev/zero, a FIFO: reading it would never end
    if not os.access(path, os.R_OK):
        return f"{path}: not readable by this user (uid {os.geteuid()})"
    if info.st_size == 0:
        return f"{path}: is empty"
    if secret and info.st_mode & 0o177:
        return (f"{path}: mode {stat.S_IMODE(info.st_mode):04o} lets others read it; "
                f"chmod 600 {path}")
    if expect:
        try:
            with open(path, "rb") as f:
                head = f.read(PEEK_BYTES)
        except OSError as exc:
            return f"{path}: cannot be read: {exc.strerror or exc}"
        if not any(marker in head for marker in expect):
            wanted = " or ".join(m.decode() for m in expect)
            return f"{path}: does not hold a PEM {wanted}"
    return None


def _password(path: Path, *, secret: bool = True) -> str | None:
    problem = _regular_file(path, secret=secret)
    if problem is None:
        with open(path, "rb") as f:
            first = f.read(PEEK_BYTES).splitlines()
        if not first or not first[0].strip():
            return f"{path}: its first line (the password) is empty"
    return problem


def _directory(path: Path) -> str | None:
    """A directory the device writes to: there and writable, or creatable."""
    if path.exists():
        if not path.is_dir():
            return f"{path}: exists and is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{path}: not writable by this user (uid {os.geteuid()})"
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{path}: cannot be created, {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{path}: cannot be created in {parent} by this user (uid {os.geteuid()})"
    return None


def file_problems(config: PainmonConfig) -> list[tuple[str, str]]:
    """(dotted key, message) for each file or directory that would stop the device."""
    out: list[tuple[str, str]] = []

    def check(key: str, problem: str | None) -> None:
        if problem is not None:
            out.append((key, problem))

    mqtt, tls = config.mqtt, config.mqtt.tls
    if mqtt.password_file is not None:
        check("mqtt.password_file", _password(mqtt.password_file))
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if mqtt.password_credential is not None and credentials:
        # Under systemd (ExecStartPre= sees the credentials too): the install's empty
        # placeholder is caught here, not by a crash at every start. systemd sets its mode.
        check("mqtt.password_credential",
              _password(Path(credentials) / mqtt.password_credential, secret=False))
    if tls.enabled and tls.ca_file is not None:
        check("mqtt.tls.ca_file", _regular_file(tls.ca_file, secret=False,
                                                expect=(b"-----BEGIN CERTIFICATE-----",)))
    if tls.enabled and tls.cert_file is not None:
        check("mqtt.tls.cert_file", _regular_file(tls.cert_file, secret=tls.key_file is None,
                                                  expect=(b"-----BEGIN CERTIFICATE-----",)))
    if tls.enabled and tls.key_file is not None:
        check("mqtt.tls.key_file", _regular_file(tls.key_file, secret=True,
                                                 expect=(b"PRIVATE KEY-----",)))
    check("state_dir", _directory(config.state_dir))
    if config.recording.dir is not None:
        check("recording.dir", _directory(config.recording.dir))
    if config.face.enabled and config.face.model_dir is not None and \
            config.face.model_dir.exists() and not config.face.model_dir.is_dir():
        check("face.model_dir", f"{config.face.model_dir}: exists and is not a directory")
    return out
