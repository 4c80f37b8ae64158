"""Tracking in links, undone offline: redirect wrappers whose target is embedded in the
URL (``unwrap``) and tracking parameters (``clean_url``)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

__all__ = ["MAX_UNWRAP", "UNWRAPPERS", "clean_url", "unwrap"]

MAX_UNWRAP = 5  # nested redirects unwrapped (a safelink around a Google redirect around …)

#: The redirect wrappers ``unwrap`` sees through offline, for the docs and the report.
UNWRAPPERS = (
    "Outlook safe links (*.safelinks.protection.outlook.com/?url=)",
    "Google (google.*/url?q= / url=), YouTube (/redirect?q=), Facebook (l.facebook.com?u=)",
    "Proofpoint URL Defense v2 (?u=) and v3 (/v3/__URL__)",
    "Amazon SES click tracking (awstrack.me/L0/<encoded URL>/...)",
    "Substack (substack.com/redirect/2/<base64 JSON>), Mandrill (?p=<base64 JSON>), "
    "ConvertKit-style base64 path segments, JWT payloads holding a URL",
    "LinkedIn (/redir/redirect?url=), Slack (slack-redir.net/link?url=)",
    "any url=/u=/q=/redirect=/target=/link=/dest=/goto= parameter holding a URL, plain, "
    "percent- or base64-encoded (on click-tracker paths such as /click, /track, /redirect, "
    "/r/: any parameter), and any path segment holding an encoded URL",
)


# --- unwrapping tracking redirects ---------------------------------------------------------

_REDIRECT_PARAMS = (
    "url",
    "u",
    "q",
    "redirect",
    "redirect_url",
    "redirect_uri",
    "redirecturl",
    "target",
    "targeturl",
    "link",
    "dest",
    "destination",
    "goto",
    "to",
    "r",
    "href",
    "out",
    "l",
)
_REDIRECT_PARAM_SET = frozenset(_REDIRECT_PARAMS)
_JSON_URL_KEYS = ("url", "u", "e", "href", "target", "link", "dest", "destination")
_HTTP = re.compile(r"^https?://[^/\s]", re.IGNORECASE)
# What base64 of "http" and of '{"' start with: anything else is not worth decoding.
_B64_PREFIXES = ("aHR0c", "eyJ", "eyAi")
_PROOFPOINT_V3 = re.compile(r"/v3/__(.+?)__;")
_TRACKER_PATH = re.compile(
    r"click|track|redir|/r/|/go[/.]|/out[/.]|/link[/.]|/ls/|/c/|routage|/t/|/cl/", re.IGNORECASE
)
_ARCHIVES = frozenset({"web.archive.org", "archive.org", "archive.ph", "archive.today"})


def unwrap(url: str) -> str:
    """The target of a tracking redirect whose destination is embedded in its URL (Outlook
    safe links, Google, Proofpoint, SES, Substack, Mandrill, url=/u=/redirect=/target=…)."""
    current = url
    for _ in range(MAX_UNWRAP):
        target = _unwrap_once(current)
        if target is None or target == current:
            break
        current = target
    return current


def _unwrap_once(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if host.endswith("urldefense.proofpoint.com") or host.endswith("urldefense.com"):
        found = _proofpoint(parts.path, parts.query)
        if found is not None:
            return found
    if host in _ARCHIVES:  # an archived copy is the article, not a redirect to it
        return None
    if parts.query:
        found = _from_query(parts.query, parts.path)
        if found is not None:
            return found
    return _from_path(parts.path)


def _from_query(query: str, path: str) -> str | None:
    pairs = parse_qsl(query, keep_blank_values=False)
    # The named redirect parameters first, in their order of likelihood.
    named = {key.lower(): value for key, value in pairs if key.lower() in _REDIRECT_PARAM_SET}
    for key in _REDIRECT_PARAMS:
        value = named.get(key)
        if value is not None:
            found = _as_url(value)
            if found is not None:
                return found
    for _key, value in pairs:  # Mandrill's p=, and others: base64 JSON with a URL inside
        if value.startswith(_B64_PREFIXES):
            found = _decode_base64_url(value)
            if found is not None:
                return found
    if _TRACKER_PATH.search(path):
        # A click tracker's own parameter name (komtools' D=): any parameter holding a URL.
        # Only on tracker paths: elsewhere "?ref=https://…" is an article's own parameter.
        for _key, value in pairs:
            found = _as_url(value)
            if found is not None:
                return found
    return None


def _from_path(path: str) -> str | None:
    segments = path.split("/")
    for index, segment in enumerate(segments[1:], start=1):
        if not segment:
            continue
        lowered = segment[:12].lower()
        if lowered.startswith(("http%3a", "https%3a", "http:", "https:")):
            # SES and friends: the target percent-encoded as one segment; or left bare, so
            # its own slashes split it over the rest of the path.
            if "%2f" in segment.lower():
                candidate = unquote(segment)
            else:
                candidate = unquote("/".join(segments[index:]))
            if _HTTP.match(candidate):
                return candidate
        elif segment.startswith(_B64_PREFIXES) and len(segment) >= 12:
            found = _decode_base64_url(segment)
            if found is not None:
                return found
    return None


def _as_url(value: str) -> str | None:
    value = value.strip()
    if _HTTP.match(value):
        return value
    lowered = value[:10].lower()
    if lowered.startswith(("http%3a", "https%3a")):
        decoded = unquote(value)
        return decoded if _HTTP.match(decoded) else None
    if lowered.startswith("//") and "." in value[2:].split("/", 1)[0]:
        return "https:" + value
    if value.startswith(_B64_PREFIXES):
        return _decode_base64_url(value)
    return None


def _decode_base64_url(value: str) -> str | None:
    pieces = value.split(".")
    if len(pieces) == 3 and value.startswith("eyJ"):
        return _decode_base64_url(pieces[1])  # a JWT: its payload, not its header
    token = value.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    text = text.strip()
    if _HTTP.match(text) and not any(ch.isspace() for ch in text):
        return text
    if text.startswith("{"):
        return _url_in_json(text, depth=0)
    return None


def _url_in_json(text: str, depth: int) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for key in _JSON_URL_KEYS:
        value = data.get(key)
        if isinstance(value, str) and _HTTP.match(value):
            return value
    if depth < 2:  # Mandrill nests a JSON string inside its JSON
        for value in data.values():
            if isinstance(value, str) and value.lstrip().startswith("{"):
                found = _url_in_json(value, depth + 1)
                if found is not None:
                    return found
    return None


def _proofpoint(path: str, query: str) -> str | None:
    if path.startswith("/v3/"):
        match = _PROOFPOINT_V3.search(path + (("?" + query) if query else ""))
        # "*" stands for characters stored elsewhere in the token: not recoverable offline.
        if match is not None and "*" not in match.group(1):
            return match.group(1) if _HTTP.match(match.group(1)) else None
        return None
    if path.startswith("/v2/") or path.startswith("/v1/"):
        for key, value in parse_qsl(query):
            if key == "u":
                decoded = re.sub(
                    r"-([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), value
                ).replace("_", "/")
                return decoded if _HTTP.match(decoded) else None
    return None


# --- cleaning ------------------------------------------------------------------------------

_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "__hstc",
        "__hssc",
        "__hsfp",
        "hsctatracking",
        "mkt_tok",
        "ref_src",
        "ref_url",
        "_ga",
        "_gl",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "vero_conv",
        "rb_clickid",
        "s_cid",
        "elqtrackid",
        "elqtrack",
        "elqaid",
        "elqat",
        "elqcampaignid",
        "__s",
        "_bta_tid",
        "_bta_c",
        "wt.mc_id",
        "wt_mc",
        "cm_mmc",
        "ck_subscriber_id",
        "_kx",
        "ml_subscriber",
        "ml_subscriber_hash",
        "sc_cid",
        "mbid",
        "cmpid",
        "sfmc_id",
        "sfmc_sub",
        "spm",
    }
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "ga_")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def clean_url(url: str) -> str:
    """``url`` without tracking parameters (utm_*, fbclid, gclid, mc_*, _hs*, mkt_tok…),
    scheme and host lower-cased, default port and fragment dropped; the rest kept as is."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{netloc}"
    path = parts.path or ("/" if netloc else "")
    query = "&".join(p for p in parts.query.split("&") if p and not _is_tracking(p))
    return urlunsplit((scheme, netloc, path, query, ""))


def _is_tracking(pair: str) -> bool:
    name = unquote(pair.split("=", 1)[0]).lower()
    return name in _TRACKING_PARAMS or name.startswith(_TRACKING_PREFIXES)
