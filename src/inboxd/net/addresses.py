"""Which addresses a URL from a message may reach: public unicast only, unless allow-listed.

A message's sender chooses its links; without this check a link (or a redirect) could make
inboxd call the services on its own machine or network, or a cloud metadata endpoint.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Names that reach the machine itself or a cloud's instance metadata whatever DNS says
# (RFC 6761 localhost; GCP, AWS and Azure metadata names).
_REFUSED_NAMES = frozenset(
    {
        "localhost",
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)
_REFUSED_SUFFIXES = (".localhost",)

# Public-looking addresses that still reach a cloud's instance metadata service.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)

# NAT64 (RFC 6052) prefixes embed an IPv4 address that a translator on the path would reach.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

# What the C library's inet_aton accepts besides dotted decimal: 127.1, 0x7f.1, 017700000001,
# 2130706433. Browsers and resolvers read these as IPv4 addresses, so inboxd does too.
_NUMERIC_HOST = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}$")


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as an IP literal (any IPv4 spelling, IPv6) stands for."""
    text = unquote(host).strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _embedded_v4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address wraps (mapped, compatible, 6to4, Teredo, NAT64)."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _V4_COMPATIBLE and int(address) > 1:
        found.append(low32)
    if any(address in net for net in _NAT64):
        found.append(low32)
    return found


def _why_v4(address: ipaddress.IPv4Address) -> str | None:
    if address in _METADATA:
        return "cloud metadata"
    for why, bad in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared (CGNAT)", address in _CGNAT),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if bad:
            return why
    return None if address.is_global else "not global"


def _why_v6(address: ipaddress.IPv6Address) -> str | None:
    if address.scope_id:
        return "scoped"
    plain = ipaddress.IPv6Address(int(address))
    if plain in _METADATA:
        return "cloud metadata"
    for inner in _embedded_v4(plain):
        inner_why = _why_v4(inner)
        if inner_why:
            return f"wraps a {inner_why} IPv4 address"
    for why, bad in (
        ("unspecified", plain.is_unspecified),
        ("loopback", plain.is_loopback),
        ("link-local", plain.is_link_local),
        ("site-local", plain.is_site_local),
        ("multicast", plain.is_multicast),
        ("reserved", plain.is_reserved),
        ("private", plain.is_private),
    ):
        if bad:
            return why
    # 6to4, Teredo and NAT64 addresses are not "global" to ipaddress, yet their wrapped
    # address was checked above; anything else not global (documentation, ORCHID...) is refused.
    wrapped = plain.sixtofour or plain.teredo or any(plain in net for net in _NAT64)
    return None if plain.is_global or wrapped else "not global"


def why_refused(address: IPAddress) -> str | None:
    """Why inboxd will not connect to this address, or None when it is public unicast."""
    if isinstance(address, ipaddress.IPv4Address):
        return _why_v4(address)
    return _why_v6(address)


@dataclass(frozen=True)
class AddressPolicy:
    """The refusal rules with the operator's exceptions (``fetch_allow_networks``)."""

    allowed_names: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> AddressPolicy:
        """Split ``fetch_allow_networks`` entries into host names and networks."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            text = entry.strip()
            if not text:
                continue
            try:
                network = ipaddress.ip_network(text.strip("[]"), strict=False)
            except ValueError:
                names.add(text.lower().rstrip("."))
                continue
            if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
                # ::ffff:a.b.c.d/n names IPv4 addresses: keep it in the form they are compared in.
                v4 = ipaddress.IPv4Address(int(network.network_address) & 0xFFFFFFFF)
                network = ipaddress.IPv4Network(f"{v4}/{max(network.prefixlen - 96, 0)}")
            networks.append(network)
        return cls(frozenset(names), tuple(networks))

    def name_allowed(self, host: str) -> bool:
        """Whether the operator listed this host name (its addresses are then trusted)."""
        return host.lower().rstrip(".") in self.allowed_names

    def host_refusal(self, host: str) -> str | None:
        """Why this host name is refused before any lookup, or None."""
        name = host.lower().rstrip(".")
        if self.name_allowed(name):
            return None
        if name in _REFUSED_NAMES or name.endswith(_REFUSED_SUFFIXES):
            return f"{name} is a local or metadata name"
        return None

    def address_refusal(self, address: IPAddress, *, host: str = "") -> str | None:
        """Why a connection to ``address`` (found for ``host``) is refused, or None."""
        if host and self.name_allowed(host):
            return None
        plain = (
            ipaddress.IPv6Address(int(address))
            if isinstance(address, ipaddress.IPv6Address)
            else address
        )
        candidates: list[IPAddress] = [plain]
        if isinstance(plain, ipaddress.IPv6Address) and plain.ipv4_mapped is not None:
            candidates.append(plain.ipv4_mapped)
        for net in self.allowed_networks:
            if any(c.version == net.version and c in net for c in candidates):
                return None
        why = why_refused(address)
        return f"{address} is {why}" if why else None
