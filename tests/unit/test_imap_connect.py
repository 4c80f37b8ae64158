"""What a connection sends before login, against a scripted server on 127.0.0.1 (a real
server's sessions: tests/integration/test_imap_sync.py and test_imap_tls.py)."""

from __future__ import annotations

import re

import pytest

from inboxd.providers.imap.session import ImapSession
from inboxd.providers.imap.settings import ImapConfig
from tests.support.imap_script import ScriptedImapServer


class ScriptedServer(ScriptedImapServer):
    """Answers CAPABILITY and LOGIN."""

    def answer(self, tag: bytes, verb: bytes, rest: bytes) -> bytes:
        if verb == b"CAPABILITY":
            return b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n"
        if verb == b"LOGIN":
            return tag + b" OK [CAPABILITY IMAP4rev1 ENABLE] Logged in\r\n"
        return tag + b" BAD unexpected\r\n"


@pytest.mark.parametrize(
    ("greeting", "asks"),
    [
        (b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n", False),
        (b"* OK ready\r\n", True),
    ],
    ids=["capabilities-in-greeting", "plain-greeting"],
)
def test_capability_is_asked_only_when_the_greeting_does_not_list_them(
    greeting: bytes, asks: bool
) -> None:
    server = ScriptedServer(greeting)
    session = ImapSession(ImapConfig("127.0.0.1", server.port, "none", "me", timeout=5), "pw")
    try:
        session.connect()
        assert "ENABLE" in session.capabilities  # read from LOGIN's answer either way
    finally:
        session.close()
        server.close()
    verbs = [re.split(rb"\s+", c.strip())[1].upper() for c in server.commands]
    assert verbs[: 2 if asks else 1] == ([b"CAPABILITY", b"LOGIN"] if asks else [b"LOGIN"])
