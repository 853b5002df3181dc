"""People at the station: accounts with argon2-hashed passwords, roles, the audit trail.

Roles, each including the one before: ``viewer`` sees the ward; ``nurse`` also acknowledges
alarms and enters pain ratings (commands to the device); ``admin`` also reads the audit trail.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from device.station import tables as T
from device.station.store import Store

ROLES = ("viewer", "nurse", "admin")
_HASHER = PasswordHasher()
#: Checked when the user name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("not a password")
MIN_PASSWORD_CHARS = 10


def may(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def add_user(store: Store, username: str, password: str, role: str) -> None:
    """Create or replace an account (replacing sets a new password and role)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not username or len(username) > 64 or not username.isprintable() or " " in username:
        raise ValueError("user name: 1 to 64 printable characters without spaces")
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"password: at least {MIN_PASSWORD_CHARS} characters")
    values = {"username": username, "password_hash": _HASHER.hash(password), "role": role,
              "created_unix_s": time.time()}
    with store.engine.begin() as conn:
        stmt = store._insert(T.users).values(values)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["username"],
            set_={"password_hash": values["password_hash"], "role": role}))
        conn.execute(T.audit.insert().values(at_unix_s=time.time(), username="(command line)",
                                             action="user.set", detail={"user": username,
                                                                        "role": role}))


def authenticate(store: Store, username: str, password: str) -> str | None:
    """The user's role when the password is right, else None."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(T.users).where(T.users.c.username == username)).first()
    try:
        _HASHER.verify(row.password_hash if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return row.role if row else None


def role_of(store: Store, username: str) -> str | None:
    """The account's current role (None when it was removed): checked on every request."""
    with store.engine.connect() as conn:
        return conn.execute(sa.select(T.users.c.role)
                            .where(T.users.c.username == username)).scalar()


def record(store: Store, username: str, action: str, device_id: str | None = None,
           detail: dict | None = None) -> None:
    with store.engine.begin() as conn:
        conn.execute(T.audit.insert().values(at_unix_s=time.time(), username=username,
                                             action=action, device_id=device_id, detail=detail))


def audit_trail(store: Store, limit: int = 500) -> list[dict]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(T.audit).order_by(T.audit.c.at_unix_s.desc())
                            .limit(limit)).all()
    return [dict(r._mapping) for r in rows]
