"""Smoke tests proving the real-service fixtures work (and fail loudly when they do not)."""

from __future__ import annotations

import imaplib
import os
import socket
from datetime import UTC, datetime

import psycopg
import pytest

from tests.services.dovecot import DovecotServer, ImapUser
from tests.services.postgres import PostgresServer

MESSAGE = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hello\r\n\r\nbody\r\n"


def _conninfo(url: str) -> str:
    # The fixtures hand out SQLAlchemy URLs; psycopg wants the bare libpq form.
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_postgres_url_is_a_fresh_empty_database(postgres_url: str) -> None:
    with psycopg.connect(_conninfo(postgres_url)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        assert conn.info.host == "127.0.0.1"


def test_postgres_listens_on_loopback_only(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.conninfo()) as conn:
        row = conn.execute(
            "SELECT current_setting('listen_addresses'), current_setting('max_connections')"
        ).fetchone()
    assert row == ("127.0.0.1", "200")


def test_postgres_restart_keeps_data_and_drops_connections(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    conn = psycopg.connect(_conninfo(postgres_url), autocommit=True)
    try:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (42)")
        postgres_server.restart()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        conn.close()
    with psycopg.connect(_conninfo(postgres_url)) as fresh:
        assert fresh.execute("SELECT x FROM t").fetchone() == (42,)


def test_database_url_runs_on_both_backends(database_url: str) -> None:
    assert database_url.startswith(("sqlite:///", "postgresql+psycopg://postgres@127.0.0.1:"))


def test_imap_login_append_and_count(imap_user: ImapUser) -> None:
    assert imap_user.message_count() == 0
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    uid = imap_user.append("INBOX", MESSAGE, flags=[r"\Seen"], date=when)
    imap_user.append("Archive/2024", MESSAGE)
    assert imap_user.message_count("INBOX") == 1
    assert imap_user.message_count("Archive/2024") == 1
    (fetched,) = imap_user.server.fetch_all(imap_user.username, imap_user.password)
    assert fetched.uid == uid
    assert fetched.raw == MESSAGE
    assert fetched.flags == (r"\Seen",)
    assert fetched.internaldate == "01-May-2024 12:00:00 +0000"
    assert (imap_user.maildir / "cur").is_dir()


def test_flags_and_expunge_helpers(imap_user: ImapUser) -> None:
    uids = [imap_user.append("INBOX", MESSAGE) for _ in range(3)]
    imap_user.set_flags("INBOX", uids[:1], [r"\Flagged", "$Custom"])
    imap_user.delete_messages("INBOX", uids[1:2])
    assert imap_user.uids() == [uids[0], uids[2]]
    (first, _) = imap_user.server.fetch_all(imap_user.username, imap_user.password)
    assert set(first.flags) == {r"\Flagged", "$Custom"}


def test_condstore_and_qresync_are_advertised_and_enable(imap_user: ImapUser) -> None:
    with imaplib.IMAP4(imap_user.host, imap_user.port, timeout=10) as conn:
        conn.login(imap_user.username, imap_user.password)
        typ, caps = conn.capability()
        assert typ == "OK"
        advertised = set(caps[0].split())
        assert {b"CONDSTORE", b"QRESYNC", b"UIDPLUS", b"MOVE", b"IDLE"} <= advertised
        typ, _ = conn.enable("QRESYNC")
        assert typ == "OK"
        _, enabled = conn.response("ENABLED")
        assert enabled[0] is not None
        assert b"QRESYNC" in enabled[0]
    status = imap_user.server.status(imap_user.username, imap_user.password, "INBOX")
    assert "HIGHESTMODSEQ" in status


@pytest.mark.parametrize("folder", ["INBOX", "Projects/Ünïcode"])
def test_uidvalidity_change_renumbers_and_keeps_messages(imap_user: ImapUser, folder: str) -> None:
    imap_user.append(folder, MESSAGE, flags=[r"\Seen"])
    imap_user.append(folder, MESSAGE.replace(b"hello", b"second"))
    old_validity, old_uids = imap_user.uidvalidity(folder), imap_user.uids(folder)

    new_validity = imap_user.change_uidvalidity(folder)

    assert new_validity != old_validity
    assert imap_user.uidvalidity(folder) == new_validity
    new_uids = imap_user.uids(folder)
    assert len(new_uids) == 2
    assert not set(new_uids) & set(old_uids)
    messages = imap_user.server.fetch_all(imap_user.username, imap_user.password, folder)
    assert [m.flags for m in messages] == [(r"\Seen",), ()]
    assert b"second" in messages[1].raw


def test_wrong_password_and_unknown_user_are_rejected(
    dovecot_server: DovecotServer, imap_user: ImapUser
) -> None:
    wrong_password = imap_user.password + "x"
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        dovecot_server.message_count(imap_user.username, wrong_password)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        dovecot_server.message_count("nobody-here", "whatever")


def test_users_added_at_runtime_can_log_in_at_once(dovecot_server: DovecotServer) -> None:
    first = dovecot_server.add_user(f"late{os.getpid()}", "one")
    assert first.message_count() == 0
    dovecot_server.add_user(first.username, "two")
    with pytest.raises(imaplib.IMAP4.error):
        dovecot_server.message_count(first.username, "one")
    assert dovecot_server.message_count(first.username, "two") == 0
    dovecot_server.remove_user(first.username)


def test_dovecot_listens_on_loopback_only(dovecot_server: DovecotServer) -> None:
    assert dovecot_server.host == "127.0.0.1"
    config = dovecot_server.config_path.read_text()
    assert "listen = 127.0.0.1\n" in config
    with socket.create_connection((dovecot_server.host, dovecot_server.port), timeout=5) as sock:
        assert sock.recv(100).startswith(b"* OK")


def test_chromium_is_the_system_browser(chromium_path: str) -> None:
    assert os.access(chromium_path, os.X_OK)
