"""IMAP over implicit TLS and STARTTLS against a real Dovecot with a certificate from a
throwaway CA: trusted through --ca-file, refused clearly when not trusted, and a wrong
security setting for the port named as such."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inboxd.app import App
from inboxd.errors import InvalidRequest
from inboxd.jobs.model import JobStatus
from inboxd.providers.base import ProviderConfigError
from inboxd.providers.imap.session import ImapSession
from inboxd.providers.imap.settings import ImapConfig
from inboxd.store.accounts import NEEDS_ATTENTION, Account, Accounts
from tests.services.dovecot import DovecotServer, ImapUser
from tests.support.apps import add_imap_account, make_app, run_cli, subprocess_env, sync_now
from tests.support.mail import make_message

pytestmark = pytest.mark.dovecot


@pytest.fixture
def tls_server(tls_dovecot_server: DovecotServer) -> DovecotServer:
    return tls_dovecot_server


@pytest.fixture
def tls_user(tls_server: DovecotServer) -> ImapUser:
    user = tls_server.add_user(f"t{uuid.uuid4().hex[:10]}", "secret-pw")
    for n in range(7):
        user.append("INBOX", make_message(n))
    return user


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    opened = make_app(f"sqlite:///{tmp_path}/inboxd.db", tmp_path)
    yield opened
    opened.close()


def _account(app: App, user: ImapUser, port: int, security: str, **extra: Any) -> Account:
    name = f"{security}-{uuid.uuid4().hex[:6]}"
    return add_imap_account(app, user, port=port, name=name, security=security, **extra)


def test_implicit_tls_and_starttls_sync_with_the_servers_ca(
    app: App, tls_server: DovecotServer, tls_user: ImapUser
) -> None:
    ca = tls_server.ca_path.read_text()
    for port, security in ((tls_server.tls_port, "tls"), (tls_server.port, "starttls")):
        account = _account(app, tls_user, port, security, ca_pem=ca)
        job = sync_now(app, account)
        assert job.status == JobStatus.COMPLETED, job.error
        assert job.result["new"] == 7
        assert Accounts(app.engine, app.settings).counts(account.id)["folders"] == {"INBOX": 7}
    # Dovecot saw both logins encrypted.
    assert tls_server.log_path.read_text().count(f"user=<{tls_user.username}>, method=PLAIN") >= 2
    assert ", TLS, " in tls_server.log_path.read_text()


def test_an_untrusted_certificate_fails_at_once_and_says_why(
    app: App, tls_server: DovecotServer, tls_user: ImapUser
) -> None:
    for port, security in ((tls_server.tls_port, "tls"), (tls_server.port, "starttls")):
        account = _account(app, tls_user, port, security)  # the system's CAs only
        job = sync_now(app, account)
        assert job.status == JobStatus.FAILED and job.attempts == 1
        assert job.error is not None
        assert f"TLS certificate of {tls_user.host} not trusted" in job.error
        assert "--ca-file" in job.error
        after = Accounts(app.engine, app.settings).get(account.id)
        assert after.state == NEEDS_ATTENTION


def test_a_ca_that_is_no_certificate_is_refused_when_the_account_is_added(app: App) -> None:
    registry = Accounts(app.engine, app.settings)
    settings = {"host": "127.0.0.1", "security": "tls", "username": "me"}
    for bad in (
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    ):
        with pytest.raises(InvalidRequest, match="ca_pem"):
            registry.add("imap", "bad-ca", settings | {"ca_pem": bad}, secret={"password": "x"})


def test_verification_can_be_turned_off(
    app: App, tls_server: DovecotServer, tls_user: ImapUser
) -> None:
    account = _account(app, tls_user, tls_server.tls_port, "tls", verify_tls=False)
    job = sync_now(app, account)
    assert job.status == JobStatus.COMPLETED and job.result["new"] == 7


def test_a_security_setting_that_does_not_fit_the_port_is_named(
    tls_server: DovecotServer, tls_user: ImapUser, imap_user: ImapUser
) -> None:
    def connect(port: int, security: Any, host_user: ImapUser) -> str:
        config = ImapConfig(
            host_user.host,
            port,
            security,
            host_user.username,
            ca_pem=tls_server.ca_path.read_text(),
        )
        session = ImapSession(config, host_user.password)
        with pytest.raises(ProviderConfigError) as caught:
            session.connect()
        return caught.value.message

    # Implicit TLS spoken to a plain IMAP port.
    assert "check the port and security setting" in connect(tls_server.port, "tls", tls_user)
    # STARTTLS asked of a server that does not offer it (the suite's plain Dovecot).
    assert "does not offer STARTTLS" in connect(imap_user.port, "starttls", imap_user)


def test_cli_adds_a_tls_account_with_its_ca_and_tests_it(
    tmp_path: Path, tls_server: DovecotServer, tls_user: ImapUser
) -> None:
    env = subprocess_env(f"sqlite:///{tmp_path}/inboxd.db", tmp_path / "data")

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(env, *args, stdin=stdin)

    common = ["account", "add", "imap", "--host", tls_user.host, "--username", tls_user.username]
    made = cli(
        *common,
        *("--name", "home", "--port", str(tls_server.tls_port), "--security", "tls"),
        *("--ca-file", str(tls_server.ca_path), "--password-stdin", "--json"),
        stdin=tls_user.password + "\n",
    )
    assert made.returncode == 0, made.stderr
    tested = cli("account", "test", json.loads(made.stdout)["id"])
    assert tested.returncode == 0 and "INBOX: 7" in tested.stdout, tested.stderr
    missing = cli(
        *common,
        *("--name", "other", "--ca-file", str(tmp_path / "nope.pem"), "--password-stdin"),
        stdin=tls_user.password + "\n",
    )
    assert missing.returncode != 0
    assert "cannot read CA file" in " ".join(missing.stderr.split())  # Rich wraps lines
