"""``account test``: connect, list folders with counts, and say plainly what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inboxd.errors import InboxdError
from inboxd.providers.base import ProviderAccount, ProviderOptions, SecretStore
from inboxd.providers.maildir import iter_maildir, scan_maildir
from inboxd.providers.registry import open_provider


def probe_account(
    registry: SecretStore, account: ProviderAccount, timeout: float
) -> dict[str, Any]:
    """``{"ok", "summary"|"error", "folders": {name: count}}`` for one account."""
    try:
        # Local files are counted as they are (an mbox's sync never reads it whole).
        if account.provider == "maildir":
            folders = _probe_maildir(Path(account.settings["path"]))
        elif account.provider == "mbox":
            folders = _probe_mbox(Path(account.settings["path"]))
        else:
            folders = _probe_remote(registry, account, timeout)
    except InboxdError as exc:
        return {"ok": False, "error": exc.message, "folders": {}}
    total = sum(folders.values())
    summary = f"{len(folders)} folder(s), {total} message(s)"
    return {"ok": True, "summary": summary, "folders": folders}


def _probe_remote(secrets: SecretStore, account: ProviderAccount, timeout: float) -> dict[str, int]:
    with open_provider(account, secrets, ProviderOptions(timeout=timeout)) as provider:
        provider.open()
        listing = provider.folders()
    if listing.refused:
        name, reason = next(iter(listing.refused.items()))
        raise InboxdError(f"folder {name}: {reason}")
    return {folder.name: status.messages for folder, status in listing.folders}


def _probe_maildir(root: Path) -> dict[str, int]:
    if not root.is_dir():
        raise InboxdError(f"no Maildir at {root}")
    return {f.name: sum(1 for _ in iter_maildir(f.path)) for f in scan_maildir(root)}


def _probe_mbox(path: Path) -> dict[str, int]:
    if not path.is_file():
        raise InboxdError(f"no mbox file at {path}")
    size = path.stat().st_size
    with path.open("rb") as handle:
        count = sum(1 for line in handle if line.startswith(b"From "))
    return {f"mbox ({size:,} bytes)": count}
