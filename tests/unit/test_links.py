"""Newsletter links: what is kept as an article candidate, what must never be requested,
offline unwrapping and cleaning; on focused cases and on the real newsletters of the
fixtures (parsed with the project's own MIME code)."""

from __future__ import annotations

import base64
import csv
import json
import time
from functools import cache
from pathlib import Path

import pytest

from inboxd.mail.links import (
    HTML_CAP,
    MAX_LINKS,
    REASONS,
    Extracted,
    clean_url,
    extract_links,
    list_unsubscribe_urls,
    never_request,
    unwrap,
)
from inboxd.mail.message import ParsedMessage
from inboxd.mail.reading import parse_message

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _reasons(extracted: Extracted) -> dict[str, str]:
    return {r.url: r.reason for r in extracted.rejected}


def _urls(extracted: Extracted) -> list[str]:
    return [link.url for link in extracted.links]


# --- never requested ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://news.example.com/unsubscribe?id=1", "unsubscribe"),
        ("https://example.us1.list-manage.com/unsubscribe?u=a&id=b", "unsubscribe"),
        ("https://example.com/u/unsub.php?e=x", "unsubscribe"),
        ("https://example.com/email/opt-out/123", "unsubscribe"),
        ("https://example.com/optout?x=1", "unsubscribe"),
        ("https://example.com/preferences?e=1", "preferences"),
        ("https://example.com/account/manage-subscription", "preferences"),
        ("https://example.com/subscription-center?id=1", "preferences"),
        ("https://example.us1.list-manage.com/profile?u=a&id=b", "preferences"),
        ("https://example.com/confirm?token=abc", "confirm"),
        ("https://example.com/subscribe/confirm/abc", "confirm"),
        ("https://example.com/verify-email?t=1", "confirm"),
        ("https://example.com/newsletter/confirmation/xyz", "confirm"),
        # The target of a redirect is judged too, encoded as trackers encode it.
        (
            "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fexample.com"
            "%2Funsubscribe%3Fu%3D1&data=x",
            "unsubscribe",
        ),
        ("https://click.example.net/c?u=https%253A%252F%252Fx.com%252Fopt-out", "unsubscribe"),
    ],
)
def test_never_request_by_url(url: str, reason: str) -> None:
    assert never_request(url, []) == reason


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/news/2024/senate-confirms-nominee",
        "https://example.com/articles/subscription-economy",
        "https://example.com/blog/how-we-built-it",
        "https://example.com/watch?v=abc",
    ],
)
def test_articles_are_not_mistaken_for_actions(url: str) -> None:
    assert never_request(url, []) is None


def test_list_unsubscribe_urls_are_never_requested_in_any_spelling() -> None:
    header = "<mailto:leave@lists.example.com?subject=unsub>, <HTTPS://Lists.Example.com/l/abc>"
    assert list_unsubscribe_urls(header) == [
        "mailto:leave@lists.example.com?subject=unsub",
        "HTTPS://Lists.Example.com/l/abc",
    ]
    urls = list_unsubscribe_urls(header)
    assert never_request("https://lists.example.com/l/abc?utm_source=x", urls) == "list header"
    assert never_request("https://lists.example.com:443/l/abc#top", urls) == "list header"
    assert never_request("https://lists.example.com/l/other", urls) is None
    html = '<a href="https://lists.example.com/l/abc">Leave this list</a>'
    extracted = extract_links(html, None, list_unsubscribe=header)
    assert extracted.links == []
    # The header's own URLs are listed as well: the job shows they were never requested.
    assert _reasons(extracted) == {
        "https://lists.example.com/l/abc": "list header",
        "mailto:leave@lists.example.com?subject=unsub": "list header",
        "HTTPS://Lists.Example.com/l/abc": "list header",
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Unsubscribe", "unsubscribe"),
        ("unsubscribe from this list", "unsubscribe"),
        ("Opt out", "unsubscribe"),
        ("Update your preferences", "preferences"),
        ("Manage your subscription", "preferences"),
        ("Email settings", "preferences"),
        ("Confirm your subscription", "confirm"),
        ("Yes, confirm my email", "confirm"),
    ],
)
def test_never_request_by_anchor_text(text: str, reason: str) -> None:
    # An opaque click-tracker URL: only the anchor text says what it does.
    html = f'<p><a href="https://click.example.net/c/Zx81kQ">{text}</a></p>'
    extracted = extract_links(html, None)
    assert extracted.links == []
    assert _reasons(extracted) == {"https://click.example.net/c/Zx81kQ": reason}


def test_vague_anchor_judged_by_its_sentence() -> None:
    html = (
        "<p>To stop receiving these emails, <a href='https://t.example.net/x1'>click here</a>.</p>"
        "<p>Read the story: <a href='https://t.example.net/x2'>click here</a></p>"
    )
    extracted = extract_links(html, None)
    assert _reasons(extracted) == {"https://t.example.net/x1": "unsubscribe"}
    assert _urls(extracted) == ["https://t.example.net/x2"]


# --- the canonical link ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "html",
    [
        '<a href="{u}">View in browser</a>',
        '<a href="{u}">View this email in your browser</a>',
        '<a href="{u}">View online</a>',
        '<a href="{u}">Read online</a>',
        '<a href="{u}">Web version</a>',
        '<a href="{u}">View this email as HTML</a>',
        "<p>Having trouble viewing this email? <a href='{u}'>Click here</a></p>",
        "<p>If this message is not displaying properly, <a href='{u}'>click here</a>.</p>",
    ],
)
def test_view_in_browser_is_the_canonical_link(html: str) -> None:
    url = "https://news.example.com/issues/42?utm_source=newsletter&utm_medium=email"
    extracted = extract_links(html.format(u=url) + '<a href="https://x.org/a">A</a>', None)
    assert extracted.canonical_url == "https://news.example.com/issues/42"
    assert _reasons(extracted) == {url: "view in browser"}
    assert _urls(extracted) == ["https://x.org/a"]


def test_canonical_link_is_unwrapped() -> None:
    wrapped = "https://www.google.com/url?q=https://news.example.com/web/7&sa=D"
    extracted = extract_links(f'<a href="{wrapped}">View it online</a>', None)
    assert extracted.canonical_url == "https://news.example.com/web/7"


def test_view_online_in_a_text_part() -> None:
    text = (
        "Weekly digest\n\nCan't read this email? View it online at:\n"
        "https://news.example.com/w/12?mc_cid=abc\n\n"
        "Big story\nhttps://example.org/story-1\n"
        "To unsubscribe go to https://news.example.com/leave?id=9\n"
    )
    extracted = extract_links(None, text)
    assert extracted.canonical_url == "https://news.example.com/w/12"
    assert [(link.url, link.text) for link in extracted.links] == [
        ("https://example.org/story-1", "Big story")
    ]
    assert _reasons(extracted)["https://news.example.com/leave?id=9"] == "unsubscribe"


def test_view_online_named_only_in_the_text_alternative() -> None:
    html = '<a href="https://x.org/a">A</a>'
    text = "You may view this message online by following this link:\n\nhttps://w.x.org/7/\n"
    extracted = extract_links(html, text)
    assert extracted.canonical_url == "https://w.x.org/7/"
    assert _urls(extracted) == ["https://x.org/a"]


def test_no_canonical_link_when_there_is_none() -> None:
    assert extract_links('<a href="https://x.org/a">Story</a>', None).canonical_url is None
    title = (
        "Astronomers explain at length, in a story we liked, why you can view the comet "
        "online in your browser tonight and what else to look for in the sky this week"
    )
    headline = extract_links(f'<a href="https://x.org/comet">{title}</a>', None)
    assert headline.canonical_url is None
    assert _urls(headline) == ["https://x.org/comet"]


# --- social, pixels, images, schemes ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://www.facebook.com/ExampleNews",
        "https://facebook.com/sharer/sharer.php?u=https%3A%2F%2Fx.org",
        "https://twitter.com/examplenews",
        "https://twitter.com/intent/tweet?text=hi",
        "https://x.com/examplenews",
        "https://www.linkedin.com/company/example",
        "https://www.linkedin.com/shareArticle?mini=true&url=https://x.org",
        "https://www.instagram.com/examplenews/",
        "https://www.youtube.com/channel/UC123",
        "https://www.youtube.com/@examplenews",
        "https://www.youtube.com/user/examplenews",
        "https://pinterest.com/pin/create/button/?url=x",
        "https://www.tiktok.com/@examplenews",
    ],
)
def test_social_profiles_and_share_buttons(url: str) -> None:
    extracted = extract_links(f'<a href="{url}">Follow us</a>', None)
    assert extracted.links == []
    assert _reasons(extracted) == {url: "social"}


@pytest.mark.parametrize(
    "url",
    [
        "https://twitter.com/someone/status/1234567890",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://youtu.be/dQw4w9WgXcQ",
        "https://www.linkedin.com/pulse/some-article-someone",
    ],
)
def test_posts_and_videos_on_social_sites_are_content(url: str) -> None:
    assert _urls(extract_links(f'<a href="{url}">Watch</a>', None)) == [url]


@pytest.mark.parametrize(
    "img",
    [
        '<img src="https://t.example.net/o/abc.gif" width="1" height="1">',
        '<img src="https://t.example.net/o/abc.gif" width="1px" height="1px" alt="">',
        '<img src="https://t.example.net/o/abc.gif" style="width:1px;height:1px;border:0">',
        '<img src="https://t.example.net/o/abc.gif" style="display:none">',
        '<img src="https://example.list-manage.com/track/open.php?u=a&id=b&e=c">',
        '<img src="https://u123.ct.sendgrid.net/wf/open?upn=xyz">',
    ],
)
def test_tracking_pixels(img: str) -> None:
    extracted = extract_links(f"<p>Hello<a href='https://x.org/a'>A</a></p>{img}", None)
    src = img.split('src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert _reasons(extracted) == {src: "tracking pixel"}
    assert _urls(extracted) == ["https://x.org/a"]


def test_real_images_are_not_pixels() -> None:
    html = '<img src="https://cdn.example.com/hero.jpg" width="600" height="300">'
    assert extract_links(html, None).rejected == []


def test_anchor_around_a_pixel_is_a_pixel() -> None:
    pixel = '<img src="https://t.example.net/p.gif" width=1 height=1>'
    html = f'<a href="https://t.example.net/c/1">{pixel}</a>'
    assert _reasons(extract_links(html, None)) == {"https://t.example.net/c/1": "tracking pixel"}


def test_image_only_links() -> None:
    html = (
        '<a href="https://x.org/banner"><img src="https://cdn.x.org/b.png"></a>'
        '<a href="https://x.org/read"><img src="https://cdn.x.org/r.png" alt="Read more"></a>'
    )
    extracted = extract_links(html, None)
    assert _reasons(extracted) == {"https://x.org/banner": "image-only"}
    assert [(link.url, link.text) for link in extracted.links] == [
        ("https://x.org/read", "Read more")
    ]


@pytest.mark.parametrize(
    "href", ["mailto:editor@example.com", "tel:+441234567", "javascript:void(0)", "JavaScript:x()"]
)
def test_mailto_tel_javascript(href: str) -> None:
    extracted = extract_links(f'<a href="{href}">Contact</a>', None)
    assert _reasons(extracted) == {href: "mailto/tel/javascript"}


def test_relative_links_need_a_base() -> None:
    html = '<a href="/story/1">One</a><a href="#top">Top</a>'
    assert _reasons(extract_links(html, None)) == {"/story/1": "invalid URL"}
    based = extract_links(html, None, base_url="https://news.example.com/issue/3")
    assert _urls(based) == ["https://news.example.com/story/1"]
    tagged = extract_links('<base href="https://b.example.com/">' + html, None)
    assert _urls(tagged) == ["https://b.example.com/story/1"]


@pytest.mark.parametrize("href", ["http://", "https://exa mple", "https://example.com:99999/x"])
def test_invalid_urls(href: str) -> None:
    assert _reasons(extract_links(f'<a href="{href}">x</a>', None)) == {
        "".join(href.split()): "invalid URL"
    }


# --- duplicates, entities, text -------------------------------------------------------------


def test_duplicates_merged_by_cleaned_unwrapped_url() -> None:
    html = (
        '<a href="https://x.org/a?utm_source=nl&amp;id=1">First <b>story</b></a>'
        '<a href="https://www.google.com/url?q=https%3A%2F%2Fx.org%2Fa%3Fid%3D1">again</a>'
        '<a href="HTTPS://X.ORG:443/a?id=1&fbclid=zz#more">and again</a>'
        '<a href="https://x.org/b">Second</a>'
    )
    extracted = extract_links(html, None)
    assert [(link.url, link.text) for link in extracted.links] == [
        ("https://x.org/a?utm_source=nl&id=1", "First story"),
        ("https://x.org/b", "Second"),
    ]
    assert [r.reason for r in extracted.rejected] == ["duplicate", "duplicate"]


def test_link_fields() -> None:
    wrapped = "https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Fx.org%2Fp&data=1"
    html = f'<a href="{wrapped}">  A\n  long\ttitle </a>'
    (link,) = extract_links(html, None).links
    assert link.url == wrapped
    assert link.text == "A long title"
    assert link.unwrapped == "https://x.org/p"


def test_picture_urls_in_a_text_part_are_images() -> None:
    text = "News <https://cdn.x.org/head.GIF> Story <https://x.org/s?img=a.png>"
    extracted = extract_links(None, text)
    assert _reasons(extracted) == {"https://cdn.x.org/head.GIF": "image-only"}
    assert _urls(extracted) == ["https://x.org/s?img=a.png"]


def test_text_part_used_when_the_html_has_no_links() -> None:
    extracted = extract_links("<p>No links here</p>", "Story\nhttps://x.org/s.\n")
    assert [(link.url, link.text) for link in extracted.links] == [("https://x.org/s", "Story")]
    # The HTML wins when it has links: the text part repeats them.
    both = extract_links('<a href="https://x.org/h">H</a>', "https://x.org/t")
    assert _urls(both) == ["https://x.org/h"]


def test_every_reason_is_a_known_one() -> None:
    html = (
        '<a href="mailto:a@b.c">m</a><a href="https://x.org/unsubscribe">u</a>'
        '<a href="https://facebook.com/x">f</a><a href="/rel">r</a>'
    )
    extracted = extract_links(html, None, list_unsubscribe="<https://l.example>")
    assert [r.reason for r in extracted.rejected] == [
        "mailto/tel/javascript",
        "unsubscribe",
        "social",
        "invalid URL",
        "list header",
    ]
    assert {r.reason for r in extracted.rejected} <= set(REASONS)


# --- robustness -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "html",
    [
        "",
        "<",
        "<a href=",
        '<a href="https://x.org/a"',
        "<table><tr><td><a href='https://x.org/a'>A<td><a href='https://x.org/b'>B</table></a>",
        "<a href='https://x.org/\x00a'>nul</a>",
        "<html><body>" + "<div>" * 5000 + "<a href='https://x.org/deep'>deep</a>",
        "\ufeff<a href='https://x.org/\u00e9t\u00e9'>\u00e9t\u00e9</a>",
    ],
)
def test_malformed_html_never_raises(html: str) -> None:
    extracted = extract_links(html, None)
    for link in extracted.links:
        assert link.url.startswith("https://x.org/")


def test_nothing_at_all() -> None:
    assert extract_links(None, None) == Extracted(canonical_url=None, links=[], rejected=[])


def test_huge_html_is_capped() -> None:
    anchor = '<a href="https://x.org/{n}">Story {n}</a>\n'
    html = "".join(anchor.format(n=n) for n in range(20_000))
    assert len(html) < HTML_CAP  # every anchor is within the parsed part
    started = time.perf_counter()
    extracted = extract_links(html, None)
    assert len(extracted.links) == MAX_LINKS
    assert time.perf_counter() - started < 10
    beyond = "<p>" + "x" * HTML_CAP + '</p><a href="https://x.org/late">late</a>'
    assert extract_links(beyond, None).links == []


# --- unwrap and clean_url -------------------------------------------------------------------

_SUBSTACK = _b64(json.dumps({"e": "https://x.org/substack", "p": 1, "s": 2}).encode())
_MANDRILL = _b64(json.dumps({"p": json.dumps({"u": 1, "url": "https://x.org/mandrill"})}).encode())


@pytest.mark.parametrize(
    ("wrapped", "target"),
    [
        (
            "https://nam02.safelinks.protection.outlook.com/?url=https%3A%2F%2Fx.org%2Fa%3Fb%3D1"
            "&data=05%7C01&sdata=x&reserved=0",
            "https://x.org/a?b=1",
        ),
        ("https://www.google.com/url?q=https://x.org/g&sa=D&ust=1", "https://x.org/g"),
        ("https://www.google.co.uk/url?url=https%3A%2F%2Fx.org%2Fg2", "https://x.org/g2"),
        ("https://www.youtube.com/redirect?event=x&q=https%3A%2F%2Fx.org%2Fy", "https://x.org/y"),
        ("https://l.facebook.com/l.php?u=https%3A%2F%2Fx.org%2Ff&h=AT0", "https://x.org/f"),
        (
            "https://urldefense.proofpoint.com/v2/url?u=https-3A__x.org_p_q-3Fa-3D1&d=D",
            "https://x.org/p/q?a=1",
        ),
        ("https://urldefense.com/v3/__https://x.org/v3?a=1__;!!AbC$", "https://x.org/v3?a=1"),
        (
            "https://abc.r.us-east-1.awstrack.me/L0/https:%2F%2Fx.org%2Fses%3Fk=1/1/0100-a/b=",
            "https://x.org/ses?k=1",
        ),
        (f"https://substack.com/redirect/2/{_SUBSTACK}", "https://x.org/substack"),
        (f"https://mandrillapp.com/track/click/3/x.org?p={_MANDRILL}", "https://x.org/mandrill"),
        (f"https://trk.example.net/r?target={_b64(b'https://x.org/b64')}", "https://x.org/b64"),
        ("https://trk.example.net/r?redirect=https%3A%2F%2Fx.org%2Fr", "https://x.org/r"),
        ("https://trk.example.net/r?link=https://x.org/l", "https://x.org/l"),
        ("https://t.example.net/click.php?id=1&D=http%3A%2F%2Fx.org%2Fd", "http://x.org/d"),
        # ConvertKit-style: the target base64-encoded as a path segment.
        (f"https://click.ck.example/abc/{_b64(b'https://x.org/ck')}", "https://x.org/ck"),
        (
            "https://www.linkedin.com/redir/redirect?url=https%3A%2F%2Fx.org%2Fli",
            "https://x.org/li",
        ),
        ("https://slack-redir.net/link?url=https%3A%2F%2Fx.org%2Fsl", "https://x.org/sl"),
        (
            "https://trk.example.net/c?j="
            + ".".join([_b64(b'{"alg":"HS256"}'), _b64(b'{"url":"https://x.org/jwt"}'), "c2ln"]),
            "https://x.org/jwt",
        ),
        # Nested: a safe link around a Google redirect.
        (
            "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fwww.google.com"
            "%2Furl%3Fq%3Dhttps%253A%252F%252Fx.org%252Fn",
            "https://x.org/n",
        ),
    ],
)
def test_unwrap(wrapped: str, target: str) -> None:
    assert unwrap(wrapped) == target


@pytest.mark.parametrize(
    "url",
    [
        "https://x.org/search?q=cats",
        "https://example.us1.list-manage.com/track/click?u=abc123&id=def&e=ghi",
        "https://x.org/login?next=/account",
        "https://urldefense.com/v3/__https://x.org/a*b__;Kw!!x$",
        "https://x.org/r?url=not-a-url",
        "https://x.org/r?u=aHR0cA",
        "https://web.archive.org/web/2020/https://x.org/gone",
        "https://x.org/article?ref=https%3A%2F%2Fnews.example.com%2F",
    ],
)
def test_nothing_to_unwrap(url: str) -> None:
    assert unwrap(url) == url


@pytest.mark.parametrize(
    ("url", "cleaned"),
    [
        (
            "https://x.org/a?utm_source=nl&utm_medium=email&utm_campaign=c&id=3",
            "https://x.org/a?id=3",
        ),
        ("https://x.org/a?fbclid=1&gclid=2&dclid=3&yclid=4&igshid=5", "https://x.org/a"),
        ("https://x.org/a?mc_cid=1&mc_eid=2&p=1", "https://x.org/a?p=1"),
        ("https://x.org/a?_hsenc=1&_hsmi=2&mkt_tok=3&ref_src=twsrc", "https://x.org/a"),
        ("https://x.org/a?UTM_Source=x&Keep=Case", "https://x.org/a?Keep=Case"),
        ("HTTPS://X.Org:443/Path/?b=2&a=1#section", "https://x.org/Path/?b=2&a=1"),
        ("http://x.org:80", "http://x.org/"),
        ("http://x.org:8080/p", "http://x.org:8080/p"),
        ("https://x.org/a?q=a%20b&utm_term=z", "https://x.org/a?q=a%20b"),
        ("https://x.org/a?", "https://x.org/a"),
    ],
)
def test_clean_url(url: str, cleaned: str) -> None:
    assert clean_url(url) == cleaned
    assert clean_url(cleaned) == cleaned


# --- real newsletters -----------------------------------------------------------------------


@cache
def _labelled() -> tuple[tuple[str, str, ParsedMessage], ...]:
    path = FIXTURES / "triage" / "labels.tsv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return tuple(
        (row["file"], row["category"], parse_message((FIXTURES / row["file"]).read_bytes()))
        for row in rows
    )


def _newsletters() -> list[tuple[str, ParsedMessage]]:
    return [(file, message) for file, category, message in _labelled() if category == "newsletter"]


def _extract(message: ParsedMessage) -> Extracted:
    return extract_links(
        message.html_body, message.text_body, list_unsubscribe=message.list_unsubscribe
    )


def _one(name: str) -> tuple[ParsedMessage, Extracted]:
    (message,) = [m for file, m in _newsletters() if file.endswith(name)]
    return message, _extract(message)


def test_real_newsletters_never_keep_an_unsafe_link() -> None:
    newsletters = _newsletters()
    assert len(newsletters) >= 80
    assert _check_invariants(newsletters) > 2000


def test_all_labelled_mail_never_keeps_an_unsafe_link() -> None:
    # Promotions, receipts, spam-like ham: other shapes of HTML, the same guarantees.
    everything = [(file, message) for file, _category, message in _labelled()]
    assert len(everything) >= 600
    assert _check_invariants(everything) > 3500


def _check_invariants(mails: list[tuple[str, ParsedMessage]]) -> int:
    kept = 0
    for file, message in mails:
        extracted = _extract(message)
        header = list_unsubscribe_urls(message.list_unsubscribe)
        keys = [clean_url(link.unwrapped) for link in extracted.links]
        assert len(keys) == len(set(keys)), file
        for link in extracted.links:
            assert link.url.lower().startswith(("http://", "https://")), (file, link)
            assert never_request(link.url, header) is None, (file, link)
            assert "unsub" not in link.unwrapped.lower(), (file, link)
            assert link.text == " ".join(link.text.split())
        reasons = _reasons(extracted)
        for url in header:
            assert reasons.get(url) == "list header", (file, url)
        assert all(r.reason in REASONS for r in extracted.rejected)
        kept += len(extracted.links)
    return kept


def test_real_html_newsletter_with_a_view_in_browser_link() -> None:
    # Lindows: "If this message is not displaying properly, click here to launch it in
    # your browser."
    _message, extracted = _one("00008.b42457819236bee543bebffb61b91e44")
    assert extracted.canonical_url == "http://lindows.com/mm"
    assert "http://lindows.com/mm" not in _urls(extracted)
    assert ("http://www.lindows.com/walmart", "Walmart.com") in [
        (link.url, link.text) for link in extracted.links
    ]


def test_real_mail_with_the_web_version_in_its_text_part() -> None:
    path = FIXTURES / "triage/spamassassin-public/hard_ham/00234.12555461ce0bc373baab8daf9280d4ca"
    message = parse_message(path.read_bytes())
    assert message.html_body is not None
    extracted = _extract(message)
    assert extracted.canonical_url == "http://www.twelvehorses.com/S/FQXLU/DW3YV/FQV1Z/9141ZD2V/M/"


def test_real_cnet_newsletter() -> None:
    # CNET's links all go through an opaque click tracker: its unsubscribe link is known
    # by its anchor text only.
    message, extracted = _one("00011.acdfa5be40e7b6c3ad3df28c63670c7c")
    assert message.html_body is not None
    reasons = _reasons(extracted)
    assert reasons["http://clickthru.online.com/Click?q=ec-MHlXray63gwtHPxvVqBAYENOGKW9jRRR"] == (
        "unsubscribe"
    )
    assert "tracking pixel" in reasons.values()
    assert "mailto/tel/javascript" in reasons.values()
    assert len(extracted.links) >= 40
    assert all(link.text for link in extracted.links)


def test_real_apple_newsletter() -> None:
    _message, extracted = _one("00160.0f0cc01d1f3ec5eff12ca6ee90ea9841")
    reasons = _reasons(extracted)
    assert reasons["http://www.apple.com/enews/unsubscribe/"] == "unsubscribe"
    assert reasons["http://www.apple.com/enews/change/"] == "preferences"
    assert list(reasons.values()).count("image-only") >= 5


def test_real_text_newsletter() -> None:
    # The Register's daily headlines: text only, each URL under its headline.
    message, extracted = _one("00014.a1f7ca2723b9e4060e7c73b6e1fed642")
    assert message.html_body is None
    titled = {link.url: link.text for link in extracted.links}
    assert titled["http://www.theregister.co.uk/content/6/26098.html"] == (
        "Net 'misuse' sackings on the rise"
    )
    assert _reasons(extracted)["http://list.theregister.co.uk/cgi-bin/unsub.cgi"] == ("unsubscribe")


def test_real_mailman_list_header() -> None:
    message, extracted = _one("mailman_message.txt")
    assert message.list_unsubscribe
    reasons = _reasons(extracted)
    assert reasons["http://www.winehq.com/mailman/listinfo/wine-announce"] == "list header"
    assert reasons["mailto:wine-announce-request@winehq.com?subject=unsubscribe"] == ("list header")


def test_urls_written_out_in_html_without_anchors() -> None:
    html = "<html><head><style>a{}</style></head><body><p>Story</p><p>https://x.org/s</p></body>"
    assert [(link.url, link.text) for link in extract_links(html, None).links] == [
        ("https://x.org/s", "Story")
    ]


def test_scheme_hidden_by_whitespace_is_still_javascript() -> None:
    html = '<a href="java&#x09;script:alert(1)">x</a><a href=" https://x.org/\na ">y</a>'
    extracted = extract_links(html, None)
    assert _reasons(extracted) == {"javascript:alert(1)": "mailto/tel/javascript"}
    assert _urls(extracted) == ["https://x.org/a"]
