"""The address policy of the guarded client: what a link from a message may never reach."""

from __future__ import annotations

import ipaddress

import pytest

from inboxd.net.addresses import AddressPolicy, literal_address, why_refused

REFUSED = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "10.1.2.3": "private",
    "172.16.5.4": "private",
    "192.168.1.1": "private",
    "169.254.1.1": "link-local",
    "169.254.169.254": "cloud metadata",
    "100.64.0.1": "shared (CGNAT)",
    "100.127.255.254": "shared (CGNAT)",
    "224.0.0.1": "multicast",
    "0.0.0.0": "unspecified",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "192.0.2.1": "private",
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1": "link-local",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "fd00:ec2::254": "cloud metadata",
    "ff02::1": "multicast",
    "::ffff:127.0.0.1": "wraps a loopback IPv4 address",
    "::ffff:10.0.0.1": "wraps a private IPv4 address",
    "::ffff:169.254.169.254": "wraps a cloud metadata IPv4 address",
    "::127.0.0.1": "wraps a loopback IPv4 address",
    "2002:7f00:1::": "wraps a loopback IPv4 address",
    "2002:c0a8:101::1": "wraps a private IPv4 address",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2": "wraps a private IPv4 address",
    "64:ff9b::a00:1": "wraps a private IPv4 address",
    "2001:db8::1": "private",
}


@pytest.mark.parametrize(("address", "why"), sorted(REFUSED.items()))
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    assert why_refused(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "2001:4860:4860::8888"]
)
def test_public_unicast_passes(address: str) -> None:
    assert why_refused(ipaddress.ip_address(address)) is None


def test_scoped_ipv6_is_refused() -> None:
    assert why_refused(ipaddress.ip_address("fe80::1%eth0")) == "scoped"


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("fe80::1%25eth0", "fe80::1%eth0"),
    ],
)
def test_every_ip_literal_spelling_is_read_as_its_address(host: str, address: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "cafe.be", "1.2.3.4.5", "0x", "deadbeef"])
def test_names_are_not_literals(host: str) -> None:
    assert literal_address(host) is None


def test_allow_list_takes_networks_and_names() -> None:
    policy = AddressPolicy.from_entries(["127.0.0.1", "10.0.0.0/8", "intranet.example", " "])
    loopback = ipaddress.ip_address("127.0.0.1")
    assert policy.address_refusal(loopback) is None
    assert policy.address_refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert policy.address_refusal(ipaddress.ip_address("127.0.0.2")) == "127.0.0.2 is loopback"
    assert policy.address_refusal(ipaddress.ip_address("10.9.8.7")) is None
    assert policy.address_refusal(ipaddress.ip_address("192.168.0.1")) is not None
    # A listed name is trusted whatever it resolves to; others are not.
    private = ipaddress.ip_address("192.168.0.1")
    assert policy.address_refusal(private, host="Intranet.Example.") is None
    assert policy.address_refusal(private, host="other.example") is not None


def test_local_and_metadata_names_are_refused_unless_listed() -> None:
    policy = AddressPolicy.from_entries([])
    for name in ("localhost", "app.localhost", "metadata.google.internal", "METADATA.goog."):
        assert policy.host_refusal(name) is not None, name
    assert policy.host_refusal("example.com") is None
    assert AddressPolicy.from_entries(["localhost"]).host_refusal("localhost") is None
