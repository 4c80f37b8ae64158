"""The provider registry, and the fake provider driven like a real one (and, registered,
through a real sync job)."""

from __future__ import annotations

import subprocess
import sys
from email import message_from_bytes
from pathlib import Path

import pytest

from inboxd.errors import InvalidRequest
from inboxd.jobs.model import JobStatus
from inboxd.providers import registry
from inboxd.providers.base import (
    FolderStatus,
    MailProvider,
    Marks,
    Mutation,
    MutationRefused,
    MutationsNotSupported,
    NoHelpers,
    ProviderError,
    ProviderOptions,
)
from inboxd.providers.fake import ENTRY, MAILBOXES, FakeMailbox, FakeProvider
from inboxd.providers.imap.changes import uid_sets
from inboxd.providers.imap.provider import ImapProvider
from inboxd.providers.imap.settings import ImapConfig
from inboxd.providers.imap.stream import parse_uid_set
from inboxd.providers.maildir import MaildirProvider
from inboxd.providers.mbox import MboxProvider
from inboxd.store.accounts import Accounts
from inboxd.store.folders import FolderState
from tests.support.apps import make_app, sync_now
from tests.support.imap_script import ScriptedImapServer
from tests.support.mail import make_message


def implementations(
    imap: ImapProvider, maildir: MaildirProvider, mbox: MboxProvider, fake: FakeProvider
) -> list[MailProvider]:
    """Never called: mypy checks here that every provider implements the protocol."""
    return [imap, maildir, mbox, fake]


def never_synced(name: str) -> FolderState:
    return FolderState(
        id=1,
        account_id="a",
        name=name,
        uidvalidity=None,
        uidnext=None,
        highest_uid=0,
        highestmodseq=None,
        server_count=None,
        cursor=None,
        last_synced_at=None,
    )


def test_the_registry_knows_the_providers_and_says_which_when_one_is_unknown() -> None:
    assert registry.names()[:4] == ("imap", "maildir", "mbox", "graph")
    with pytest.raises(InvalidRequest, match=r"unknown provider 'exchange' \(one of: imap, "):
        registry.validate_settings("exchange", {})
    cleaned = registry.validate_settings("imap", {"host": " h ", "username": "u"})
    assert cleaned["host"] == "h" and cleaned["port"] == 993


def test_checking_imap_settings_does_not_import_the_imap_stack() -> None:
    code = (
        "import sys\n"
        "from inboxd.store.accounts import validate_settings\n"
        "validate_settings('imap', {'host': 'h', 'username': 'u'})\n"
        "assert 'imapclient' not in sys.modules, 'imapclient imported'\n"
        "assert 'inboxd.providers.imap.session' not in sys.modules, 'session imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_fake_plans_and_fetches_in_batches_with_checkpoints() -> None:
    box = FakeMailbox()
    for n in range(5):
        box.add("INBOX", make_message(n), ("\\Seen",))
    provider = FakeProvider(box, ProviderOptions(batch_messages=2))
    with provider:
        provider.open()
        listing = provider.folders()
        ((_folder, status),) = listing.folders
        assert status == FolderStatus(5, box.folders["INBOX"].uidvalidity, 6, 6)
        plan = provider.plan("INBOX", status, never_synced("INBOX"), frozenset)
        assert plan.batches == (("1", "2"), ("3", "4"), ("5",))
        fetched = list(provider.fetch(plan))
    assert not provider.connected
    assert [b.checkpoint and b.checkpoint["highest_uid"] for b in fetched] == [2, 4, 5]
    assert [m.flags for b in fetched for m in b.messages] == [("\\Seen",)] * 5


def test_the_fake_drops_its_connection_when_told_to() -> None:
    box = FakeMailbox()
    for n in range(4):
        box.add("INBOX", make_message(n))
    box.drop_after_batches = 1
    provider = FakeProvider(box, ProviderOptions(batch_messages=2))
    ((_folder, status),) = provider.folders().folders
    batches = provider.fetch(provider.plan("INBOX", status, never_synced("INBOX"), frozenset))
    assert next(batches).index == 0
    with pytest.raises(ProviderError, match="dropped the connection"):
        next(batches)
    assert not provider.connected and box.drop_after_batches is None


def test_mbox_accounts_are_read_only(tmp_path: Path) -> None:
    change = [Mutation("INBOX", "1", add_flags=("\\Seen",))]
    options = ProviderOptions()
    for provider in (MboxProvider(tmp_path / "x.mbox", options),):
        assert not provider.capabilities.mutations
        with pytest.raises(MutationsNotSupported, match="read-only"):
            provider.apply(change)
        with pytest.raises(NoHelpers):
            provider.spec()


def test_a_registered_fake_account_syncs_through_the_sync_job(tmp_path: Path) -> None:
    registry.register(ENTRY)
    box = MAILBOXES["job"] = FakeMailbox()
    for n in range(12):
        box.add("INBOX", make_message(n))
    app = make_app(f"sqlite:///{tmp_path}/inboxd.db", tmp_path)
    try:
        with pytest.raises(InvalidRequest, match="no fake mailbox"):
            Accounts(app.engine, app.settings).add("fake", "f", {"mailbox": "nope"})
        account = Accounts(app.engine, app.settings).add("fake", "f", {"mailbox": "job"})
        done = sync_now(app, account)
        assert done.status == JobStatus.COMPLETED, done.error
        assert done.result is not None and done.result["fetched"] == 12
    finally:
        app.close()
        MAILBOXES.pop("job")
        registry.unregister(ENTRY.name)


def test_the_fake_applies_flags_labels_and_moves_to_new_uids() -> None:
    box = FakeMailbox(labels=True)
    uids = [box.add("INBOX", make_message(n), ("\\Seen",)) for n in range(3)]
    box.set_labels("INBOX", uids[2], ("\\Inbox", "Work"))
    provider = FakeProvider(box)
    assert provider.capabilities.mutations and provider.capabilities.labels
    validity = box.folders["INBOX"].uidvalidity
    applied = provider.apply(
        [
            Mutation(
                "INBOX", "1", add_flags=("\\Flagged", "$inboxd_newsletter"), validity=validity
            ),
            Mutation("INBOX", "2", remove_flags=("\\Seen",), move_to=provider.archive_folder()),
            Mutation("INBOX", "3", add_labels=("inboxd/Newsletter",), remove_labels=("Work",)),
            Mutation("INBOX", "9", add_flags=("\\Seen",)),
        ]
    )
    assert [a.ok for a in applied] == [True, True, True, False]
    assert applied[0].marks == Marks(("\\Seen", "\\Flagged", "$inboxd_newsletter"), ())
    assert (applied[1].folder, applied[1].new_key) == ("Archive", "1")
    assert applied[1].validity == box.folders["Archive"].uidvalidity != validity
    assert box.marks("Archive", 1) == Marks((), ())
    assert box.marks("INBOX", 3).labels == ("\\Inbox", "inboxd/Newsletter")
    assert applied[3].error == "not in INBOX any more"
    assert sorted(box.folders["INBOX"].messages) == [1, 3]
    assert provider.current_marks("INBOX", ["1", "2", "3"]).keys() == {"1", "3"}
    assert provider.current_marks("INBOX", ["1"], validity=validity + 99) == {}
    msgid = message_from_bytes(box.folders["Archive"].messages[1][0])["Message-ID"]
    assert provider.locate("Archive", msgid) == ["1"] and provider.locate("INBOX", msgid) == []


def test_the_fake_refuses_deleting_labels_without_labels_and_renumbered_keys() -> None:
    box = FakeMailbox()
    box.add("INBOX", make_message(0))
    provider = FakeProvider(box)
    with pytest.raises(MutationRefused, match="never marks mail"):
        provider.apply([Mutation("INBOX", "1", add_flags=("\\deleted",))])
    with pytest.raises(MutationRefused, match="no labels"):
        provider.apply([Mutation("INBOX", "1", add_labels=("x",))])
    with pytest.raises(MutationRefused, match="not an IMAP flag"):
        provider.apply([Mutation("INBOX", "1", add_flags=("two words",))])
    old = box.folders["INBOX"].uidvalidity
    box.renumber("INBOX")
    (applied,) = provider.apply([Mutation("INBOX", "1", add_flags=("\\Seen",), validity=old)])
    assert applied.error is not None and "renumbered" in applied.error
    assert box.marks("INBOX", 1).flags == ()
    box.read_only = True
    assert not provider.capabilities.mutations
    with pytest.raises(MutationsNotSupported):
        provider.apply([Mutation("INBOX", "1", add_flags=("\\Seen",))])


def test_the_fake_refuses_or_drops_mid_apply_when_told_to() -> None:
    box = FakeMailbox()
    for n in range(3):
        box.add("INBOX", make_message(n))
    provider = FakeProvider(box)
    box.refuse_mutations = "NO [CANNOT] read-only folder"
    (refused,) = provider.apply([Mutation("INBOX", "1", add_flags=("\\Seen",))])
    assert refused.error == "NO [CANNOT] read-only folder" and box.marks("INBOX", 1).flags == ()
    box.refuse_mutations = None
    box.drop_after_mutations = 2
    with pytest.raises(ProviderError, match="dropped"):
        provider.apply([Mutation("INBOX", k, add_flags=("\\Seen",)) for k in ("1", "2", "3")])
    assert [box.marks("INBOX", uid).flags for uid in (1, 2, 3)] == [("\\Seen",)] * 2 + [()]
    assert not provider.connected and len(box.applied) == 2


def test_uid_sets_are_compact_and_cut_to_the_command_line_limit() -> None:
    assert uid_sets([5, 1, 2, 3, 9, 10, 3]) == [("1:3,5,9:10", [1, 2, 3, 5, 9, 10])]
    assert uid_sets([]) == []
    scattered = list(range(1, 4000, 2))  # 2,000 UIDs, no two adjacent
    sets = uid_sets(scattered, limit=100)
    assert all(len(text) <= 100 for text, _ in sets) and len(sets) > 1
    assert [uid for _, uids in sets for uid in uids] == scattered
    assert [uid for text, _ in sets for uid in parse_uid_set(text)] == scattered


class RefusingServer(ScriptedImapServer):
    """An IMAP server with UIDPLUS but no MOVE that refuses one keyword and every EXPUNGE."""

    def __init__(self) -> None:
        super().__init__(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")

    def answer(self, tag: bytes, verb: bytes, rest: bytes) -> bytes:
        ok = tag + b" OK done\r\n"
        if verb == b"LOGIN":
            return tag + b" OK [CAPABILITY IMAP4rev1 UIDPLUS] in\r\n"
        if verb == b"SELECT":
            return b"* 3 EXISTS\r\n* OK [UIDVALIDITY 5] ok\r\n" + ok
        if rest.startswith(b"UID STORE") and b"$refused" in rest:
            return tag + b" NO [CANNOT] no such keyword here\r\n"
        if rest.startswith(b"UID FETCH"):
            return (
                b"* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))\r\n"
                b"* 3 FETCH (UID 3 FLAGS ())\r\n" + ok
            )
        if rest.startswith(b"UID COPY"):
            return tag + b" OK [COPYUID 9 3 30] copied\r\n"
        if rest.startswith(b"UID EXPUNGE"):
            return tag + b" NO [EXPUNGEISSUED] not now\r\n"
        return ok


def test_refusals_stop_that_message_and_a_failed_expunge_takes_its_deleted_back() -> None:
    server = RefusingServer()
    config = ImapConfig("127.0.0.1", server.port, "none", "me", timeout=5)
    try:
        with ImapProvider(config, "pw", ProviderOptions()) as provider:
            applied = provider.apply(
                [
                    Mutation("INBOX", "1", add_flags=("$refused",), move_to="Archive"),
                    Mutation("INBOX", "2", add_flags=("\\Seen",), validity=5),
                    Mutation("INBOX", "3", move_to="Archive"),
                    Mutation("INBOX", "4", add_flags=("\\Seen",)),
                ]
            )
    finally:
        server.close()
    assert applied[0].error == "the server refused it: [CANNOT] no such keyword here"
    assert applied[1].ok and applied[1].marks == Marks(("\\Seen",))
    assert applied[2].error == "copied to Archive, but the original stays: [EXPUNGEISSUED] not now"
    assert applied[3].error == "not in INBOX any more"
    sent = [c.split(b" ", 1)[1].rstrip(b"\r\n").decode() for c in server.commands]
    assert sent[sent.index('UID COPY 3 "Archive"') :] == [
        'UID COPY 3 "Archive"',
        "UID STORE 3 +FLAGS.SILENT (\\Deleted)",
        "UID EXPUNGE 3",
        "UID STORE 3 -FLAGS.SILENT (\\Deleted)",
        "LOGOUT",
    ]
    assert not any(c.startswith("EXPUNGE") or "COPY 1" in c for c in sent)
