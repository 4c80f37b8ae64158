"""Shared fixtures: real PostgreSQL, Dovecot and Chromium started or found by the suite itself."""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import ServiceUnavailable, require_services
from tests.services.dovecot import DovecotServer, ImapUser
from tests.services.postgres import PostgresServer
from tests.support.oauth_server import OAuthServer

CHROMIUM = "/usr/bin/chromium"

# Tests using these fixtures get the matching marker, so `-m "not dovecot"` works without
# every test having to repeat the marker by hand.
_FIXTURE_MARKERS = {
    "postgres_server": "postgres",
    "postgres_url": "postgres",
    "dovecot_server": "dovecot",
    "tls_dovecot_server": "dovecot",
    "oauth_dovecot_server": "dovecot",
    "imap_user": "dovecot",
    "chromium_path": "browser",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the service fixtures they use."""
    for item in items:
        for name in getattr(item, "fixturenames", ()):
            marker = _FIXTURE_MARKERS.get(name)
            if marker is not None and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the whole session."""
    server = PostgresServer()
    try:
        server.start()
    except (ServiceUnavailable, OSError) as exc:
        server.close()
        require_services(f"PostgreSQL: {exc}")
    try:
        yield server
    finally:
        server.close()


def _fresh_database(server: PostgresServer) -> tuple[str, str]:
    if not server.running:
        # A test that stopped the server must not break every later test.
        server.start()
    name = f"test_{uuid.uuid4().hex}"
    return name, server.create_database(name)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name, url = _fresh_database(postgres_server)
    try:
        yield url
    finally:
        _drop_quietly(postgres_server, name)


def _drop_quietly(server: PostgresServer, name: str) -> None:
    if not server.running:
        server.start()
    server.drop_database(name)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database URL; every test using it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/inboxd.db"
        return
    # Looked up lazily so SQLite runs never need (or wait for) PostgreSQL.
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name, url = _fresh_database(server)
    try:
        yield url
    finally:
        _drop_quietly(server, name)


def running_dovecot(server: DovecotServer) -> Iterator[DovecotServer]:
    """Start ``server`` (a missing Dovecot skips, or fails under INBOXD_REQUIRE_SERVICES),
    yield it, and remove it afterwards."""
    try:
        server.start()
    except (ServiceUnavailable, OSError) as exc:
        server.close()
        require_services(f"Dovecot: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    """One private Dovecot IMAP server for the whole session."""
    yield from running_dovecot(DovecotServer())


@pytest.fixture(scope="session")
def tls_dovecot_server() -> Iterator[DovecotServer]:
    """A second one that also speaks STARTTLS and implicit TLS (``tls_port``), with a
    certificate for 127.0.0.1 from a throwaway CA (``ca_path``)."""
    yield from running_dovecot(DovecotServer(tls=True))


@pytest.fixture(scope="session")
def oauth_server() -> Iterator[OAuthServer]:
    """A local OAuth 2.0 token and introspection endpoint (see tests/support/oauth_server)."""
    server = OAuthServer(client_secret="test-client-secret")
    yield server
    server.close()


@pytest.fixture(scope="session")
def oauth_dovecot_server(oauth_server: OAuthServer) -> Iterator[DovecotServer]:
    """A Dovecot that also takes XOAUTH2 logins, checking tokens with ``oauth_server``."""
    url = oauth_server.introspection_url
    yield from running_dovecot(DovecotServer(oauth2_introspection_url=url))


@pytest.fixture
def imap_user(dovecot_server: DovecotServer) -> ImapUser:
    """A new mail account with a random password and an empty INBOX."""
    if not dovecot_server.running:
        dovecot_server.start()
    # Not removed afterwards: names are unique and removal costs a second (see remove_user).
    return dovecot_server.add_user(f"u{uuid.uuid4().hex[:12]}", secrets.token_urlsafe(12))


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of the system Chromium (Debian package); tests must never download a browser."""
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is None:
        require_services("Chromium not found at /usr/bin/chromium (apt-get install chromium)")
    return path
