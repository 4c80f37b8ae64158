"""Bytes to text without raising: declared charsets (mislabelled ones read as what browsers
use), a guess when none is declared, lenient base64, and no characters a database rejects."""

from __future__ import annotations

import binascii
import re

__all__ = ["decode_base64", "decode_charset", "fix_8bit", "whole_characters"]

# Declared charsets that Python lacks or that senders routinely mislabel; the targets are
# the supersets browsers use (WHATWG Encoding Standard) so mislabelled text still decodes.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-9": "cp1254",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "x-mac-roman": "mac-roman",
    "utf8": "utf-8",
}
# Labels that mean "no idea": guessing is expected there, so it is not reported.
_UNDECLARED = frozenset({"", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown"})
# Charsets whose pure-ASCII bytes do not mean ASCII text.
_NOT_ASCII_COMPATIBLE = ("utf-16", "utf-32", "utf-7", "iso-2022", "hz", "unicode-1-1-utf-7")
_FALLBACK_CODECS = ("utf-8", "cp1252", "latin-1")
# Charset names whose Python decoders cannot yield lone surrogates (UTF-8 and the single- and
# multi-byte legacy charsets); UTF-7 and the escape codecs can, so their text is scrubbed.
_NO_SURROGATES = (
    "utf-8",
    "utf8",
    "us-ascii",
    "ascii",
    "iso-8859",
    "iso8859",
    "iso_8859",
    "latin",
    "windows-",
    "cp",
    "koi8",
    "gb",
    "big5",
    "euc",
    "shift",
    "sjis",
    "ks_c",
    "tis",
    "mac",
)
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_base64(data: bytes) -> tuple[bytes, bool]:
    """Decode base64 leniently; the flag is False when the input was damaged."""
    try:
        return binascii.a2b_base64(data), True
    except (binascii.Error, ValueError):
        clean = _B64_JUNK.sub(b"", data)
        clean = clean[: len(clean) - len(clean) % 4]
        try:
            return binascii.a2b_base64(clean), False
        except (binascii.Error, ValueError):
            return b"", False


def _decode_fallback(data: bytes) -> tuple[str, str]:
    """Decode bytes of unknown charset: UTF-8 if valid, else Windows-1252, else Latin-1."""
    for codec in _FALLBACK_CODECS:
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"  # unreachable: latin-1 accepts every byte


def _scrub(text: str) -> str:
    """Drop what a database text column rejects: NUL characters and lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")  # fails exactly on lone surrogates, far faster than a regex
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


def decode_charset(data: bytes, charset: str | None, where: str, notes: list[str]) -> str:
    """Decode ``data`` as the declared charset, falling back (and noting it) when that fails."""
    text = _decode_declared(data, charset, where, notes)
    if (charset or "utf-8").lower().startswith(_NO_SURROGATES):
        # These decoders (and every fallback) never produce a lone surrogate.
        return text.replace("\x00", "") if "\x00" in text else text
    return _scrub(text)


def _decode_declared(data: bytes, charset: str | None, where: str, notes: list[str]) -> str:
    name = (charset or "").strip().strip("\"'").lower()
    if data.isascii() and not name.startswith(_NOT_ASCII_COMPATIBLE):
        return data.decode("ascii")
    if name in _UNDECLARED:
        return _decode_fallback(data)[0]
    codec = _CHARSET_ALIASES.get(name, name)
    try:
        return data.decode(codec)
    except LookupError:
        text, used = _decode_fallback(data)
        notes.append(f"undecodable charset {name!r} in {where}, decoded as {used}")
        return text
    except Exception:  # codecs raise UnicodeError, ValueError or TypeError on bad input
        pass
    if codec == "cp1252":  # declared Latin-1 using the few bytes cp1252 leaves undefined
        return data.decode("latin-1")
    notes.append(f"invalid {name} data in {where}, undecodable bytes replaced")
    try:
        return data.decode(codec, "replace")
    except Exception:
        return data.decode("latin-1")


def fix_8bit(value: str, where: str, notes: list[str]) -> str:
    """Recover raw 8-bit header bytes (carried as surrogate escapes) as text."""
    if value.isascii():
        return value
    try:
        data = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # already real text, not escaped bytes
        return _scrub(value)
    text, used = _decode_fallback(data)
    if used != "utf-8":  # raw UTF-8 headers are legitimate (RFC 6532); others are not
        notes.append(f"8-bit header {where} is not UTF-8, decoded as {used}")
    return _scrub(text)


def whole_characters(data: bytes, charset: str | None) -> bytes:
    """``data`` without a UTF-8 sequence cut off at its end (other charsets: unchanged;
    their decoders replace a cut character, which a snippet can live with)."""
    name = (charset or "utf-8").strip().strip("\"'").lower()
    if name not in ("utf-8", "utf8") or not data or data[-1] < 0x80:
        return data
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= need else data[:-back]
        if byte < 0x80:
            break
    return data
