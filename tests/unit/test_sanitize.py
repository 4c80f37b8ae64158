"""The HTML sanitiser: nothing that runs, nothing that loads from elsewhere unless allowed,
and the formatting of real mail kept."""

from __future__ import annotations

import pytest

from inboxd.mail.sanitize import sanitize_html

PIXEL = "data:image/png;base64,iVBORw0KGgo="


@pytest.mark.parametrize(
    ("html", "forbidden"),
    [
        ("<p>a<script>alert(1)</script>b</p>", ["<script", "alert"]),
        ("<SCRIPT SRC=//evil.example/x.js></SCRIPT>", ["script", "evil"]),
        ('<img src="x" onerror="alert(1)">', ["onerror", "alert"]),
        ('<body onload="steal()"><p onmouseover="x()">hi</p>', ["onload", "onmouseover"]),
        ('<a href="javascript:alert(1)">x</a>', ["javascript"]),
        ('<a href="JaVaScRiPt&colon;alert(1)">x</a>', ["alert"]),
        ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', ["data:"]),
        ('<a href="vbscript:msgbox(1)">x</a>', ["vbscript"]),
        ('<iframe src="https://evil.example/"></iframe>', ["iframe", "evil"]),
        ('<object data="x.swf"></object><embed src="x.swf">', ["object", "embed", "swf"]),
        ('<form action="https://evil.example/"><input name="pw"></form>', ["form", "input"]),
        ('<meta http-equiv="refresh" content="0;url=https://evil.example/">', ["refresh"]),
        ('<base href="https://evil.example/"><a href="x">x</a>', ["base", "evil"]),
        ('<link rel="stylesheet" href="https://evil.example/x.css">', ["link", "evil"]),
        ('<svg onload="alert(1)"><circle/></svg>', ["onload", "svg"]),
        ('<math><mtext><img src=x onerror="alert(1)"></mtext></math>', ["onerror"]),
        ("<!--[if IE]><script>alert(1)</script><![endif]-->", ["script"]),
        ('<img src="data:image/svg+xml,<svg onload=alert(1)>">', ["svg"]),
    ],
)
def test_nothing_that_runs_survives(html: str, forbidden: list[str]) -> None:
    cleaned = sanitize_html(html).html.lower()
    for word in forbidden:
        assert word not in cleaned, (html, cleaned)
    assert "<script" not in cleaned


def test_links_open_a_new_window_without_referrer() -> None:
    cleaned = sanitize_html('<a href="https://example.org/a?b=1&amp;c=2">go</a>').html
    assert 'href="https://example.org/a?b=1&amp;c=2"' in cleaned
    assert 'target="_blank"' in cleaned and 'rel="noopener noreferrer"' in cleaned
    mail = sanitize_html('<a href="mailto:someone@example.org">write</a>').html
    assert 'href="mailto:someone@example.org"' in mail
    # A relative link would point into inboxd itself.
    assert "href" not in sanitize_html('<a href="/api/accounts">x</a>').html


def test_remote_images_are_held_back_until_allowed() -> None:
    html = '<p>hi</p><img src="http://tracker.example/p.gif"><img src="https://cdn.example/a.png">'
    blocked = sanitize_html(html)
    assert "tracker.example" not in blocked.html and "cdn.example" not in blocked.html
    assert blocked.remote_content_blocked is True and "<p>hi</p>" in blocked.html
    shown = sanitize_html(html, allow_remote=True)
    assert 'src="http://tracker.example/p.gif"' in shown.html
    assert shown.remote_content_blocked is False
    # Protocol-relative URLs are remote too, and never allowed (they are relative).
    assert "evil" not in sanitize_html('<img src="//evil.example/x.gif">', allow_remote=True).html


def test_nothing_to_hold_back_is_not_reported() -> None:
    clean = sanitize_html(f'<p style="color: red">x</p><img src="{PIXEL}">')
    assert clean.remote_content_blocked is False
    assert f'src="{PIXEL}"' in clean.html and 'style="color: red"' in clean.html


@pytest.mark.parametrize(
    "css",
    [
        "background: url(http://tracker.example/a.png)",
        "background-image: url('https://tracker.example/a.png')",
        'background: URL( "https://tracker.example/a.png" )',
        "background: u\\72l(https://tracker.example/a.png)",
        "background: \\75\\72\\6c(https://tracker.example/a.png)",
        "background-image: image-set('https://tracker.example/a.png' 1x)",
        "list-style: url(//tracker.example/a.png)",
    ],
)
def test_style_urls_are_held_back(css: str) -> None:
    quote = "'" if '"' in css else '"'
    found = sanitize_html(f"<div style={quote}{css}; color: blue{quote}>x</div>")
    assert "tracker.example" not in found.html, found.html
    assert "color: blue" in found.html
    if "//tracker" in css and "http" not in css:
        return  # relative: dropped without offering to load it
    assert found.remote_content_blocked is True


def test_style_elements_lose_their_remote_urls_and_imports() -> None:
    html = (
        "<style>@import url(https://evil.example/x.css); @import 'https://evil.example/y.css';"
        " body { background: url(https://tracker.example/bg.png); color: #333 }"
        " @font-face { src: url(https://fonts.example/f.woff) }</style><p>x</p>"
    )
    found = sanitize_html(html)
    assert "evil.example" not in found.html and "tracker.example" not in found.html
    assert "fonts.example" not in found.html and "@import" not in found.html
    assert "color: #333" in found.html and found.remote_content_blocked is True
    kept = sanitize_html(html, allow_remote=True)
    assert "https://tracker.example/bg.png" in kept.html


def test_a_css_escape_cannot_close_the_style_element() -> None:
    html = '<style>a { content: "\\3c /style>\\3c script>alert(1)\\3c /script>" }</style>'
    found = sanitize_html(html).html
    assert found.count("</style>") == 1 and "<script" not in found


def test_background_attributes_are_resources_too() -> None:
    html = '<table background="https://tracker.example/t.png"><tr><td>x</td></tr></table>'
    found = sanitize_html(html)
    assert "tracker.example" not in found.html and found.remote_content_blocked is True
    assert "background=" in sanitize_html(html, allow_remote=True).html


def test_cid_images_map_to_the_messages_own_parts() -> None:
    html = '<img src="cid:logo@example.org"><img src="cid:unknown@example.org">'
    found = sanitize_html(html, images={"logo@example.org": PIXEL}).html
    assert f'src="{PIXEL}"' in found
    assert 'src="cid:unknown@example.org"' in found  # loads nothing anywhere


def test_mail_formatting_is_kept() -> None:
    html = (
        '<html><head><title>Newsletter</title></head><body bgcolor="#fff">'
        '<table width="600" cellpadding="4" align="center"><tr><td valign="top">'
        '<font color="red" face="Arial">Hello</font> <b>bold</b> <i>it</i> <u>u</u>'
        "<ul><li>one</li></ul><blockquote>quoted</blockquote><hr><br>"
        "<h1>Title</h1><pre>code</pre></td></tr></table></body></html>"
    )
    found = sanitize_html(html).html
    for kept in (
        'width="600"',
        'cellpadding="4"',
        'valign="top"',
        '<font color="red" face="Arial">',
        "<b>bold</b>",
        "<li>one</li>",
        "<blockquote>quoted</blockquote>",
        "<h1>Title</h1>",
    ):
        assert kept in found, kept
    assert "Newsletter" not in found  # the title is no content


def test_huge_and_broken_html_is_handled() -> None:
    broken = "<div><p>unclosed <b>tags <table><tr><td>cell" * 2000
    found = sanitize_html(broken)
    assert "cell" in found.html and "<script" not in found.html
    assert sanitize_html("").html == ""
