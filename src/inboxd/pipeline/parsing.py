"""Parsing fetched messages, off the connection's thread."""

from __future__ import annotations

from collections.abc import Sequence

from inboxd.mail.message import parse_message
from inboxd.mail.provider import FetchedMessage
from inboxd.store.writer import Incoming


def parse_batch(fetched: Sequence[FetchedMessage]) -> list[Incoming]:
    """Parse a batch of fetched messages (never raises on bad mail)."""
    return [Incoming(f, parse_message(f.raw)) for f in fetched]
