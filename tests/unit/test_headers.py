"""decode_header_value: unfolding, 8-bit bytes and RFC 2047 encoded words."""

from __future__ import annotations

from inboxd.mail.headers import decode_header_value


def test_encoded_word_oddities() -> None:
    assert decode_header_value("=?UTF-8?Q?a_b?= =?UTF-8?Q?c?=") == "a bc"
    assert decode_header_value("x =?utf-8?b?w6k=?= y") == "x é y"
    # A multibyte character split across two words is joined before decoding.
    assert decode_header_value("=?utf-8?b?ww==?= =?utf-8?b?qQ==?=") == "é"
    assert decode_header_value("=?x-unknown-cs?q?caf=E9?=") == "café"
    assert decode_header_value("=?utf-8*en?q?hi?=") == "hi"
    assert decode_header_value("=?utf-8?b?!!!?=") == ""
    assert decode_header_value("plain\r\n folded") == "plain folded"
