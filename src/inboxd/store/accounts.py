"""Mail accounts: create, read (never with secrets), update state, remove with local copy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Self

from sqlalchemy import Engine, Row, delete, func, insert, select, update

from inboxd.config import Settings
from inboxd.db.engine import reading, writing
from inboxd.db.tables import accounts, folders, locations, message_bodies, messages
from inboxd.db.types import utcnow
from inboxd.errors import InvalidRequest, NotFound
from inboxd.jobs.model import new_job_id
from inboxd.mail.credentials import Vault
from inboxd.providers import registry
from inboxd.store import fulltext, packs
from inboxd.vocabulary import AccountState

#: Account states shown to people (aliases of the vocabulary's names).
OK, NEEDS_ATTENTION = AccountState.OK, AccountState.NEEDS_ATTENTION
NEEDS_SIGN_IN = AccountState.NEEDS_SIGN_IN
#: States in which an account waits for a person (no periodic syncs until then).
WAITING_STATES = frozenset({NEEDS_ATTENTION, NEEDS_SIGN_IN})


@dataclass(frozen=True, kw_only=True)
class Account:
    """An account as stored, without its secret."""

    id: str
    owner: str | None
    provider: str
    name: str
    addresses: list[str]
    owner_name: str | None
    settings: dict[str, Any]
    enabled: bool
    sync_interval_seconds: int | None
    state: str
    state_message: str | None
    last_sync_at: datetime | None
    last_sync_job_id: str | None
    created_at: datetime
    has_secret: bool = False
    #: triage categories are written back to the server (keywords or Gmail labels)
    labels_enabled: bool = False

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        """Build from an ``accounts`` row (the secret column is only noted, not kept)."""
        m = row._mapping
        return cls(
            id=m["id"],
            owner=m["owner"],
            provider=m["provider"],
            name=m["name"],
            addresses=list(m["addresses"]),
            owner_name=m["owner_name"],
            settings=dict(m["settings"]),
            enabled=bool(m["enabled"]),
            sync_interval_seconds=m["sync_interval_seconds"],
            state=m["state"],
            state_message=m["state_message"],
            last_sync_at=m["last_sync_at"],
            last_sync_job_id=m["last_sync_job_id"],
            created_at=m["created_at"],
            has_secret=m["secret"] is not None,
            labels_enabled=bool(m["labels_enabled"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: settings without secrets."""
        return {
            "id": self.id,
            "owner": self.owner,
            "provider": self.provider,
            "name": self.name,
            "addresses": self.addresses,
            "owner_name": self.owner_name,
            "settings": self.settings,
            "enabled": self.enabled,
            "sync_interval_seconds": self.sync_interval_seconds,
            "state": self.state,
            "state_message": self.state_message,
            "last_sync_at": self.last_sync_at.isoformat() if self.last_sync_at else None,
            "last_sync_job_id": self.last_sync_job_id,
            "created_at": self.created_at.isoformat(),
            "labels": self.labels_enabled,
        }


class Accounts:
    """The account registry."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    @cached_property
    def vault(self) -> Vault:
        """The secret vault (its key file is created on first use)."""
        return Vault.from_settings(self.settings)

    def add(
        self,
        provider: str,
        name: str,
        settings: dict[str, Any],
        *,
        secret: dict[str, Any] | None = None,
        owner: str | None = None,
        addresses: list[str] | None = None,
        owner_name: str | None = None,
        sync_interval_seconds: int | None = None,
    ) -> Account:
        """Register an account; the secret is encrypted before it is stored."""
        clean = validate_settings(provider, settings)
        if not name.strip():
            raise InvalidRequest("an account needs a name")
        _check_secret(clean, secret)
        now = utcnow()
        account_id = new_job_id()
        with writing(self.engine) as conn:
            conn.execute(
                insert(accounts).values(
                    id=account_id,
                    owner=owner,
                    provider=provider,
                    name=name.strip(),
                    addresses=[a.strip().lower() for a in addresses or [] if a.strip()],
                    owner_name=owner_name,
                    settings=clean,
                    secret=self.vault.seal(secret) if secret else None,
                    enabled=True,
                    sync_interval_seconds=sync_interval_seconds,
                    state=OK,
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.get(account_id)

    def get(self, account_id: str, *, owner: str | None = None) -> Account:
        """One account; ``owner`` restricts to that owner's accounts (else NotFound)."""
        with reading(self.engine) as conn:
            row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
        if row is None or (owner is not None and row.owner != owner):
            raise NotFound(f"no account {account_id!r}")
        return Account.from_row(row)

    def list(self, *, owner: str | None = None) -> list[Account]:
        """Accounts, oldest first."""
        query = select(accounts).order_by(accounts.c.created_at)
        if owner is not None:
            query = query.where(accounts.c.owner == owner)
        with reading(self.engine) as conn:
            return [Account.from_row(r) for r in conn.execute(query)]

    def secret(self, account_id: str) -> dict[str, Any]:
        """The decrypted secret (only for the code that connects)."""
        with reading(self.engine) as conn:
            token = conn.execute(
                select(accounts.c.secret).where(accounts.c.id == account_id)
            ).scalar()
        return self.vault.open(token) if token else {}

    def store_secret(self, account_id: str, secret: dict[str, Any]) -> None:
        """Replace the secret as the code that connects keeps it (a renewed OAuth token);
        unlike :meth:`update`, this says nothing about what a person changed."""
        with writing(self.engine) as conn:
            conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(secret=self.vault.seal(secret), updated_at=utcnow())
            )

    def set_state(
        self, account_id: str, state: str, message: str | None = None, **more: Any
    ) -> None:
        """Record the account's state (ok / needs_attention) and last sync details."""
        with writing(self.engine) as conn:
            conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(state=state, state_message=message, updated_at=utcnow(), **more)
            )

    def update(
        self, account_id: str, *, secret: dict[str, Any] | None = None, **values: Any
    ) -> Account:
        """Change name, enabled, addresses, owner_name, sync interval, the label policy,
        connection settings (merged with the current ones, then checked) or the secret."""
        allowed = {
            "name",
            "enabled",
            "labels_enabled",
            "addresses",
            "owner_name",
            "sync_interval_seconds",
            "settings",
        }
        bad = set(values) - allowed
        if bad:
            raise InvalidRequest(f"cannot change {sorted(bad)[0]!r}")
        current = self.get(account_id)
        if "name" in values:
            values["name"] = str(values["name"]).strip()
            if not values["name"]:
                raise InvalidRequest("an account needs a name")
        if "addresses" in values:
            values["addresses"] = [a.strip().lower() for a in values["addresses"] if a.strip()]
        if "settings" in values:
            values["settings"] = validate_settings(
                current.provider, current.settings | dict(values["settings"])
            )
        if secret and current.settings.get("oauth") and "client_secret" not in secret:
            # A new refresh token for the same client: its secret stays (the cached access
            # token, from the old grant, does not).
            kept = self.secret(account_id).get("client_secret")
            secret = secret | ({"client_secret": kept} if kept else {})
        if secret or "settings" in values:
            _check_secret(
                values.get("settings", current.settings), secret or self.secret(account_id)
            )
        if secret:
            values["secret"] = self.vault.seal(secret)
        if (secret or "settings" in values) and current.state in WAITING_STATES:
            # What was wrong may be fixed now: periodic syncs resume and the next one tells.
            values.update(state=OK, state_message=None)
        with writing(self.engine) as conn:
            conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(updated_at=utcnow(), **values)
            )
        return self.get(account_id)

    def remove(self, account_id: str) -> None:
        """Delete the account and its whole local copy."""
        self.get(account_id)
        with writing(self.engine) as conn:
            folder_ids = select(folders.c.id).where(folders.c.account_id == account_id)
            conn.execute(delete(locations).where(locations.c.folder_id.in_(folder_ids)))
            message_ids = select(messages.c.id).where(messages.c.account_id == account_id)
            conn.execute(delete(message_bodies).where(message_bodies.c.message_pk.in_(message_ids)))
            conn.execute(delete(messages).where(messages.c.account_id == account_id))
            fulltext.forget_account(conn, account_id)
            conn.execute(delete(folders).where(folders.c.account_id == account_id))
            conn.execute(delete(accounts).where(accounts.c.id == account_id))
        packs.remove_account(packs.packs_root(self.engine), account_id)

    def message_counts(self, account_ids: Sequence[str]) -> dict[str, int]:
        """Messages stored (not expunged) per account, for the accounts that have any."""
        if not account_ids:
            return {}
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(messages.c.account_id, func.count())
                .where(messages.c.account_id.in_(account_ids), messages.c.expunged_at.is_(None))
                .group_by(messages.c.account_id)
            )
            return {account_id: int(n) for account_id, n in rows}

    def counts(self, account_id: str) -> dict[str, Any]:
        """Messages stored for the account, in all and per folder (not expunged)."""
        total = self.message_counts([account_id]).get(account_id, 0)
        with reading(self.engine) as conn:
            per_folder = conn.execute(
                select(folders.c.name, func.count(locations.c.remote_key))
                .select_from(
                    folders.outerjoin(
                        locations,
                        (locations.c.folder_id == folders.c.id) & locations.c.expunged_at.is_(None),
                    )
                )
                .where(folders.c.account_id == account_id, folders.c.gone_at.is_(None))
                .group_by(folders.c.name)
                .order_by(folders.c.name)
            ).all()
        return {"message_count": int(total), "folders": {n: int(c) for n, c in per_folder}}


def _check_secret(settings: dict[str, Any], secret: dict[str, Any] | None) -> None:
    """An account renewing OAuth tokens needs the refresh token to renew them with."""
    if settings.get("oauth") and not (secret or {}).get("refresh_token"):
        raise InvalidRequest("an account with an OAuth client needs a refresh token")


def validate_settings(provider: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Check an account's connection settings (by its provider); returns them normalised."""
    return registry.validate_settings(provider, settings)
