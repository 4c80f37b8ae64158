"""The IDLE exchange against a scripted server on 127.0.0.1: every change the server
reports reaches the caller, wherever in the exchange it comes (a real server's IDLE:
tests/integration/test_idle.py)."""

from __future__ import annotations

import threading

import pytest

from inboxd.providers.base import ServerClosedConnection
from inboxd.providers.imap.idle import IdleNotOffered, InboxIdle
from inboxd.providers.imap.settings import ImapConfig
from tests.support.imap_script import ScriptedImapServer

GREETING = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"


class IdleServer(ScriptedImapServer):
    """Reports a change before IDLE's continuation, one with a literal while idling, one
    in DONE's answer; then, on the second IDLE, says BYE."""

    def __init__(self, capabilities: bytes = b"IMAP4rev1 IDLE") -> None:
        self.capabilities = capabilities
        self.idles = 0
        super().__init__(GREETING)

    def answer(self, tag: bytes, verb: bytes, rest: bytes) -> bytes:
        if verb == b"LOGIN":
            return tag + b" OK [CAPABILITY " + self.capabilities + b"] Logged in\r\n"
        if verb == b"EXAMINE":
            return b"* 2 EXISTS\r\n* OK [UIDNEXT 3] next\r\n" + tag + b" OK [READ-ONLY] done\r\n"
        if verb == b"IDLE":
            self.idles += 1
            if self.idles > 1:
                return b"+ idling\r\n* BYE going away\r\n"
            literal = b"a\r\nb\r\n"
            return (
                b"* 3 EXISTS\r\n+ idling\r\n* OK Still here\r\n"
                b"* 3 FETCH (UID 9 BODY[HEADER.FIELDS (X-A)] {"
                + str(len(literal)).encode()
                + b"}\r\n"
                + literal
                + b")\r\n"
            )
        if tag == b"DONE":
            return b"* 1 EXPUNGE\r\nIDL1 OK IDLE terminated\r\n"
        return tag + b" BAD unexpected\r\n"


def test_every_change_is_reported_and_a_bye_ends_the_watch() -> None:
    server = IdleServer()
    idle = InboxIdle(ImapConfig("127.0.0.1", server.port, "none", "me", timeout=5), "pw")
    reported: list[bytes] = []
    try:
        idle.open()
        with pytest.raises(ServerClosedConnection, match="going away"):
            idle.watch(threading.Event(), reported.extend, renew_seconds=0.6)
    finally:
        idle.close()
        server.close()
    assert [line.split(b" (")[0] for line in reported] == [
        b"* 3 EXISTS\r\n",  # before the continuation
        b"* 3 FETCH",  # while idling, its literal read whole
        b"* 1 EXPUNGE\r\n",  # in DONE's answer
    ]
    assert reported[1].endswith(b"a\r\nb\r\n)\r\n")
    sent = [c.split()[0 if c.startswith(b"DONE") else 1] for c in server.commands]
    assert sent[:5] == [b"LOGIN", b"EXAMINE", b"IDLE", b"DONE", b"IDLE"]  # renewed once


def test_a_server_without_idle_is_told_apart() -> None:
    server = IdleServer(capabilities=b"IMAP4rev1")
    idle = InboxIdle(ImapConfig("127.0.0.1", server.port, "none", "me", timeout=5), "pw")
    try:
        with pytest.raises(IdleNotOffered, match="does not offer IMAP IDLE"):
            idle.open()
    finally:
        idle.close()
        server.close()
    assert server.verbs() == [b"LOGIN"]
