"""Turning fetched batches into store rows: parse here, pack on a helper thread."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

from inboxd.mail.message import summarize_message
from inboxd.mail.provider import FetchedMessage
from inboxd.store import bodies
from inboxd.store.writer import Incoming


class BatchPreparer:
    """Parses each batch on the calling thread while a helper thread packs its bodies:
    zstd releases the GIL, so the two run side by side."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="inboxd-pack")

    def prepare(self, fetched: Sequence[FetchedMessage]) -> list[Incoming]:
        """Parsed messages with their packed bodies."""
        packing = self._pool.submit(_pack_all, fetched)
        parsed = [summarize_message(f.raw) for f in fetched]
        return [
            Incoming(f, p, z) for f, p, z in zip(fetched, parsed, packing.result(), strict=True)
        ]

    def close(self) -> None:
        """Stop the helper thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BatchPreparer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _pack_all(fetched: Sequence[FetchedMessage]) -> list[bytes]:
    return [bodies.pack(f.raw) for f in fetched]
