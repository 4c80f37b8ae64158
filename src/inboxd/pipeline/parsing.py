"""Parsing fetched messages, off the connection's thread."""

from __future__ import annotations

from collections.abc import Sequence

from inboxd.mail.message import parse_message
from inboxd.mail.provider import FetchedMessage
from inboxd.store.writer import Incoming


def parse_batch(
    fetched: Sequence[FetchedMessage], packed: Sequence[bytes] | None = None
) -> list[Incoming]:
    """Parse a batch of fetched messages (never raises on bad mail); ``packed`` are their
    bodies already compressed, if any."""
    if packed is None:
        return [Incoming(f, parse_message(f.raw)) for f in fetched]
    return [Incoming(f, parse_message(f.raw), z) for f, z in zip(fetched, packed, strict=True)]
