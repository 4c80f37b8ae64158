"""The links of a newsletter worth following (its articles), the ones that must never be
requested (unsubscribe, preferences, confirm, List-Unsubscribe) and its "view in browser"
link; tracking redirects unwrapped and tracking parameters stripped, all offline."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from inboxd.mail.tracking import clean_url, unwrap

__all__ = [
    "HTML_CAP",
    "MAX_ANCHORS",
    "MAX_LINKS",
    "MAX_URL_CHARS",
    "REASONS",
    "TEXT_CAP",
    "Extracted",
    "Link",
    "Rejected",
    "clean_url",
    "extract_links",
    "list_unsubscribe_urls",
    "never_request",
    "unwrap",
]

REASONS = (
    "unsubscribe",
    "preferences",
    "confirm",
    "social",
    "tracking pixel",
    "image-only",
    "mailto/tel/javascript",
    "invalid URL",
    "duplicate",
    "view in browser",
    "list header",
)
HTML_CAP = 2 * 1024 * 1024  # characters of HTML parsed; newsletters are far smaller
TEXT_CAP = 512 * 1024  # characters of a text part scanned for URLs
MAX_ANCHORS = 3000  # anchors and images examined in one message
MAX_LINKS = 500  # links kept of one message
CANONICAL_SCAN = 4096  # characters at the start of a text part searched for the web version
MAX_VIEW_TEXT = 120  # characters of a "view in browser" sentence, at most
MAX_URL_CHARS = 4096  # longer "URLs" are junk (or data smuggled in a query string)


@dataclass(frozen=True, slots=True)
class Link:
    """A link worth resolving (an article candidate)."""

    url: str  # as found (absolute, entity-decoded), before unwrapping
    text: str  # anchor text, whitespace-collapsed ("" for none)
    unwrapped: str  # after offline unwrapping of tracking redirects (== url when none)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A URL found in the message that is not followed, and why."""

    url: str
    reason: str  # one of REASONS


@dataclass(frozen=True, slots=True)
class Extracted:
    """What one newsletter gives: its canonical link, its article links, the rest."""

    canonical_url: str | None  # the "view in browser / view online" link
    links: list[Link] = field(default_factory=list)  # by clean_url(unwrapped), first seen
    rejected: list[Rejected] = field(default_factory=list)


# --- what must never be requested ----------------------------------------------------------

# A GET on any of these may act for the user; false positives only cost an article.
_URL_UNSUBSCRIBE = re.compile(r"unsub|opt[-_.]?out|list[-_]?remove|/remove[-_]?me\b")
_URL_PREFERENCES = re.compile(
    r"preference|/prefs\b|manage[-_]?(?:your[-_]?)?subscription|subscription[-_]?"
    r"(?:center|centre|settings|management|manager)|email[-_]?settings|"
    r"list-manage\.com/profile|/manage[-_]?(?:email|notifications?)\b"
)
_URL_CONFIRM = re.compile(
    r"(?:^|[/?&=._-])confirm(?:ation|ed)?(?:[/?&=._-]|$)|confirm[-_]?(?:subscri|email|opt|"
    r"account|address)|verify[-_]?(?:email|subscri|address)|double[-_]?opt|/subscribe/confirm"
)
_TEXT_UNSUBSCRIBE = re.compile(r"\bunsub|\bopt[- ]?out\b|\bremove me\b|\bstop (?:receiving|these)")
_TEXT_PREFERENCES = re.compile(
    r"\b(?:manage|update|change|edit)\b.{0,20}\b(?:preferences|subscriptions?|profile|"
    r"settings)\b|\b(?:email|mailing|subscription|notification) (?:preferences|settings)\b"
    r"|\bsubscription cent(?:er|re)\b"
)
_TEXT_CONFIRM = re.compile(
    r"\bconfirm (?:your |my )?(?:subscription|e-?mail|address|sign[- ]?up|account)\b"
    r"|\bverify (?:your |my )?(?:e-?mail|address|subscription)\b"
)
_VIEW_IN_BROWSER = re.compile(
    r"\b(?:view|read|see|open|display)\b.{0,40}?\b(?:in|on|with)\b.{0,15}?\b(?:browser|"
    r"web)\b|\b(?:view|read|see)\b(?: (?:it|this|the) ?(?:e-?mail|message|newsletter|issue)?)?"
    r" (?:online|as a web ?page)\b|\b(?:web|online|browser) version\b|having trouble "
    r"(?:viewing|reading|seeing)|\b(?:can'?t|cannot|unable to) (?:see|view|read) this\b"
    r"|\bnot display(?:ing)? (?:correctly|properly)\b|\bview (?:this|the) (?:e-?mail|message"
    r"|newsletter) (?:in|as) html\b",
    re.IGNORECASE,
)
# Words without which none of the patterns above can match.
_URL_HINT = re.compile(
    r"unsub|opt|remove|prefer|prefs|manage|subscri|settings|profile|confirm|verif"
)
_TEXT_HINT = re.compile(r"unsub|opt|remove|stop|prefer|subscri|profile|setting|confirm|verif")
_VIEW_HINT = re.compile(r"browser|web|online|trouble|display|can|unable|html", re.IGNORECASE)


def _looks_like_view(text: str) -> bool:
    # Short: a headline such as "How to watch the eclipse online in your browser" is an article.
    return (
        0 < len(text) <= MAX_VIEW_TEXT
        and _VIEW_HINT.search(text) is not None
        and _VIEW_IN_BROWSER.search(text) is not None
    )


# Anchor texts too vague to name their link: the text around them says what they are.
_GENERIC_TEXT = re.compile(r"^(?:click(?: here)?|here|this link|link|view(?: it)?|open|go)\W*$")


def never_request(url: str, list_unsubscribe_urls: Iterable[str]) -> str | None:
    """The reason ``url`` must never be requested (a List-Unsubscribe URL, or one that looks
    like unsubscribe / preferences / opt-out / confirm / manage-subscription), else None."""
    candidates = {url, unwrap(url)}
    header = {_comparable(u) for u in list_unsubscribe_urls}
    for candidate in candidates:
        if _comparable(candidate) in header:
            return "list header"
    for candidate in candidates:
        reason = _url_reason(candidate)
        if reason is not None:
            return reason
    return None


def _url_reason(url: str) -> str | None:
    # Decoded twice: trackers percent-encode their targets, and "%2Funsubscribe" must match.
    lowered = unquote(unquote(url)).lower()
    if not _URL_HINT.search(lowered):  # one cheap pass rules out most links
        return None
    if _URL_UNSUBSCRIBE.search(lowered):
        return "unsubscribe"
    if _URL_PREFERENCES.search(lowered):
        return "preferences"
    if _URL_CONFIRM.search(lowered):
        return "confirm"
    return None


def _text_reason(text: str) -> str | None:
    lowered = text.lower()
    if not _TEXT_HINT.search(lowered):
        return None
    if _TEXT_UNSUBSCRIBE.search(lowered):
        return "unsubscribe"
    if _TEXT_PREFERENCES.search(lowered):
        return "preferences"
    if _TEXT_CONFIRM.search(lowered):
        return "confirm"
    return None


def _comparable(url: str) -> str:
    """A form of ``url`` two spellings of one List-Unsubscribe target share."""
    url = url.strip()
    if url[:7].lower() == "mailto:":
        return url.lower()
    return clean_url(url)


def list_unsubscribe_urls(header: str | None) -> list[str]:
    """The URLs of a List-Unsubscribe header (``<mailto:…>, <https://…>``), in order."""
    if not header:
        return []
    found = re.findall(r"<\s*([^<>]+?)\s*>", header)
    if not found:  # senders that forget the angle brackets
        found = [part.strip() for part in header.split(",") if part.strip()]
    return ["".join(url.split()) for url in found]


# --- social profiles and share buttons -----------------------------------------------------

_SOCIAL_HOSTS = frozenset(
    {
        "facebook.com",
        "fb.com",
        "fb.me",
        "twitter.com",
        "x.com",
        "linkedin.com",
        "lnkd.in",
        "instagram.com",
        "youtube.com",
        "pinterest.com",
        "tiktok.com",
        "threads.net",
        "bsky.app",
        "snapchat.com",
        "tumblr.com",
        "reddit.com",
        "whatsapp.com",
        "wa.me",
        "t.me",
        "telegram.me",
        "mastodon.social",
        "flickr.com",
        "vimeo.com",
        "discord.gg",
        "plus.google.com",
    }
)
# On a social host these paths are content a newsletter links to (a post, a video), not
# the sender's profile or a share button.
_SOCIAL_CONTENT = re.compile(
    r"^/[^/]+/status(?:es)?/\d|^/watch\b|^/shorts/|^/embed/|^/live/|^/playlist\b|^/pulse/"
    r"|^/posts/|^/feed/update/|^/[^/]+/(?:posts|videos)/|^/p/|^/reels?/|^/@[^/]+/video/"
    r"|^/r/[^/]+/comments/|^/\d{5,}(?:/|$)|^/profile/[^/]+/post/"
)
_SHARE = re.compile(
    r"/sharer|/share(?:article)?\b|/intent/|/pin/create|/submit\b|/send\?|/dialog/(?:share|feed)"
    r"|/sharing/|/addthis|/shareArticle",
    re.IGNORECASE,
)
_SHARE_HOSTS = frozenset({"addthis.com", "sharethis.com", "addtoany.com"})


def _is_social(url: str, *, share_only: bool) -> bool:
    """Whether ``url`` is a share button, or (unless ``share_only``) a social profile."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    bare = host[4:] if host.startswith("www.") else host
    bare = bare[2:] if bare.startswith("m.") else bare
    if _on(bare, _SHARE_HOSTS):
        return True
    if not _on(bare, _SOCIAL_HOSTS):
        return False
    if _SHARE.search(parts.path):
        return True
    return not share_only and not _SOCIAL_CONTENT.search(parts.path)


def _on(host: str, domains: frozenset[str]) -> bool:
    if host in domains:
        return True
    dot = host.find(".")
    while dot != -1:
        if host[dot + 1 :] in domains:
            return True
        dot = host.find(".", dot + 1)
    return False


# --- extraction ----------------------------------------------------------------------------

_BLOCKED_SCHEMES = ("mailto:", "tel:", "javascript:", "sms:", "callto:", "vbscript:", "data:")
_PIXEL_PATH = re.compile(
    r"/(?:track|trk|t)/open|/open(?:\.php|\.aspx|\.gif|\.png)?(?:[/?]|$)|/wf/open|/e/o/"
    r"|/(?:pixel|beacon|tracking|track)(?:\.gif|\.png|\.php)?(?:[/?]|$)|/o\.gif|/t\.gif"
    r"|/imp(?:ression)?(?:\.gif|\.php)?(?:[/?]|$)|/open-tracking|/mo/",
    re.IGNORECASE,
)
_SIZE = re.compile(r"(?:^|;)\s*(width|height)\s*:\s*([0-9.]+)\s*px", re.IGNORECASE)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"""(?:https?://|www\.)[^\s<>"'`{}|\\^\[\]]+""", re.IGNORECASE)
_IMAGE_FILE = re.compile(r"\.(?:gif|jpe?g|png|webp|bmp|svg)$", re.IGNORECASE)
_TRAILING = ".,;:!?'\")]>*"
_HTTP = re.compile(r"^https?://[^/\s]", re.IGNORECASE)


class _Collector:
    """The state of one extraction: what was kept, rejected, and seen."""

    def __init__(self, list_unsubscribe: str | None) -> None:
        self.header_urls = list_unsubscribe_urls(list_unsubscribe)
        self.header_keys = {_comparable(url) for url in self.header_urls}
        self.canonical: str | None = None
        self.links: list[Link] = []
        self.rejected: list[Rejected] = []
        self.seen: set[str] = set()
        self.rejected_seen: set[tuple[str, str]] = set()

    def reject(self, url: str, reason: str) -> None:
        if (url, reason) not in self.rejected_seen:
            self.rejected_seen.add((url, reason))
            self.rejected.append(Rejected(url, reason))

    def offer(self, url: str, text: str, context: str = "", image_only: bool = False) -> None:
        """Judge one link as found, with its anchor text and the text around it."""
        url = "".join(url.split())  # hrefs wrapped over lines by the sender's mailer
        if url[:11].lower().startswith(_BLOCKED_SCHEMES):
            self.reject(url, "mailto/tel/javascript")
            return
        judged = _judge(url)
        if judged is None:
            self.reject(url, "invalid URL")
            return
        target, reason, social, key = judged
        if self.header_keys and (
            _comparable(url) in self.header_keys or _comparable(target) in self.header_keys
        ):
            self.reject(url, "list header")
            return
        generic = _GENERIC_TEXT.match(text.lower()) is not None
        reason = reason or _text_reason(text) or (_text_reason(context) if generic else None)
        if reason is not None:
            self.reject(url, reason)
            return
        if _looks_like_view(text) or (generic and _looks_like_view(context)):
            if self.canonical is None:
                self.canonical = key
            self.reject(url, "view in browser")
            return
        if social:
            self.reject(url, "social")
        elif image_only:
            self.reject(url, "image-only")
        elif key in self.seen:
            self.reject(url, "duplicate")
        else:
            self.seen.add(key)
            self.links.append(Link(url=url, text=text, unwrapped=target))

    def finish(self) -> Extracted:
        # Every List-Unsubscribe URL is listed, so the job can show it was never requested.
        for url in self.header_urls:
            self.reject(url, "list header")
        return Extracted(canonical_url=self.canonical, links=self.links, rejected=self.rejected)


_Judgement = tuple[str, str | None, bool, str]


def _judge(url: str) -> _Judgement | None:
    """What ``url`` alone says: (unwrapped target, never-request reason, social, dedup key),
    or None if it is no http(s) URL. Cached: a sender repeats its links in every issue."""
    # Long URLs bypass the cache, so its memory stays bounded (8,192 x 1 KiB at most).
    return _judge_cached(url) if len(url) <= 1024 else _judge_url(url)


@lru_cache(maxsize=8192)
def _judge_cached(url: str) -> _Judgement | None:
    return _judge_url(url)


def _judge_url(url: str) -> _Judgement | None:
    if len(url) > MAX_URL_CHARS or not _valid_http(url):
        return None
    target = unwrap(url)
    reason = _url_reason(url) or (_url_reason(target) if target != url else None)
    # A share button wraps the article itself: judged before unwrapping as well.
    social = _is_social(url, share_only=True) or _is_social(target, share_only=False)
    return target, reason, social, clean_url(target)


def _valid_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https"):
        return False
    host = parts.hostname or ""
    return "." in host.strip(".") or host == "localhost" or host.startswith("[")


def extract_links(
    html: str | None,
    text: str | None,
    *,
    list_unsubscribe: str | None = None,
    base_url: str | None = None,
) -> Extracted:
    """The links of a newsletter: from its HTML (anchors and images) when it has links
    there, else from its text part; never-request links, social, pixels and duplicates
    rejected with a reason, the "view in browser" link kept apart as ``canonical_url``."""
    collector = _Collector(list_unsubscribe)
    if html and html.strip():
        html_text = _from_html(html[:HTML_CAP], collector, base_url)
        if html_text is not None:  # no anchors: the URLs are in the words, if anywhere
            _from_text((text if text and text.strip() else html_text)[:TEXT_CAP], collector)
        elif collector.canonical is None and text:
            # Some senders name the web version only in the text alternative.
            _canonical_from_text(text, collector)
    elif text:
        _from_text(text[:TEXT_CAP], collector)
    return collector.finish()


def _from_html(markup: str, collector: _Collector, base_url: str | None) -> str | None:
    """Offer every anchor and reject every beacon of ``markup``; None if it had anchors,
    else its visible text (for the URLs written out in it)."""
    try:
        tree = LexborHTMLParser(markup)
        nodes = tree.css("base[href], a[href], area[href], img[src]")
    except Exception:  # a parser failure on hostile markup: fall back to the text part
        return ""
    base = base_url
    anchors = 0
    inside: set[int] = set()  # images already judged with their anchor
    for node in nodes[:MAX_ANCHORS]:
        tag = node.tag
        if tag == "base":
            base = base or (node.attributes.get("href") or "").strip() or None
        elif tag == "img":
            src = (node.attributes.get("src") or "").strip()
            if node.mem_id not in inside and src and _is_pixel(node, src):
                absolute = _absolute(src, base)
                if absolute is not None:
                    collector.reject(absolute, "tracking pixel")
        else:
            href = "".join((node.attributes.get("href") or "").split())
            if not href or href.startswith("#"):
                continue  # a jump within the message, not a link
            anchors += 1
            _offer_anchor(node, href, base, collector, inside)
            if len(collector.links) >= MAX_LINKS:
                break
    return None if anchors else _visible_text(tree)


def _visible_text(tree: LexborHTMLParser) -> str:
    tree.strip_tags(["script", "style", "head", "template", "noscript"])
    body = tree.body
    return body.text(deep=True, separator="\n") if body is not None else ""


def _offer_anchor(
    node: LexborNode, href: str, base: str | None, collector: _Collector, inside: set[int]
) -> None:
    images = node.css("img") if node.tag == "a" else []
    inside.update(image.mem_id for image in images)
    text = _collapse(node.text(deep=True, separator=" "))
    image_only = False
    if not text and images:
        srcs = [(image.attributes.get("src") or "").strip() for image in images]
        if all(_is_pixel(image, src) for image, src in zip(images, srcs, strict=True)):
            collector.reject(_absolute(href, base) or href, "tracking pixel")
            return
        # An image with alt text is a named link (a "Read more" button); without, a picture.
        text = " ".join(alt for image in images if (alt := _alt(image)))
        image_only = not text
    if node.tag == "area" and not text:
        text = _alt(node)
    absolute = _absolute(href, base)
    if absolute is None:
        blocked = href[:11].lower().startswith(_BLOCKED_SCHEMES)
        collector.reject(href, "mailto/tel/javascript" if blocked else "invalid URL")
        return
    context = _context(node) if _GENERIC_TEXT.match(text.lower()) else ""
    collector.offer(absolute, text, context, image_only=image_only)


def _alt(node: LexborNode) -> str:
    return _collapse(node.attributes.get("alt") or "")


def _context(node: LexborNode) -> str:
    """The text of the block around a vaguely named anchor ("click here")."""
    parent = node.parent
    for _ in range(2):
        if parent is None:
            return ""
        context = _collapse(parent.text(deep=True, separator=" "))
        if len(context) > len(_collapse(node.text(deep=True, separator=" "))) + 3:
            return context[:300]
        parent = parent.parent
    return ""


def _is_pixel(node: LexborNode, src: str) -> bool:
    attributes = node.attributes
    sizes: dict[str, float] = {}
    for name in ("width", "height"):
        value = (attributes.get(name) or "").strip().removesuffix("px")
        with contextlib.suppress(ValueError):
            sizes[name] = float(value)
    style = attributes.get("style") or ""
    for name, value in _SIZE.findall(style):
        with contextlib.suppress(ValueError):
            sizes[name.lower()] = float(value)
    if sizes and all(size <= 3 for size in sizes.values()):
        return True
    if style and _HIDDEN_STYLE.search(style):
        return True
    return bool(_PIXEL_PATH.search(src)) and not (attributes.get("alt") or "").strip()


def _absolute(href: str, base: str | None) -> str | None:
    href = "".join(href.split())
    lowered = href[:11].lower()
    if lowered.startswith(("http://", "https://")):
        return href
    if lowered.startswith(_BLOCKED_SCHEMES):
        return None
    if href.startswith("//"):
        return "https:" + href
    if lowered.startswith("www."):
        return "http://" + href
    if base and "://" not in href.split("?", 1)[0] and ":" not in href.split("/", 1)[0]:
        try:
            joined = urljoin(base, href)
        except ValueError:
            return None
        return joined if _HTTP.match(joined) else None
    return None


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _from_text(text: str, collector: _Collector) -> None:
    """Offer every URL of a plain-text newsletter, named by the text that introduces it:
    on its line before it, else the line above (a headline over its link)."""
    line_start = -1
    cursor = 0  # where the text introducing the next URL on this line starts
    previous = ""
    for match in _URL_IN_TEXT.finditer(text):
        start = match.start()
        this_line = text.rfind("\n", 0, start) + 1
        if this_line != line_start:  # the first URL of its line
            line_start = cursor = this_line
            previous = _line_above(text, line_start)
        before = _collapse(text[cursor:start]).strip(" :-|<>(*\u2013\u2014")
        cursor = match.end()
        url = _trim(match.group(0))
        if url[:4].lower() == "www.":
            url = "http://" + url
        intro = before or previous
        if _looks_like_view(intro) and _view_online(url, intro, collector):
            continue
        # "To unsubscribe, go to:" introduces the URL on its line or the line above.
        reason = _text_reason(intro)
        if reason is not None:
            collector.reject(url, reason)
            continue
        label = before or (previous if len(previous) <= 160 else "")
        # A text part's picture URLs are what its HTML twin showed as images.
        picture = _IMAGE_FILE.search(url.split("?", 1)[0].split("#", 1)[0]) is not None
        collector.offer(url, label, intro, image_only=picture)
        if len(collector.links) >= MAX_LINKS:
            return


def _canonical_from_text(text: str, collector: _Collector) -> None:
    """The "view online" URL of a text part, looked for where senders put it: the start."""
    head = text[:CANONICAL_SCAN]
    for view in _VIEW_IN_BROWSER.finditer(head):
        url = _URL_IN_TEXT.search(head, view.end(), view.end() + 300)
        if url is not None:
            intro = _collapse(head[max(0, view.start() - 80) : url.start()])
            _view_online(_trim(url.group(0)), intro, collector)
            return


def _line_above(text: str, line_start: int) -> str:
    """The nearest line above ``line_start`` with words and no URL, within three lines."""
    end = line_start - 1
    for _ in range(3):
        if end <= 0:
            return ""
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end]
        if len(line.strip("-=*_~#> \t\r")) > 3:
            if _URL_IN_TEXT.search(line):
                return ""
            return _collapse(line).strip(" :-|<>(*\u2013\u2014")
        end = start - 1
    return ""


def _view_online(url: str, context: str, collector: _Collector) -> bool:
    """Take ``url`` as the "view online" link a text part announced, unless it is unsafe."""
    if _text_reason(context) is not None or never_request(url, collector.header_urls):
        return False
    if collector.canonical is None:
        collector.canonical = clean_url(unwrap(url))
    collector.reject(url, "view in browser")
    return True


def _trim(url: str) -> str:
    url = url.rstrip(_TRAILING)
    while url.endswith(")") and url.count(")") > url.count("("):
        url = url[:-1]
    return url
