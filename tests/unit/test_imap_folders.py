"""Listing folders with their STATUS against a scripted server on 127.0.0.1: one round trip
with LIST-STATUS (RFC 5819), the pipelined STATUS commands without it, and a STATUS the
server left out asked for separately (a real server: tests/integration/test_imap_sync.py)."""

from __future__ import annotations

import re

import pytest

from inboxd.providers.imap.session import ImapSession
from inboxd.providers.imap.settings import ImapConfig
from tests.support.imap_script import ScriptedImapServer

# (LIST flags, the name as the server writes it, its STATUS items or None for no STATUS)
FOLDERS: list[tuple[bytes, bytes, bytes | None]] = [
    (rb"(\HasNoChildren)", b"INBOX", b"MESSAGES 3 UIDNEXT 4 UIDVALIDITY 7"),
    (rb"(\HasNoChildren)", b'"Sent Items"', b"MESSAGES 1 UIDNEXT 9 UIDVALIDITY 8"),
    (rb"(\HasNoChildren)", b"{14}\r\nR&AOk-sum&AOk-", b"MESSAGES 2 UIDNEXT 3 UIDVALIDITY 9"),
    (rb"(\Noselect \HasChildren)", b"Archive", None),
    (rb"(\HasNoChildren \Trash)", b"Trash", b"MESSAGES 50 UIDNEXT 51 UIDVALIDITY 10"),
]
STATUS_OF = {
    "INBOX": b"MESSAGES 3 UIDNEXT 4 UIDVALIDITY 7",
    "Sent Items": b"MESSAGES 1 UIDNEXT 9 UIDVALIDITY 8",
    "R&AOk-sum&AOk-": b"MESSAGES 2 UIDNEXT 3 UIDVALIDITY 9",
}


class FolderServer(ScriptedImapServer):
    """Answers LOGIN (listing ``capabilities``), LIST (with RETURN (STATUS ...) too) and
    STATUS. ``drop_status`` names a folder whose STATUS the LIST answer leaves out."""

    def __init__(
        self, capabilities: bytes, drop_status: bytes | None = None, refuse: str | None = None
    ) -> None:
        self.capabilities = capabilities
        self.drop_status = drop_status
        self.refuse = refuse  # a folder whose STATUS is answered NO
        super().__init__(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")

    def answer(self, tag: bytes, verb: bytes, rest: bytes) -> bytes:
        if verb == b"LOGIN":
            return tag + b" OK [CAPABILITY " + self.capabilities + b"] in\r\n"
        if verb == b"LIST":
            return self._list(b"RETURN (STATUS" in rest.upper()) + tag + b" OK\r\n"
        if verb == b"STATUS":
            name = re.match(rb'STATUS ("[^"]*"|\S+) ', rest)
            assert name is not None
            if name.group(1).decode().strip('"') == self.refuse:
                return tag + b" NO [NOPERM] Permission denied\r\n"
            items = STATUS_OF[name.group(1).decode().strip('"')]
            return b"* STATUS " + name.group(1) + b" (" + items + b")\r\n" + tag + b" OK\r\n"
        return tag + b" BAD unexpected\r\n"

    def _list(self, with_status: bool) -> bytes:
        out = b""
        for flags, name, status in FOLDERS:
            out += b"* LIST " + flags + b' "/" ' + name + b"\r\n"
            if with_status and status is not None and name != self.drop_status:
                out += b"* STATUS " + name + b" (" + status + b")\r\n"
        return out


def listing(
    server: FolderServer,
) -> tuple[dict[str, tuple[int, int | None, int | None]], dict[str, str]]:
    session = ImapSession(ImapConfig("127.0.0.1", server.port, "none", "me", timeout=5), "pw")
    try:
        session.connect()
        plan, refused = session.folders_with_status()
    finally:
        session.close()
        server.close()
    return {f.name: (st.messages, st.uidnext, st.uidvalidity) for f, st in plan}, refused


def listed(server: FolderServer) -> dict[str, tuple[int, int | None, int | None]]:
    found, refused = listing(server)
    assert refused == {}
    return found


EXPECTED = {"INBOX": (3, 4, 7), "Sent Items": (1, 9, 8), "Résumé": (2, 3, 9)}


def test_list_status_gives_folders_and_statuses_in_one_command() -> None:
    server = FolderServer(b"IMAP4rev1 LIST-STATUS")
    assert listed(server) == EXPECTED
    assert server.verbs() == [b"LOGIN", b"LIST"]
    assert b"RETURN (STATUS (MESSAGES UIDNEXT UIDVALIDITY))" in server.commands[1]


def test_without_list_status_each_folder_gets_a_status_command() -> None:
    server = FolderServer(b"IMAP4rev1")
    assert listed(server) == EXPECTED
    assert server.verbs() == [b"LOGIN", b"LIST", b"STATUS", b"STATUS", b"STATUS"]


@pytest.mark.parametrize("dropped", [b"INBOX", b"{14}\r\nR&AOk-sum&AOk-"], ids=["atom", "literal"])
def test_a_status_left_out_of_list_status_is_asked_for(dropped: bytes) -> None:
    server = FolderServer(b"IMAP4rev1 LIST-STATUS", drop_status=dropped)
    assert listed(server) == EXPECTED
    assert server.verbs() == [b"LOGIN", b"LIST", b"STATUS"]


@pytest.mark.parametrize("capabilities", [b"IMAP4rev1", b"IMAP4rev1 LIST-STATUS"])
def test_a_folder_whose_status_is_refused_comes_apart_with_the_reason(capabilities: bytes) -> None:
    # With LIST-STATUS the server leaves the folder's STATUS out, then refuses it alone.
    drop = b'"Sent Items"' if b"LIST-STATUS" in capabilities else None
    server = FolderServer(capabilities, drop_status=drop, refuse="Sent Items")
    found, refused = listing(server)
    assert found == {k: v for k, v in EXPECTED.items() if k != "Sent Items"}
    assert refused == {"Sent Items": "127.0.0.1 would not open it: [NOPERM] Permission denied"}
