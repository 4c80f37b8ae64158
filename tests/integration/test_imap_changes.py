"""Changes written back over IMAP, checked over a separate connection: flags and keywords
over UID sets (one STORE per change), MOVE with COPYUID, the COPY + \\Deleted + UID EXPUNGE
fallback on a server without MOVE (through a proxy that hides it), messages gone or
renumbered, a dropped connection, and Gmail labels."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from email import message_from_bytes

import pytest

from inboxd.providers.base import (
    Marks,
    Mutation,
    MutationRefused,
    ProviderError,
    ProviderOptions,
)
from inboxd.providers.imap.provider import ImapProvider
from inboxd.providers.imap.settings import ImapConfig
from tests.services.dovecot import ImapUser
from tests.support.gmail_server import GmailMessage, GmailServer
from tests.support.mail import make_message
from tests.support.proxy import Proxy

pytestmark = pytest.mark.dovecot


def provider_for(user: ImapUser, port: int | None = None) -> ImapProvider:
    config = ImapConfig(user.host, port or user.port, "none", user.username, timeout=10)
    return ImapProvider(config, user.password, ProviderOptions())


def server_flags(user: ImapUser, folder: str = "INBOX") -> dict[int, set[str]]:
    """UID -> flags, read with the test server's own imaplib client."""
    return {
        m.uid: set(m.flags) for m in user.server.fetch_all(user.username, user.password, folder)
    }


def bodies(user: ImapUser, folder: str) -> dict[int, bytes]:
    return {m.uid: m.raw for m in user.server.fetch_all(user.username, user.password, folder)}


def fill(user: ImapUser, count: int, flags: tuple[str, ...] = ()) -> list[int]:
    return [user.append("INBOX", make_message(n), flags) for n in range(count)]


def sent_commands(proxy: Proxy, verb: str) -> list[str]:
    """The commands the client sent through the proxy that start with ``verb``."""
    lines = bytes(proxy.sent).decode("utf-8", "replace").split("\r\n")
    return [rest for line in lines if (rest := line.partition(" ")[2]).startswith(verb)]


def without(*capabilities: str) -> Callable[[bytes], bytes]:
    """A proxy rewrite that hides ``capabilities`` from the client (without UIDPLUS, the
    COPYUID response codes too)."""
    pattern = re.compile(rb" (?:" + b"|".join(c.encode() for c in capabilities) + rb")(?=[ \]\r])")

    def rewrite(data: bytes) -> bytes:
        if "UIDPLUS" in capabilities:
            data = _COPYUID.sub(b"", data)
        return pattern.sub(b"", data) if b"CAPABILITY" in data else data

    return rewrite


_COPYUID = re.compile(rb"\[COPYUID \d+ [0-9:,]+ [0-9:,]+\] ?")


@pytest.fixture
def proxy(imap_user: ImapUser) -> Iterator[Proxy]:
    with Proxy(imap_user.port) as running:
        yield running


def test_flags_and_keywords_are_stored_over_uid_sets_and_cleared(
    imap_user: ImapUser, proxy: Proxy
) -> None:
    uids = fill(imap_user, 6, ("\\Flagged",))
    label = ("\\Seen", "$inboxd_newsletter")
    with provider_for(imap_user, proxy.port) as provider:
        provider.open()
        assert provider.capabilities.mutations and not provider.capabilities.labels
        validity = imap_user.uidvalidity()
        changes = [Mutation("INBOX", str(uid), add_flags=label, validity=validity) for uid in uids]
        changes.append(Mutation("INBOX", str(uids[0]), remove_flags=("\\Flagged",)))
        changes.append(Mutation("INBOX", "999", add_flags=("\\Seen",)))
        applied = provider.apply(changes)
        assert [a.error for a in applied] == [None] * 7 + ["not in INBOX any more"]
        assert applied[0].marks == Marks(("\\Seen", "$inboxd_newsletter"))
        assert applied[1].marks == Marks(("\\Flagged", "\\Seen", "$inboxd_newsletter"))
        assert applied[1].validity == validity
        # One STORE per change, whatever the number of messages.
        stores = sent_commands(proxy, "UID STORE")
        assert stores == [
            f"UID STORE {uids[0]}:{uids[-1]} +FLAGS.SILENT ($inboxd_newsletter \\Seen)",
            "UID STORE 999 +FLAGS.SILENT (\\Seen)",
            f"UID STORE {uids[0]} -FLAGS.SILENT (\\Flagged)",
        ]
        assert server_flags(imap_user)[uids[0]] == {"\\Seen", "$inboxd_newsletter"}
        assert server_flags(imap_user)[uids[5]] == {"\\Flagged", "\\Seen", "$inboxd_newsletter"}
        # Cleared again, and read back as the server has them now.
        provider.apply([Mutation("INBOX", str(u), remove_flags=label) for u in uids])
        assert set(map(frozenset, server_flags(imap_user).values())) == {
            frozenset(),
            frozenset({"\\Flagged"}),
        }
        imap_user.delete_messages("INBOX", [uids[1]])
        keys = [str(u) for u in uids[:3]]
        assert provider.current_marks("INBOX", keys) == {
            keys[0]: Marks(()),
            keys[2]: Marks(("\\Flagged",)),
        }
        assert provider.current_marks("INBOX", keys, validity=validity + 1) == {}
        assert provider.current_marks("Nowhere", keys) == {}
        with pytest.raises(MutationRefused, match="never marks mail"):
            provider.apply([Mutation("INBOX", keys[0], add_flags=("\\Deleted",))])
        with pytest.raises(MutationRefused, match="no labels"):
            provider.apply([Mutation("INBOX", keys[0], add_labels=("inboxd/Newsletter",))])


def test_a_renumbered_folder_fails_the_old_keys_and_touches_nothing(imap_user: ImapUser) -> None:
    uids = fill(imap_user, 3)
    old = imap_user.uidvalidity()
    imap_user.change_uidvalidity("INBOX")
    with provider_for(imap_user) as provider:
        applied = provider.apply(
            [Mutation("INBOX", str(u), add_flags=("\\Seen",), validity=old) for u in uids]
        )
    assert all(a.error and "renumbered" in a.error for a in applied)
    assert all(flags == set() for flags in server_flags(imap_user).values())


def test_move_uses_uid_move_and_copyuid_and_finds_moved_mail(
    imap_user: ImapUser, proxy: Proxy
) -> None:
    uids = fill(imap_user, 5, ("\\Seen",))
    imap_user.delete_messages("INBOX", [uids[4]])  # another client removed it meanwhile
    inbox = bodies(imap_user, "INBOX")
    with provider_for(imap_user, proxy.port) as provider:
        archive = provider.archive_folder()
        assert archive == "Archive"  # created; Dovecot gives it \Archive
        assert provider.archive_folder() == "Archive"
        applied = provider.apply(
            [
                Mutation("INBOX", str(uids[0]), add_flags=("\\Flagged",), move_to=archive),
                *(Mutation("INBOX", str(u), move_to=archive) for u in uids[1:]),
            ]
        )
        assert [a.error for a in applied] == [None] * 4 + ["not in INBOX any more"]
        moved = bodies(imap_user, "Archive")
        for uid, done in zip(uids[:4], applied, strict=False):
            assert done.folder == "Archive" and done.new_key is not None
            assert moved[int(done.new_key)] == inbox[uid]
        assert applied[0].marks is not None
        assert set(applied[0].marks.flags) == {"\\Seen", "\\Flagged"}
        assert applied[0].validity == imap_user.uidvalidity("Archive")
        assert server_flags(imap_user, "Archive")[int(str(applied[0].new_key))] == {
            "\\Seen",
            "\\Flagged",
        }
        assert imap_user.message_count("INBOX") == 0
        assert sent_commands(proxy, "UID MOVE") == [f'UID MOVE {uids[0]}:{uids[3]} "Archive"']
        assert not sent_commands(proxy, "UID EXPUNGE") and not sent_commands(proxy, "EXPUNGE")
        message_id = message_from_bytes(inbox[uids[2]])["Message-ID"]
        assert provider.locate("Archive", message_id) == [applied[2].new_key]
        assert provider.locate("INBOX", message_id) == []
        assert provider.locate("Archive", message_id[:-3] + ">") == []  # substring, no match
        # A target that does not exist yet is created (TRYCREATE).
        (again,) = provider.apply([Mutation("Archive", str(applied[0].new_key), move_to="Lists")])
        assert again.ok and imap_user.message_count("Lists") == 1


def test_without_move_copy_deleted_and_uid_expunge_spare_other_deleted_mail(
    imap_user: ImapUser,
) -> None:
    uids = fill(imap_user, 4)
    imap_user.create_folder("Archive")
    # Another client marked the last one \Deleted and has not expunged yet.
    imap_user.set_flags("INBOX", [uids[3]], ["\\Deleted"])
    with Proxy(imap_user.port, rewrite=without("MOVE")) as proxy:
        with provider_for(imap_user, proxy.port) as provider:
            provider.open()
            assert "MOVE" not in provider.session.capabilities
            applied = provider.apply(
                [Mutation("INBOX", str(u), move_to="Archive") for u in uids[:2]]
            )
        assert all(a.ok and a.folder == "Archive" for a in applied)
        assert sent_commands(proxy, "UID COPY") == [f'UID COPY {uids[0]}:{uids[1]} "Archive"']
        assert sent_commands(proxy, "UID EXPUNGE") == [f"UID EXPUNGE {uids[0]}:{uids[1]}"]
        assert not sent_commands(proxy, "UID MOVE") and not sent_commands(proxy, "EXPUNGE")
    assert server_flags(imap_user) == {uids[2]: set(), uids[3]: {"\\Deleted"}}
    archived = server_flags(imap_user, "Archive")
    assert sorted(archived) == sorted(int(str(a.new_key)) for a in applied)
    assert all(flags == set() for flags in archived.values())


def test_without_move_or_uidplus_moves_are_refused_and_nothing_changes(
    imap_user: ImapUser,
) -> None:
    (uid,) = fill(imap_user, 1)
    with Proxy(imap_user.port, rewrite=without("MOVE", "UIDPLUS")) as proxy:
        with provider_for(imap_user, proxy.port) as provider:
            change = Mutation("INBOX", str(uid), add_flags=("\\Seen",), move_to="Archive")
            with pytest.raises(MutationRefused, match="neither MOVE nor UIDPLUS"):
                provider.apply([change])
            (flagged,) = provider.apply([Mutation("INBOX", str(uid), add_flags=("\\Seen",))])
        assert flagged.ok
        assert not sent_commands(proxy, "UID COPY") and not sent_commands(proxy, "UID EXPUNGE")
    assert server_flags(imap_user) == {uid: {"\\Seen"}}


def test_a_dropped_connection_is_a_retryable_provider_error(
    imap_user: ImapUser, proxy: Proxy
) -> None:
    (uid,) = fill(imap_user, 1)
    with provider_for(imap_user, proxy.port) as provider:
        provider.open()
        provider.current_marks("INBOX", [str(uid)])
        proxy.cut()
        with pytest.raises(ProviderError):
            provider.apply([Mutation("INBOX", str(uid), add_flags=("\\Seen",))])
        (applied,) = provider.apply([Mutation("INBOX", str(uid), add_flags=("\\Seen",))])
    assert applied.ok and server_flags(imap_user) == {uid: {"\\Seen"}}


def test_a_move_without_copyuid_finds_the_new_uid_by_message_id(imap_user: ImapUser) -> None:
    uids = fill(imap_user, 2)
    ids = [message_from_bytes(raw)["Message-ID"] for raw in bodies(imap_user, "INBOX").values()]
    imap_user.create_folder("Archive")
    with Proxy(imap_user.port, rewrite=without("UIDPLUS")) as proxy:
        with provider_for(imap_user, proxy.port) as provider:
            applied = provider.apply(
                [
                    Mutation("INBOX", str(uids[0]), move_to="Archive", message_id=ids[0]),
                    Mutation("INBOX", str(uids[1]), move_to="Archive"),
                    Mutation("Gone", "1", move_to="Archive"),
                ]
            )
        assert sent_commands(proxy, "UID MOVE")
    moved = bodies(imap_user, "Archive")
    assert [(a.folder, a.error) for a in applied] == [
        ("Archive", None),
        ("Archive", None),
        ("Gone", "not in Gone any more"),
    ]
    (found,) = [
        uid for uid, raw in moved.items() if message_from_bytes(raw)["Message-ID"] == ids[0]
    ]
    assert applied[0].new_key == str(found)
    assert applied[1].new_key is None  # moved, but nothing to find it by


@pytest.fixture
def gmail() -> Iterator[GmailServer]:
    server = GmailServer()
    yield server
    server.close()


def test_gmail_labels_are_stored_and_archiving_moves_to_all_mail(gmail: GmailServer) -> None:
    messages = [GmailMessage(100 + n, make_message(n), ["\\Inbox", "Work"]) for n in range(3)]
    for message in messages:
        gmail.deliver(message, "INBOX", "[Gmail]/All Mail")
    config = ImapConfig("127.0.0.1", gmail.port, "none", "me@gmail.com", timeout=10)
    with ImapProvider(config, "pw", ProviderOptions()) as provider:
        provider.open()
        assert provider.capabilities.labels
        applied = provider.apply(
            [
                Mutation(
                    "INBOX", str(n), add_labels=("inboxd/Newsletter",), remove_labels=("Work",)
                )
                for n in (1, 2)
            ]
        )
        assert all(a.ok for a in applied)
        assert applied[0].marks == Marks((), ("\\Inbox", "inboxd/Newsletter"))
        assert [m.labels for m in messages] == [
            ["\\Inbox", "inboxd/Newsletter"],
            ["\\Inbox", "inboxd/Newsletter"],
            ["\\Inbox", "Work"],
        ]
        assert [c for c in gmail.commands if "X-GM-LABELS (" in c and "STORE" in c] == [
            'UID STORE 1:2 +X-GM-LABELS ("inboxd/Newsletter")',
            'UID STORE 1:2 -X-GM-LABELS ("Work")',
        ]
        archive = provider.archive_folder()
        assert archive == "[Gmail]/All Mail"
        (moved,) = provider.apply([Mutation("INBOX", "3", add_flags=("\\Seen",), move_to=archive)])
        assert (moved.folder, moved.new_key, moved.error) == (archive, "3", None)
        assert messages[2].labels == ["Work"] and messages[2].flags == ["\\Seen"]
        assert provider.current_marks(archive, ["3"]) == {"3": Marks(("\\Seen",), ("Work",))}
