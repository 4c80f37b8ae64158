"""Helpers for driving the dashboard of a real ``inboxd serve`` in headless Chromium."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.services.dovecot import ImapUser
from tests.support.mail import make_message
from tests.support.server import ServerProcess, wait_ready


def fill_inbox(user: ImapUser, count: int, *, body_size: int = 400) -> None:
    """Append ``count`` generated messages to the user's INBOX over one IMAP connection."""
    with user.server.connect(user.username, user.password) as conn:
        for n in range(count):
            raw = make_message(n, body_size=body_size, to=f"{user.username}@example.com")
            typ, data = conn.append("INBOX", None, None, raw)
            if typ != "OK":
                raise AssertionError(f"APPEND failed: {data!r}")


def imap_account_body(name: str, user: ImapUser, *, port: int | None = None) -> dict[str, Any]:
    """A create body for an IMAP account of ``user`` (plaintext: loopback only)."""
    return {
        "provider": "imap",
        "name": name,
        "settings": {
            "host": "127.0.0.1",
            "port": port or user.port,
            "security": "none",
            "username": user.username,
        },
        "secret": {"password": user.password},
        "sync_interval_seconds": 0,
    }


def restart_server(server: ServerProcess, timeout: float = 30.0) -> None:
    """Stop the server and start it again with the same command: same port, same data dir.

    The new process replaces ``server.proc``; the log goes on in the same file.
    """
    args = server.proc.args
    assert isinstance(args, list), args
    command = [str(arg) for arg in args]
    server.stop()
    with server.log_path.open("ab") as out:
        server.proc = subprocess.Popen(
            command, env=server.env, stdout=out, stderr=subprocess.STDOUT
        )
    wait_ready(server, timeout)


@contextmanager
def logged_in_tab(browser: Browser, server: ServerProcess, view: str) -> Iterator[Page]:
    """A tab logged in with the admin key, on the dashboard's ``view`` (mail, cleanups,
    newsletters…); when the block ends, the page must not have thrown."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(server.base_url + "/")
    tab.get_by_test_id("login-key").fill(server.admin_key)
    tab.get_by_test_id("login-submit").click()
    expect(tab.locator("#dashboard-view")).to_be_visible()
    tab.get_by_test_id(f"tab-{view}").click()
    expect(tab.get_by_test_id(f"{view}-panel")).to_be_visible()
    yield tab
    context.close()
    assert errors == [], errors
