"""``account test``: connect, list folders with counts, and say plainly what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from inboxd.errors import InboxdError
from inboxd.providers.maildir import iter_maildir, scan_maildir

if TYPE_CHECKING:
    from inboxd.store.accounts import Account, Accounts


def probe_account(registry: Accounts, account: Account, timeout: float) -> dict[str, Any]:
    """``{"ok", "summary"|"error", "folders": {name: count}}`` for one account."""
    try:
        if account.provider == "imap":
            folders = _probe_imap(registry, account, timeout)
        elif account.provider == "maildir":
            folders = _probe_maildir(Path(account.settings["path"]))
        else:
            folders = _probe_mbox(Path(account.settings["path"]))
    except InboxdError as exc:
        return {"ok": False, "error": exc.message, "folders": {}}
    total = sum(folders.values())
    summary = f"{len(folders)} folder(s), {total} message(s)"
    return {"ok": True, "summary": summary, "folders": folders}


def _probe_imap(registry: Accounts, account: Account, timeout: float) -> dict[str, int]:
    # Imported here: the web process loads this module but must not load the IMAP stack.
    from inboxd.providers.imap.session import ImapSession

    session = ImapSession(account.imap_config(timeout), registry.login_secret(account, timeout))
    try:
        session.connect()
        plan, refused = session.folders_with_status()
        if refused:
            name, reason = next(iter(refused.items()))
            raise InboxdError(f"folder {name}: {reason}")
        return {folder.name: status.messages for folder, status in plan}
    finally:
        session.close()


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
