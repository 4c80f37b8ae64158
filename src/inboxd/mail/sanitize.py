"""HTML mail made safe to show: nh3 (ammonia) keeps the formatting tags and drops scripts,
event handlers, forms, frames and plugins; remote resources (images, CSS ``url()``) are
removed unless the reader allowed them for this message, because loading them tells the
sender that, when and where the mail was read.

The output is meant for a sandboxed frame whose Content-Security-Policy blocks the same
things again (``api/routes_messages.py``): the sanitiser is the first line, the CSP the
second, so neither has to be perfect alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import nh3

__all__ = ["SafeHtml", "sanitize_html"]

#: Formatting tags of real-world mail on top of ammonia's defaults (no form, frame, object,
#: embed, script, link, meta or base: those are dropped with their attributes).
_TAGS = frozenset(nh3.ALLOWED_TAGS | {"font", "style", "tfoot", "big", "address", "section"})
#: Tags dropped together with everything inside them (the rest keep their text).
_DROP_WITH_CONTENT = frozenset({"script", "title", "template", "noscript", "textarea", "select"})
_GENERIC_ATTRIBUTES = frozenset(
    {"style", "class", "align", "valign", "bgcolor", "width", "height", "dir", "lang", "title"}
)
_EXTRA_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"name", "title"},
    "img": {"border", "hspace", "vspace"},
    "font": {"color", "face", "size"},
    "table": {"border", "cellpadding", "cellspacing", "background"},
    "td": {"nowrap", "background"},
    "th": {"nowrap", "background"},
    "tr": {"background"},
    "div": {"background"},
    "ol": {"type"},
    "ul": {"type"},
    "li": {"value"},
}
_URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid", "data"})
#: Attributes that load something when the message is shown.
_LOADING = frozenset({"src", "background"})
_REMOTE_URL = re.compile(r"^\s*https?:", re.IGNORECASE)
_IMAGE_DATA = re.compile(r"^\s*data:image/(png|gif|jpe?g|webp|bmp)[;,]", re.IGNORECASE)
# CSS that loads something: url(...), image-set(...), and @import (whose target may be a bare
# string).  Escapes are decoded before looking, so that ``u\72l(`` is seen as ``url(``.
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)]*))\s*\)""", re.IGNORECASE)
_CSS_IMAGE_SET = re.compile(r"(?:-webkit-)?image-set\([^)]*\)", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"@import[^;]*;?", re.IGNORECASE)
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6}\s?|.)", re.DOTALL)
_STYLE_BLOCK = re.compile(r"(<style\b[^>]*>)(.*?)(</style\s*>)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class SafeHtml:
    """Sanitised HTML, and whether remote content was held back (so a reader can be offered
    to load it)."""

    html: str
    remote_content_blocked: bool


class _Filter:
    """nh3's attribute callback: one per call, recording what it held back."""

    def __init__(self, allow_remote: bool, images: Mapping[str, str]) -> None:
        self.allow_remote = allow_remote
        self.images = images
        self.blocked = False

    def __call__(self, tag: str, name: str, value: str) -> str | None:
        if name == "style":
            return self.css(value)
        if name == "href":
            # Links only lead to web pages, mail addresses and phone numbers.
            scheme = value.strip().partition(":")[0].lower()
            return value if scheme in {"http", "https", "mailto", "tel"} else None
        if name in _LOADING:
            return self.resource(tag, value)
        return value

    def resource(self, tag: str, value: str) -> str | None:
        """What an image (or background) may load: inline data, the message's own parts
        (``cid:``), and remote URLs only when allowed."""
        if _IMAGE_DATA.match(value):
            return value
        if value.strip().lower().startswith("cid:"):
            cid = value.strip()[4:].strip("<> ")
            return self.images.get(cid, value) if tag == "img" else None
        if _REMOTE_URL.match(value):
            if self.allow_remote:
                return value
            self.blocked = True
        return None

    def css(self, value: str) -> str | None:
        """CSS with everything that would load something removed (unless allowed)."""
        if "\\" in value:
            value = _CSS_ESCAPE.sub(_unescape, value)
        value = _CSS_IMPORT.sub(self._held_back, value)
        value = _CSS_IMAGE_SET.sub(self._held_back, value)
        return _CSS_URL.sub(self._css_url, value)

    def _held_back(self, match: re.Match[str]) -> str:
        if self.allow_remote:
            return match.group(0)
        self.blocked = True
        return ""

    def _css_url(self, match: re.Match[str]) -> str:
        target = next(g for g in match.groups() if g is not None).strip()
        if _IMAGE_DATA.match(target):
            return match.group(0)
        if target.lower().startswith("cid:") and target[4:].strip("<> ") in self.images:
            return f'url("{self.images[target[4:].strip("<> ")]}")'
        if _REMOTE_URL.match(target):
            if self.allow_remote:
                return match.group(0)
            self.blocked = True
        return "none"


def _unescape(match: re.Match[str]) -> str:
    token = match.group(1)
    if token[0] in "0123456789abcdefABCDEF" and len(token.strip()) <= 6:
        try:
            code = int(token.strip(), 16)
            return chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else ""
        except ValueError:
            return token
    return "" if token == "\n" else token


def _style_text(found: _Filter, css: str) -> str:
    """A <style> element's CSS made safe; a decoded escape must not close the element."""
    return (found.css(css) or "").replace("<", "\\3c ")


def sanitize_html(
    html: str, *, allow_remote: bool = False, images: Mapping[str, str] | None = None
) -> SafeHtml:
    """``html`` without scripts, event handlers, forms, frames or plugins; links open in a
    new window without a referrer; remote images and CSS ``url()`` removed unless
    ``allow_remote``. ``images`` maps a Content-ID to the URL (e.g. a ``data:`` URI) that
    ``cid:`` references to it become."""
    found = _Filter(allow_remote, images or {})
    attributes: dict[str, set[str]] = {"*": set(_GENERIC_ATTRIBUTES)}
    for tag, names in nh3.ALLOWED_ATTRIBUTES.items():
        attributes[tag] = set(names)
    for tag, names in _EXTRA_ATTRIBUTES.items():
        attributes[tag] = attributes.get(tag, set()) | names
    cleaned = nh3.clean(
        html,
        tags=set(_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes=attributes,
        attribute_filter=found,
        url_schemes=set(_URL_SCHEMES),
        # Relative URLs would resolve against inboxd's own address.
        url_relative="deny",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        link_rel="noopener noreferrer",
    )
    if "<style" in cleaned:
        # A <style> element's text is CSS nh3 does not look into.
        cleaned = _STYLE_BLOCK.sub(
            lambda m: m.group(1) + _style_text(found, m.group(2)) + m.group(3), cleaned
        )
    return SafeHtml(cleaned, found.blocked)
