"""Full parse mode: everything a reader of one message sees (its text and HTML bodies and
its links), on top of the fields a summary keeps."""

from __future__ import annotations

from inboxd.mail.body import TEXT_BODY_CAP, BodyFields, Walk, snippet_of, walk_tree
from inboxd.mail.html_text import URL_PATTERN, dedupe_links, hrefs, html_to_text
from inboxd.mail.message import ParsedMessage, after_parse_failure, parse_raw
from inboxd.mail.mime import Entity

__all__ = ["HTML_PARSE_CAP", "parse_message", "read_full_body"]

HTML_PARSE_CAP = 256 * 1024  # characters of HTML scanned for text and links


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse a complete message; never raises, problems are listed in ``parse_errors``."""
    try:
        return parse_raw(bytes(raw), read_full_body)
    except Exception as exc:  # a parser bug must not stop a whole sync
        return after_parse_failure(raw, exc)


def read_full_body(raw: bytes, top: Entity, notes: list[str]) -> BodyFields:
    """Walk the MIME tree once, then derive snippet, text, and links from what was found."""
    walk = Walk(raw, notes)
    walk_tree(top, walk)
    text_body = walk.text if walk.text is not None and walk.text.strip() else None
    if text_body is None and walk.html:
        # Only HTML: its text is worth the (slow, pure-Python) HTML parse.
        text_body = html_to_text(walk.html[:HTML_PARSE_CAP], notes)
    if not text_body:
        text_body = walk.text or None
    anchors = hrefs(walk.html[:HTML_PARSE_CAP]) if walk.html else []
    in_text = URL_PATTERN.findall(text_body[:TEXT_BODY_CAP]) if text_body else []
    return BodyFields(
        attachments=walk.attachments,
        snippet=snippet_of(text_body) if text_body else "",
        text_body=text_body[:TEXT_BODY_CAP] if text_body is not None else None,
        html_body=walk.html,
        links=dedupe_links(anchors, in_text),
    )
