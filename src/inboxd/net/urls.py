"""Reading a URL taken from a message: parsed once, credentials dropped, one cache key."""

from __future__ import annotations

import httpx


class BadURL(ValueError):
    """The text is not a URL inboxd can request."""


def parse_url(text: str, *, base: httpx.URL | None = None) -> httpx.URL:
    """The URL (joined to ``base`` when relative) without userinfo or fragment.

    Credentials in a link are the sender's, not the user's: they are never sent; the fragment
    never leaves the client anyway.
    """
    try:
        url = base.join(text.strip()) if base is not None else httpx.URL(text.strip())
        return url.copy_with(username=None, password=None, fragment=None)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise BadURL(str(exc) or "not a URL") from exc


def cache_key(url: httpx.URL) -> str:
    """The normalised form two spellings of one link share (case of scheme and host, default
    port, empty path, userinfo and fragment do not matter)."""
    return str(url.copy_with(username=None, password=None, fragment=None))
