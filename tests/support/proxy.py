"""A loopback TCP proxy for fault tests: it can drop connections once after N bytes."""

from __future__ import annotations

import selectors
import socket
import threading


class DroppingProxy:
    """Forwards 127.0.0.1:port to a target; the first connection that carries more than
    ``drop_after`` bytes from the server is cut (both ends closed)."""

    def __init__(self, target_port: int, *, drop_after: int | None = None) -> None:
        self.target_port = target_port
        self.drop_after = drop_after
        self.drops = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> DroppingProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            for conn in self._conns:
                conn.close()

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
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
                        if self._should_drop(from_server):
                            return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            client.close()
            server.close()

    def _should_drop(self, seen: int) -> bool:
        with self._lock:
            if self.drop_after is not None and self.drops == 0 and seen > self.drop_after:
                self.drops += 1
                return True
        return False
