"""Users, their API keys and dashboard sessions.

A key is shown once, when it is made; only its SHA-256 is stored. Keys and session tokens
are 256-bit random values, so a plain hash is safe (no slow password hash is needed) and a
look-up is one indexed read.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Self

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from inboxd.db.engine import reading, writing
from inboxd.db.tables import accounts, api_keys, sessions, users
from inboxd.db.types import utcnow
from inboxd.errors import InvalidRequest, NotFound
from inboxd.jobs.model import new_job_id

KEY_PREFIX = "ibx_"
DEFAULT_ADMIN = "admin"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class User:
    """A person (or a robot) who owns accounts and jobs."""

    id: str
    name: str
    is_admin: bool

    @classmethod
    def from_row(cls, row: Any) -> Self:
        """Build from a ``users`` row."""
        return cls(id=row.id, name=row.name, is_admin=bool(row.is_admin))

    def owner_filter(self) -> str | None:
        """The owner to restrict look-ups to: None (everything) for an admin."""
        return None if self.is_admin else self.id

    def to_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {"id": self.id, "name": self.name, "is_admin": self.is_admin}


@dataclass(frozen=True)
class IssuedKey:
    """A key as made: the secret is here once and never again."""

    id: str
    user: User
    key: str
    prefix: str


def hash_secret(value: str) -> str:
    """The stored form of a key or session token."""
    return hashlib.sha256(value.encode()).hexdigest()


class Users:
    """The user, key and session registry."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- users -----------------------------------------------------------------------------

    def add(self, name: str, *, admin: bool = False) -> User:
        """Create a user; names are unique."""
        if not _NAME.match(name):
            raise InvalidRequest(
                "a user name is 1-64 letters, digits, '.', '_', '@' or '-', "
                "starting with a letter or digit"
            )
        user = User(id=new_job_id(), name=name, is_admin=admin)
        try:
            with writing(self.engine) as conn:
                conn.execute(
                    insert(users).values(id=user.id, name=name, is_admin=admin, created_at=utcnow())
                )
        except IntegrityError:
            raise InvalidRequest(f"a user named {name!r} already exists") from None
        return user

    def get(self, user_id: str) -> User:
        """A user by id."""
        with reading(self.engine) as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise NotFound(f"no user {user_id!r}")
        return User.from_row(row)

    def by_name(self, name: str) -> User:
        """A user by name."""
        with reading(self.engine) as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            raise NotFound(f"no user named {name!r}")
        return User.from_row(row)

    def all(self) -> list[User]:
        """All users, oldest first."""
        with reading(self.engine) as conn:
            rows = conn.execute(select(users).order_by(users.c.created_at, users.c.id))
            return [User.from_row(r) for r in rows]

    def first_admin(self) -> User | None:
        """The oldest admin, if any."""
        with reading(self.engine) as conn:
            row = conn.execute(
                select(users)
                .where(users.c.is_admin.is_(True))
                .order_by(users.c.created_at, users.c.id)
                .limit(1)
            ).first()
        return User.from_row(row) if row is not None else None

    def ensure_admin(self) -> tuple[User, bool]:
        """The first admin, created (as ``admin``) when there is none; True when created.
        Accounts from before users existed are given to that admin."""
        found = self.first_admin()
        created = False
        if found is None:
            try:
                found, created = self.add(DEFAULT_ADMIN, admin=True), True
            except InvalidRequest:
                # A concurrent start made it, or a non-admin took the name.
                found = self.first_admin() or self.by_name(DEFAULT_ADMIN)
        with writing(self.engine) as conn:
            conn.execute(update(accounts).where(accounts.c.owner.is_(None)).values(owner=found.id))
        return found, created

    def resolve_owner(self, name: str | None) -> User:
        """The user named ``name``, or the default owner (the first admin)."""
        return self.by_name(name) if name else self.ensure_admin()[0]

    # -- keys ------------------------------------------------------------------------------

    def create_key(self, user: User, *, label: str | None = None) -> IssuedKey:
        """Make a key for ``user``; the returned secret is never retrievable again."""
        prefix = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        key_id = new_job_id()
        with writing(self.engine) as conn:
            conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    user_id=user.id,
                    key_hash=hash_secret(key),
                    prefix=prefix,
                    label=label,
                    created_at=utcnow(),
                )
            )
        return IssuedKey(id=key_id, user=user, key=key, prefix=prefix)

    def list_keys(self, user: User | None = None) -> list[dict[str, Any]]:
        """Keys (never their secret), optionally of one user."""
        query = select(api_keys, users.c.name.label("user")).join(
            users, users.c.id == api_keys.c.user_id
        )
        if user is not None:
            query = query.where(api_keys.c.user_id == user.id)
        with reading(self.engine) as conn:
            rows = conn.execute(query.order_by(api_keys.c.created_at))
            return [
                {
                    "id": r.id,
                    "user": r.user,
                    "prefix": r.prefix,
                    "label": r.label,
                    "created_at": r.created_at.isoformat(),
                    "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
                    "revoked": r.revoked_at is not None,
                }
                for r in rows
            ]

    def revoke_key(self, ref: str) -> dict[str, Any]:
        """Revoke a key by id, prefix or the key itself; its sessions end with it."""
        ref = ref.strip()
        if ref.startswith(KEY_PREFIX):
            condition = api_keys.c.key_hash == hash_secret(ref)
        else:
            condition = (api_keys.c.id == ref) | (api_keys.c.prefix == ref)
        with writing(self.engine) as conn:
            rows = conn.execute(select(api_keys.c.id, api_keys.c.prefix).where(condition)).all()
            if not rows:
                raise NotFound(f"no key {ref!r}")
            if len(rows) > 1:
                raise InvalidRequest(f"{ref!r} matches several keys; use the id")
            key_id = rows[0].id
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            conn.execute(delete(sessions).where(sessions.c.api_key_id == key_id))
        return {"id": key_id, "prefix": rows[0].prefix, "revoked": True}

    def authenticate_key(self, key: str) -> tuple[User, str] | None:
        """The user and key id for a valid, unrevoked key; None otherwise."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        query = (
            select(users, api_keys.c.id.label("key_id"))
            .join(api_keys, api_keys.c.user_id == users.c.id)
            .where(api_keys.c.key_hash == hash_secret(key), api_keys.c.revoked_at.is_(None))
        )
        with reading(self.engine) as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return User.from_row(row), row.key_id

    # -- sessions --------------------------------------------------------------------------

    def open_session(self, user: User, key_id: str, lifetime: timedelta) -> tuple[str, datetime]:
        """A new session token (for the cookie) and when it expires."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + lifetime
        with writing(self.engine) as conn:
            conn.execute(delete(sessions).where(sessions.c.expires_at < now))
            conn.execute(
                insert(sessions).values(
                    token_hash=hash_secret(token),
                    user_id=user.id,
                    api_key_id=key_id,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return token, expires

    def session_user(self, token: str) -> User | None:
        """The user of a live session token."""
        if not token or len(token) > 200:
            return None
        query = (
            select(users)
            .join(sessions, sessions.c.user_id == users.c.id)
            .where(sessions.c.token_hash == hash_secret(token), sessions.c.expires_at > utcnow())
        )
        with reading(self.engine) as conn:
            row = conn.execute(query).first()
        return User.from_row(row) if row is not None else None

    def close_session(self, token: str) -> None:
        """End a session (logout)."""
        with writing(self.engine) as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == hash_secret(token)))
