"""A loopback TCP proxy for fault and timing tests: it can drop a connection once after N
bytes from the server (or leave it open and silent: a stalled server), and hold back what
the client sends (a distant server)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Callable


class Proxy:
    """Forwards 127.0.0.1:port to 127.0.0.1:target_port.

    ``drop_after``: the first connection that carries more than this many bytes from the
    server is cut (both ends closed). ``delay``: whatever the client sends waits this many
    seconds first, so each IMAP command costs at least one slow round trip however small
    the server's answer is. ``stall``: instead of cutting that connection, stop forwarding
    on it and keep it open (a server that hangs mid-answer). ``only_connection``: ``drop_after``
    applies to that connection alone (1 for the first accepted), whatever the others carry.
    :meth:`cut` drops every open connection at once (a server restart, a NAT box that forgot
    them) and goes on accepting new ones. ``rewrite`` changes what the server sends before
    the client sees it (a server that lacks an extension); what clients send is kept in
    ``sent`` (to count commands)."""

    def __init__(
        self,
        target_port: int,
        *,
        drop_after: int | None = None,
        delay: float = 0.0,
        stall: bool = False,
        only_connection: int | None = None,
        rewrite: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.target_port = target_port
        self.drop_after = drop_after
        self.delay = delay
        self.stall = stall
        self.only_connection = only_connection
        self.rewrite = rewrite
        self.sent = bytearray()
        self.drops = 0
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting and cut every connection."""
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            conn.close()
        for thread in threads:
            thread.join(timeout=5)

    def cut(self) -> None:
        """Close every connection open now; later ones are forwarded as before."""
        with self._lock:
            conns, self._conns = list(self._conns), []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.accepted += 1
                number = self.accepted
            thread = threading.Thread(target=self._pump, args=(client, server, number), daemon=True)
            with self._lock:
                self._conns += [client, server]
                self._threads.append(thread)
            thread.start()

    def _pump(self, client: socket.socket, server: socket.socket, number: int) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, server)
        sel.register(server, selectors.EVENT_READ, client)
        from_server = 0
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    if src is server:
                        from_server += len(data)
                        if self._should_drop(number, from_server):
                            if self.stall:
                                self._stop.wait()  # silent, open until the proxy closes
                            return
                        if self.rewrite is not None:
                            data = self.rewrite(data)
                    else:
                        with self._lock:
                            self.sent += data
                        if self.delay and self._stop.wait(self.delay):
                            return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            client.close()
            server.close()

    def _should_drop(self, number: int, seen: int) -> bool:
        if self.only_connection is not None and number != self.only_connection:
            return False
        with self._lock:
            if self.drop_after is not None and self.drops == 0 and seen > self.drop_after:
                self.drops += 1
                return True
        return False
