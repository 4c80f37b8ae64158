"""Account secrets encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from ``INBOXD_SECRET_KEY`` or from a key file generated on first use in the
data dir (mode 0600). Secrets are decrypted only inside the worker that uses them and never
appear in logs, API answers or CLI output.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from inboxd.config import Settings
from inboxd.errors import ConfigError

KEY_FILE = "secret.key"


class Vault:
    """Encrypts and decrypts small JSON secrets (passwords, OAuth tokens)."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "INBOXD_SECRET_KEY is not a valid Fernet key (32 url-safe base64 bytes)"
            ) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        """The vault for this installation; creates the key file when there is none."""
        if settings.secret_key is not None:
            return cls(settings.secret_key.get_secret_value().encode())
        return cls(_load_or_create_key(settings.data_dir / KEY_FILE))

    def seal(self, secret: dict[str, Any]) -> str:
        """Encrypt a JSON-able secret into an opaque token."""
        return self._fernet.encrypt(json.dumps(secret).encode()).decode()

    def open(self, token: str) -> dict[str, Any]:
        """Decrypt a token made by :meth:`seal`."""
        try:
            value = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ConfigError(
                "cannot decrypt account credentials: the secret key changed since they were "
                "stored; set INBOXD_SECRET_KEY to the old key or enter the password again"
            ) from exc
        assert isinstance(value, dict)
        return value


def _load_or_create_key(path: Path) -> bytes:
    if path.exists():
        return _read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: when two processes start at once, one creates the key and the other reads it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def _read_key(path: Path) -> bytes:
    # Another process may have created the file a moment ago and not yet written to it.
    for _ in range(50):
        key = path.read_bytes().strip()
        if key:
            return key
        time.sleep(0.02)
    raise ConfigError(f"secret key file {path} is empty")
