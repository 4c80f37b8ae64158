"""What a connection sends before login, against a scripted server on 127.0.0.1 (a real
server's sessions: tests/integration/test_imap_sync.py and test_imap_tls.py)."""

from __future__ import annotations

import re
import socket
import threading

import pytest

from inboxd.mail.imap import ImapConfig, ImapSession


class ScriptedServer:
    """Greets with ``greeting``, answers CAPABILITY and LOGIN, records every command."""

    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        self.commands: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._listener.accept()
        with conn, conn.makefile("rb") as reader:
            conn.sendall(self.greeting)
            for line in reader:
                self.commands.append(line)
                tag, _, rest = line.partition(b" ")
                if rest.upper().startswith(b"CAPABILITY"):
                    conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
                elif rest.upper().startswith(b"LOGIN"):
                    conn.sendall(tag + b" OK [CAPABILITY IMAP4rev1 ENABLE] Logged in\r\n")
                elif rest.upper().startswith(b"LOGOUT"):
                    conn.sendall(b"* BYE\r\n" + tag + b" OK bye\r\n")
                    return

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=5)


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
