"""A private Dovecot IMAP server on 127.0.0.1 with passwd-file users and Maildir storage.

Everything (config, pid, sockets, logs, indexes, mail) lives in one temp dir; /etc/dovecot and
any system-wide Dovecot are never touched. Auth is plaintext LOGIN/PLAIN with ssl = no, which
is only acceptable because the listener is bound to the loopback address.
"""

from __future__ import annotations

import atexit
import grp
import imaplib
import math
import os
import pwd
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from inboxd.providers.maildir import encode_mutf7
from tests.services import (
    LOOPBACK,
    ServiceUnavailable,
    certs,
    ensure_system_user,
    free_port,
    is_root,
    pid_alive,
    run_logged,
    tail,
    wait_for,
)

MAIL_USER_AS_ROOT = "vmail"
_APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")
_STATUS_ITEM = re.compile(rb"([A-Z]+) (\d+)")
_FETCH_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_FETCH_DATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_FETCH_UID = re.compile(rb"UID (\d+)")


def find_dovecot() -> tuple[Path, Path]:
    """Return the dovecot and doveadm binaries."""
    found: list[Path] = []
    for name in ("dovecot", "doveadm"):
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
        if path is None:
            raise ServiceUnavailable(f"{name} not found (install dovecot-imapd)")
        found.append(Path(path))
    if not Path("/usr/lib/dovecot/imap").exists() and shutil.which("imap") is None:
        raise ServiceUnavailable("the Dovecot IMAP server is not installed (dovecot-imapd)")
    return found[0], found[1]


def write_test_certificates(directory: Path, host: str) -> None:
    """A throwaway CA (``ca.pem``) and a certificate for ``host`` (an IP address) that it
    issued (``server.pem``, ``server.key``), valid for a day."""
    made = certs.issue([host], ca_name="inboxd test CA")
    (directory / "ca.pem").write_bytes(made.ca_pem)
    (directory / "server.pem").write_bytes(made.cert_pem)
    key_file = directory / "server.key"
    key_file.write_bytes(made.key_pem)
    key_file.chmod(0o600)


def imap_utf7(name: str) -> str:
    """Encode a mailbox name in IMAP modified UTF-7 (RFC 3501 section 5.1.3)."""
    return encode_mutf7(name)


def quote_mailbox(name: str) -> str:
    """Return a mailbox name as an IMAP quoted string, ready for imaplib."""
    encoded = imap_utf7(name).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{encoded}"'


def _flag_list(flags: Iterable[str]) -> str:
    return "(" + " ".join(flags) + ")"


def _uid_set(uids: Iterable[int]) -> str:
    return ",".join(str(uid) for uid in uids)


def _check(result: tuple[str, Sequence[object]], what: str) -> list[object]:
    typ, data = result
    if typ != "OK":
        raise imaplib.IMAP4.error(f"{what} failed: {typ} {data!r}")
    return list(data)


@dataclass(frozen=True)
class FetchedMessage:
    """A message read back from the server with the attributes needed to re-append it."""

    uid: int
    flags: tuple[str, ...]
    internaldate: str
    raw: bytes


@dataclass(frozen=True)
class ImapUser:
    """One mail account on a DovecotServer, with shortcuts to the server's helpers."""

    host: str
    port: int
    username: str
    password: str
    maildir: Path
    server: DovecotServer = field(repr=False, compare=False)

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Iterable[str] = (),
        date: datetime | None = None,
    ) -> int:
        """Append a message to a folder and return its UID."""
        return self.server.append(self.username, self.password, folder, raw, flags, date)

    def create_folder(self, folder: str) -> None:
        """Create a folder if it does not exist."""
        self.server.create_folder(self.username, self.password, folder)

    def delete_messages(self, folder: str, uids: Iterable[int]) -> None:
        """Flag messages \\Deleted and expunge exactly those UIDs."""
        self.server.delete_messages(self.username, self.password, folder, uids)

    def set_flags(
        self, folder: str, uids: Iterable[int], flags: Iterable[str], op: str = "+"
    ) -> None:
        """Add (+), remove (-) or replace ("") flags on messages."""
        self.server.set_flags(self.username, self.password, folder, uids, flags, op)

    def message_count(self, folder: str = "INBOX") -> int:
        """Number of messages in a folder."""
        return self.server.message_count(self.username, self.password, folder)

    def uids(self, folder: str = "INBOX") -> list[int]:
        """UIDs of all messages in a folder, ascending."""
        return self.server.uids(self.username, self.password, folder)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        """Current UIDVALIDITY of a folder."""
        return self.server.uidvalidity(self.username, self.password, folder)

    def change_uidvalidity(self, folder: str = "INBOX") -> int:
        """Force a new UIDVALIDITY (and new UIDs) on a folder, keeping its messages."""
        return self.server.change_uidvalidity(self.username, self.password, folder)


class DovecotServer:
    """A private Dovecot instance: loopback IMAP on a free port, passwd-file users; with
    ``tls``, also STARTTLS on that port and implicit TLS on ``tls_port``, with a certificate
    for 127.0.0.1 issued by a throwaway CA (``ca_path``)."""

    def __init__(
        self,
        max_userip_connections: int = 50,
        *,
        tls: bool = False,
        oauth2_introspection_url: str | None = None,
    ) -> None:
        """Prepare (but do not start) an instance; with ``oauth2_introspection_url`` it
        also takes XOAUTH2 and OAUTHBEARER logins, checking each bearer token there (RFC
        7662 introspection, ``username`` naming the user)."""
        self.max_userip_connections = max_userip_connections
        self.tls = tls
        self.oauth2_introspection_url = oauth2_introspection_url
        self.host = LOOPBACK
        self.port = 0
        self.tls_port = 0
        self._base: Path | None = None
        self._dovecot: Path | None = None
        self._doveadm: Path | None = None
        self._mail_uid = os.getuid()
        self._mail_gid = os.getgid()
        self._internal_gid = os.getgid()
        self._atexit_registered = False
        self._login_user = self._internal_user = ""

    # -- paths ---------------------------------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        """Directory holding config, runtime state, log and mail."""
        if self._base is None:
            raise RuntimeError("DovecotServer has not been started")
        return self._base

    @property
    def config_path(self) -> Path:
        """The generated dovecot.conf."""
        return self.base_dir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        """Dovecot's log file (errors and info)."""
        return self.base_dir / "dovecot.log"

    @property
    def ca_path(self) -> Path:
        """PEM of the CA that issued the server's certificate (``tls`` only)."""
        return self.base_dir / "tls" / "ca.pem"

    @property
    def mail_root(self) -> Path:
        """Parent of every user's Maildir."""
        return self.base_dir / "mail"

    @property
    def users_dir(self) -> Path:
        """One passwd-file per user, used as both passdb and userdb."""
        return self.base_dir / "users"

    def maildir(self, user: str) -> Path:
        """The Maildir root (INBOX) of a user; other folders are .Name subdirectories."""
        return self.mail_root / user

    # -- lifecycle -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        self._dovecot, self._doveadm = find_dovecot()
        if is_root():
            # Dovecot refuses to access mail as uid 0, so mail belongs to a dedicated user.
            mail_user = ensure_system_user(MAIL_USER_AS_ROOT)
            self._login_user = _existing_user("dovenull", "nobody")
            self._internal_user = _existing_user("dovecot", "nobody")
        else:
            mail_user = pwd.getpwuid(os.getuid())
            self._login_user = self._internal_user = mail_user.pw_name
        self._mail_uid, self._mail_gid = mail_user.pw_uid, mail_user.pw_gid
        self._internal_gid = pwd.getpwnam(self._internal_user).pw_gid
        # /tmp keeps socket paths short (108-byte limit) and reachable by the service users.
        base = Path(tempfile.mkdtemp(prefix="inboxd-dovecot-", dir="/tmp"))
        self._base = base
        for sub in ("run", "state", "mail"):
            (base / sub).mkdir()
        for path in (base, base / "run"):
            path.chmod(0o755)
        self.mail_root.chmod(0o750)
        os.chown(self.mail_root, self._mail_uid, self._mail_gid)
        # Per-user passwd-files: Dovecot throttles re-reading a file it knows to once a second,
        # but a new user's file is read at first sight, so new users can log in at once.
        self.users_dir.mkdir(mode=0o750)
        os.chown(self.users_dir, os.getuid(), self._internal_gid)
        if self.tls:
            (base / "tls").mkdir(mode=0o700)
            write_test_certificates(base / "tls", self.host)
        if not self._atexit_registered:
            atexit.register(self.close)
            self._atexit_registered = True

    def _write_config(self) -> None:
        base = self.base_dir
        # Without root there is no chroot(), so services must not ask for one.
        group = grp.getgrgid(os.getgid()).gr_name
        non_root = "" if is_root() else _NON_ROOT_SERVICES.format(group=group)
        non_root_anvil = "" if is_root() else _NON_ROOT_ANVIL
        self.config_path.write_text(
            _CONFIG.format(
                port=self.port,
                base=base,
                log=self.log_path,
                login_user=self._login_user,
                internal_user=self._internal_user,
                mail_uid=self._mail_uid,
                mail_root=self.mail_root,
                max_conn=self.max_userip_connections,
                users=self.users_dir,
                non_root=non_root,
                non_root_anvil=non_root_anvil,
                ssl=_SSL.format(tls=base / "tls") if self.tls else "ssl = no",
                imaps=self._imaps_listener(),
                oauth2=self._oauth2_passdb(),
                mechanisms="plain login xoauth2 oauthbearer"
                if self.oauth2_introspection_url
                else "plain login",
            )
        )

    def _oauth2_passdb(self) -> str:
        if not self.oauth2_introspection_url:
            return ""
        settings = self.base_dir / "oauth2.conf.ext"
        settings.write_text(_OAUTH2.format(url=self.oauth2_introspection_url))
        settings.chmod(0o644)
        return _OAUTH2_PASSDB.format(settings=settings)

    def _imaps_listener(self) -> str:
        if not self.tls:
            return "port = 0"
        return f"address = {self.host}\n    port = {self.tls_port}"

    def start(self) -> None:
        """Write the config and start Dovecot, waiting until IMAP accepts connections."""
        if self.running:
            return
        if self._base is None:
            self._prepare()
        assert self._dovecot is not None
        keep_port = self.port != 0
        attempts = 1 if keep_port else 3
        for attempt in range(attempts):
            if not keep_port:
                self.port = free_port()
                if self.tls:
                    self.tls_port = free_port()
            self._write_config()
            proc = run_logged(
                [str(self._dovecot), "-c", str(self.config_path)],
                self.base_dir / "start.log",
                cwd=self.base_dir,
            )
            try:
                if proc.returncode != 0:
                    raise ServiceUnavailable(
                        f"dovecot exited with {proc.returncode}:\n"
                        f"{tail(self.base_dir / 'start.log')}\n{tail(self.log_path)}"
                    )
                wait_for(self._greets, 15, f"dovecot on port {self.port}")
                return
            except ServiceUnavailable:
                self.stop()
                if attempt == attempts - 1:
                    raise

    def _greets(self) -> bool:
        # A full greeting (not just a TCP accept) means the auth service is up too; a login
        # process left waiting for auth would also delay shutdown.
        try:
            with imaplib.IMAP4(self.host, self.port, timeout=5):
                return True
        except (OSError, imaplib.IMAP4.error):
            return False

    def _master_pid(self) -> int | None:
        try:
            return int((self.base_dir / "run" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def running(self) -> bool:
        """True while the Dovecot master process is alive."""
        if self._base is None:
            return False
        pid = self._master_pid()
        return pid is not None and pid_alive(pid)

    def stop(self) -> None:
        """Stop the instance (its children exit with the master); mail is kept."""
        if self._base is None:
            return
        pid = self._master_pid()
        if pid is None or not pid_alive(pid):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        """Stop and start on the same port with the same users and mail."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the instance and delete all its files; safe to call more than once."""
        if self._base is None:
            return
        self.stop()
        shutil.rmtree(self._base, ignore_errors=True)
        self._base = None
        self.port = 0

    # -- users ---------------------------------------------------------------------------------

    def _write_user_file(self, name: str, password: str | None) -> None:
        path = self.users_dir / name
        existed = path.exists()
        if password is None:
            path.unlink(missing_ok=True)
        else:
            home = self.maildir(name)
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(
                f"{name}:{{PLAIN}}{password}:{self._mail_uid}:{self._mail_gid}::{home}::\n"
            )
            # The auth process runs as the internal user and must read it; nobody else should.
            tmp.chmod(0o640)
            os.chown(tmp, os.getuid(), self._internal_gid)
            # Dovecot reloads a known passwd-file when its whole-second mtime changes.
            mtime = max(int(time.time()), int(path.stat().st_mtime) + 1 if existed else 0)
            os.utime(tmp, (mtime, mtime))
            tmp.replace(path)
        if existed:
            # Dovecot stats a passwd-file it already knows at most once per second, so a change
            # to an existing user is only certain to be seen from the next second on.
            time.sleep(max(0.0, math.floor(time.time()) + 1.05 - time.time()))

    def add_user(self, name: str, password: str) -> ImapUser:
        """Create (or re-password) a user with an empty Maildir; effective on return."""
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]*", name):
            raise ValueError("user names must match [A-Za-z0-9_][A-Za-z0-9_.@+-]*")
        if any(c in password for c in ":\n\r\0"):
            raise ValueError("passwords may not contain ':' or line breaks")
        if self._base is None:
            raise RuntimeError("DovecotServer has not been started")
        for sub in ("cur", "new", "tmp"):
            path = self.maildir(name) / sub
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, self._mail_uid, self._mail_gid)
        os.chown(self.maildir(name), self._mail_uid, self._mail_gid)
        self._write_user_file(name, password)
        return ImapUser(self.host, self.port, name, password, self.maildir(name), self)

    def remove_user(self, name: str) -> None:
        """Remove a user so further logins fail (its mail is kept); effective on return."""
        self._write_user_file(name, None)

    # -- IMAP helpers (stdlib imaplib, independent of the code under test) ----------------------

    @contextmanager
    def connect(self, user: str, password: str) -> Iterator[imaplib.IMAP4]:
        """Yield a logged-in imaplib connection that is logged out and closed afterwards."""
        with imaplib.IMAP4(self.host, self.port, timeout=30) as conn:
            conn.login(user, password)
            yield conn

    def create_folder(self, user: str, password: str, folder: str) -> None:
        """Create a folder (and its parents) if it does not exist."""
        with self.connect(user, password) as conn:
            _ensure_folder(conn, folder)

    def append(
        self,
        user: str,
        password: str,
        folder: str,
        raw: bytes,
        flags: Iterable[str] = (),
        date: datetime | str | None = None,
    ) -> int:
        """Append a message (creating the folder if needed) and return its UID."""
        with self.connect(user, password) as conn:
            _ensure_folder(conn, folder)
            return _append(conn, folder, raw, tuple(flags), date)

    def delete_messages(self, user: str, password: str, folder: str, uids: Iterable[int]) -> None:
        """Flag messages \\Deleted and expunge exactly those UIDs (UID EXPUNGE)."""
        uid_set = _uid_set(uids)
        if not uid_set:
            return
        with self.connect(user, password) as conn:
            _check(conn.select(quote_mailbox(folder)), "SELECT")
            _check(conn.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)"), "UID STORE")
            _check(conn.uid("EXPUNGE", uid_set), "UID EXPUNGE")

    def set_flags(
        self,
        user: str,
        password: str,
        folder: str,
        uids: Iterable[int],
        flags: Iterable[str],
        op: str = "+",
    ) -> None:
        """Add (op "+"), remove ("-") or replace ("") flags on messages."""
        if op not in ("+", "-", ""):
            raise ValueError("op must be '+', '-' or ''")
        uid_set = _uid_set(uids)
        if not uid_set:
            return
        with self.connect(user, password) as conn:
            _check(conn.select(quote_mailbox(folder)), "SELECT")
            _check(conn.uid("STORE", uid_set, f"{op}FLAGS.SILENT", _flag_list(flags)), "STORE")

    def status(self, user: str, password: str, folder: str) -> dict[str, int]:
        """STATUS of a folder: MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN and HIGHESTMODSEQ."""
        with self.connect(user, password) as conn:
            return _status(conn, folder)

    def message_count(self, user: str, password: str, folder: str = "INBOX") -> int:
        """Number of messages in a folder."""
        return self.status(user, password, folder)["MESSAGES"]

    def uidvalidity(self, user: str, password: str, folder: str = "INBOX") -> int:
        """Current UIDVALIDITY of a folder."""
        return self.status(user, password, folder)["UIDVALIDITY"]

    def uids(self, user: str, password: str, folder: str = "INBOX") -> list[int]:
        """UIDs of all messages in a folder, ascending."""
        with self.connect(user, password) as conn:
            _check(conn.select(quote_mailbox(folder), readonly=True), "SELECT")
            data = _check(conn.uid("SEARCH", "ALL"), "UID SEARCH")
        first = data[0]
        assert isinstance(first, bytes)
        return sorted(int(n) for n in first.split())

    def fetch_all(self, user: str, password: str, folder: str = "INBOX") -> list[FetchedMessage]:
        """Every message in a folder with UID, flags, INTERNALDATE and raw bytes."""
        with self.connect(user, password) as conn:
            return _fetch_all(conn, folder)

    def change_uidvalidity(self, user: str, password: str, folder: str = "INBOX") -> int:
        """Give a folder a new UIDVALIDITY and renumber its messages; return the new value.

        Works for INBOX too (which IMAP cannot delete): the messages are read, expunged,
        the UIDVALIDITY is bumped with `doveadm mailbox update --uid-validity`, and the
        messages are re-appended with their flags and INTERNALDATE. Because UIDNEXT never
        goes back, every message also gets a new UID, as after a real server-side rebuild.
        Open sessions on that folder see the change and are disconnected by Dovecot.
        """
        with self.connect(user, password) as conn:
            messages = _fetch_all(conn, folder)
            old = _status(conn, folder)["UIDVALIDITY"]
            if messages:
                _check(conn.select(quote_mailbox(folder)), "SELECT")
                uid_set = _uid_set(m.uid for m in messages)
                _check(conn.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
                _check(conn.uid("EXPUNGE", uid_set), "UID EXPUNGE")
                _check(conn.close(), "CLOSE")
        new = max(old + 1, int(time.time()))
        # doveadm takes mailbox names in UTF-8, not modified UTF-7.
        self._doveadm_run("mailbox", "update", "-u", user, "--uid-validity", str(new), folder)
        with self.connect(user, password) as conn:
            for message in messages:
                _append(conn, folder, message.raw, message.flags, message.internaldate)
            current = _status(conn, folder)["UIDVALIDITY"]
        if current == old:
            raise RuntimeError(f"UIDVALIDITY of {folder!r} did not change ({old})")
        return current

    def kick(self, user: str) -> None:
        """End every IMAP session of ``user`` (each is told ``* BYE``), as a server restart
        or an admin would."""
        self._doveadm_run("kick", user)

    def _doveadm_run(self, *args: str) -> None:
        assert self._doveadm is not None
        log = self.base_dir / "doveadm.log"
        proc = run_logged(
            [str(self._doveadm), "-c", str(self.config_path), *args], log, cwd=self.base_dir
        )
        if proc.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed:\n{tail(log)}")


def _existing_user(*names: str) -> str:
    for name in names:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ServiceUnavailable(f"none of the users {names} exist")


def _ensure_folder(conn: imaplib.IMAP4, folder: str) -> None:
    if folder.upper() == "INBOX":
        return
    typ, data = conn.create(quote_mailbox(folder))
    if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(d for d in data if isinstance(d, bytes)):
        raise imaplib.IMAP4.error(f"CREATE {folder!r} failed: {data!r}")


def _append(
    conn: imaplib.IMAP4,
    folder: str,
    raw: bytes,
    flags: tuple[str, ...],
    date: datetime | str | None,
) -> int:
    if isinstance(date, str) and not date.startswith('"'):
        date = f'"{date}"'
    # imaplib rejects a naive datetime; treat it as UTC rather than guessing the local zone.
    if isinstance(date, datetime) and date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    when = imaplib.Time2Internaldate(date if date is not None else time.time())
    data = _check(
        conn.append(quote_mailbox(folder), _flag_list(flags) if flags else None, when, raw),
        "APPEND",
    )
    found = _APPENDUID.search(b" ".join(d for d in data if isinstance(d, bytes)))
    if found is None:
        raise imaplib.IMAP4.error(f"APPEND gave no APPENDUID: {data!r}")
    return int(found.group(2))


def _status(conn: imaplib.IMAP4, folder: str) -> dict[str, int]:
    data = _check(
        conn.status(quote_mailbox(folder), "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)"),
        "STATUS",
    )
    first = data[0]
    assert isinstance(first, bytes)
    items = first[first.rindex(b"(") :]
    return {key.decode(): int(value) for key, value in _STATUS_ITEM.findall(items)}


def _fetch_all(conn: imaplib.IMAP4, folder: str) -> list[FetchedMessage]:
    _check(conn.select(quote_mailbox(folder), readonly=True), "SELECT")
    data = _check(conn.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])"), "FETCH")
    messages: list[FetchedMessage] = []
    for part in data:
        # Literal-bearing responses come as (prefix, literal) tuples; the rest are bytes.
        if not isinstance(part, tuple):
            continue
        prefix, raw = part
        uid, flags = _FETCH_UID.search(prefix), _FETCH_FLAGS.search(prefix)
        date = _FETCH_DATE.search(prefix)
        if uid is None or flags is None or date is None:
            raise imaplib.IMAP4.error(f"unexpected FETCH response: {prefix!r}")
        kept = tuple(f for f in flags.group(1).decode().split() if f != r"\Recent")
        messages.append(FetchedMessage(int(uid.group(1)), kept, date.group(1).decode(), raw))
    return sorted(messages, key=lambda m: m.uid)


_NON_ROOT_ANVIL = """
  chroot ="""

_SSL = """\
ssl = yes
ssl_cert = <{tls}/server.pem
ssl_key = <{tls}/server.key
ssl_min_protocol = TLSv1.2"""

_NON_ROOT_SERVICES = """
default_internal_group = {group}
service imap-login {{
  chroot =
}}
"""

# Bearer tokens (XOAUTH2, OAUTHBEARER) are checked by the test's OAuth server; passwords by
# the passwd-files.
_OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {settings}
}}
"""
_OAUTH2 = """\
introspection_mode = post
introspection_url = {url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""

_CONFIG = """\
# Generated by tests/services/dovecot.py: private test instance, loopback only.
instance_name = inboxd-test-{port}
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {log}
info_log_path = {log}
{ssl}
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
# Wrong-password tests would otherwise wait two seconds each.
auth_failure_delay = 0
# No metrics: a login process waiting on the stats socket stalls shutdown by five seconds.
stats_writer_socket_path =
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = {mail_uid}
last_valid_uid = 0
mail_location = maildir:{mail_root}/%u
mail_fsync = never
mail_max_userip_connections = {max_conn}
mail_plugins =
# IDLE falls back to polling when inotify is unavailable; keep that prompt for tests.
mailbox_idle_check_interval = 1 secs
# imap_capability is left at its default so CONDSTORE, QRESYNC, UIDPLUS, MOVE are advertised.
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
  }}
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
  mailbox Archive {{
    special_use = \\Archive
  }}
}}
{oauth2}passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {users}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    {imaps}
  }}
}}
# The per-IP auth penalty would delay every login after a failed one by up to 15 seconds;
# taking away its socket is Dovecot's documented way to turn it off.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}{non_root_anvil}
}}
{non_root}"""
