"""Account settings are checked when an account is made or changed: a host name, port or
path that could never work is a clear error naming the field (422 over the API)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inboxd.errors import InvalidField
from inboxd.providers import registry
from inboxd.providers.imap.settings import check_host


@pytest.mark.parametrize(
    "host",
    ["imap.example.com", "localhost", "127.0.0.1", "::1", "[::1]", "mail_box.lan", "bücher.de"],
)
def test_host_names_and_addresses_pass(host: str) -> None:
    assert check_host(host)


@pytest.mark.parametrize(
    "host",
    ["", "a" * 100_000, "x" * 64 + ".com", "bad host.com", "-lead.example", "a..b", "ex\x00mple"],
)
def test_impossible_host_names_name_the_field(host: str) -> None:
    with pytest.raises(InvalidField, match=r"^settings\.host: "):
        check_host(host)


@pytest.mark.parametrize("port", [-1, 65536, "many", True])
def test_ports_out_of_range_name_the_field(port: object) -> None:
    settings = {"host": "imap.example.com", "username": "me", "port": port}
    with pytest.raises(InvalidField, match=r"^settings\.port: "):
        registry.validate_settings("imap", settings)


def test_paths_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(InvalidField, match=r"^settings\.path: no Maildir"):
        registry.validate_settings("maildir", {"path": str(tmp_path / "missing")})
    with pytest.raises(InvalidField, match=r"^settings\.path: "):
        registry.validate_settings("mbox", {"path": "x" * 5000})
    with pytest.raises(InvalidField, match=r"^settings\.path: "):
        registry.validate_settings("mbox", {"path": ""})
