"""The text and the links of HTML mail: visible text (html.parser, or a rough regex pass for
a snippet), anchors' hrefs, and links cleaned and deduplicated."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

__all__ = [
    "MAX_LINKS",
    "MAX_LINK_CHARS",
    "URL_PATTERN",
    "dedupe_links",
    "hrefs",
    "html_to_text",
    "strip_tags",
]

MAX_LINKS = 500
MAX_LINK_CHARS = 2048
URL_PATTERN = re.compile(r"""https?://[^\s<>"'`{}|\\^\[\]]+""", re.IGNORECASE)
_HREF = re.compile(
    r"""<a\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""",
    re.IGNORECASE,
)
_CHAR_REF = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_HIDDEN_HTML = re.compile(
    r"<!--.*?(?:-->|$)|<(script|style|head|title|noscript|template|svg)\b.*?(?:</\1\s*>|$)",
    re.IGNORECASE | re.DOTALL,
)
_TAG = re.compile(r"<[^>]*(?:>|$)")
# Newsletters pad their preheaders with invisible characters that str.split() keeps.
_INVISIBLE: dict[int, str | None] = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f")
)


class _HtmlText(HTMLParser):
    """Collect the visible text of an HTML document, one line per block element."""

    _HIDDEN = frozenset({"script", "style", "head", "title", "noscript", "template", "svg"})
    _BLOCKS = frozenset(
        {"br", "p", "div", "tr", "li", "ul", "ol", "table", "blockquote", "hr", "section"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "pre", "article", "header", "footer"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        elif tag == "body":
            self.hidden = 0  # an unclosed <head> must not hide the whole document
        elif tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.chunks.append(data)


def html_to_text(markup: str, notes: list[str]) -> str:
    """The visible text of ``markup``, one line per block element, blank lines dropped."""
    parser = _HtmlText()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # html.parser can still trip over exotic markup; keep what we have
        notes.append("malformed HTML; text extraction stopped early")
    text = "".join(parser.chunks).translate(_INVISIBLE)
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def strip_tags(markup: str) -> str:
    """Rough visible text of the start of an HTML document (for a snippet only): hidden
    elements, comments and tags removed, character references decoded."""
    text = _HIDDEN_HTML.sub(" ", markup)
    text = _TAG.sub(" ", text)
    return html.unescape(text).translate(_INVISIBLE)


def hrefs(markup: str) -> list[str]:
    """The href of every anchor in ``markup``, character references decoded."""
    # A regex over anchors is far faster than html.parser and finds the same hrefs.
    return [_unescape_attr(a or b or c) for a, b, c in _HREF.findall(markup)]


def _unescape_attr(value: str) -> str:
    # Only ";"-terminated references: in an attribute "&para=1" is a query string, not "¶=1"
    # (html.unescape would decode it).
    if "&" not in value or ";" not in value:
        return value
    return _CHAR_REF.sub(lambda m: html.unescape(m.group(0)), value)


def _clean_link(url: str) -> str | None:
    url = url.strip().replace("\n", "").replace("\r", "").replace("\t", "")
    url = url.rstrip(".,;:!?'\"")
    while url.endswith(")") and url.count(")") > url.count("("):
        url = url[:-1]
    scheme = url[:8].lower()
    if not (scheme.startswith("http://") or scheme.startswith("https://")):
        return None
    if len(url) <= len("https://") or len(url) > MAX_LINK_CHARS:
        return None
    return url


def dedupe_links(*sources: list[str]) -> list[str]:
    """The http(s) links of ``sources``, cleaned, in first-seen order, at most MAX_LINKS."""
    seen: dict[str, None] = {}
    for source in sources:
        for candidate in source:
            url = _clean_link(candidate)
            if url is not None:
                seen.setdefault(url, None)
                if len(seen) >= MAX_LINKS:
                    return list(seen)
    return list(seen)
