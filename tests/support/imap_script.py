"""A scripted IMAP server on 127.0.0.1 for unit tests of what a session sends: one
connection, a greeting, every command recorded and answered by the subclass."""

from __future__ import annotations

import socket
import threading


class ScriptedImapServer:
    """Greets with ``greeting`` and hands each command to :meth:`answer`; LOGOUT ends the
    connection."""

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
                tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
                verb = rest.split(b" ", 1)[0].upper()
                if verb == b"LOGOUT":
                    conn.sendall(b"* BYE\r\n" + tag + b" OK bye\r\n")
                    return
                conn.sendall(self.answer(tag, verb, rest))

    def answer(self, tag: bytes, verb: bytes, rest: bytes) -> bytes:
        """The server's whole answer to one command (untagged lines and the tagged one)."""
        raise NotImplementedError

    def verbs(self) -> list[bytes]:
        """The commands' verbs, in order (LOGOUT is not waited for, so it is left out)."""
        verbs = [c.split(b" ")[1].strip().upper() for c in self.commands]
        return [v for v in verbs if v != b"LOGOUT"]

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=5)
