#!/usr/bin/env python3
"""Rate of ImapProvider.apply() on a loopback Dovecot (figures, not a test).

    python bench/imap_changes.py [--messages 10000] [--batch 500]

A private Dovecot (tests/services/dovecot.py) gets an INBOX of small generated messages
(written straight into its Maildir). Then, in batches of ``--batch`` as the change jobs cut
them, each batch first re-read (current_marks, the clean-up's re-check) and then applied:
flags and a keyword added (UID STORE over UID sets), the same cleared, a move to Archive
(UID MOVE), and a move back without MOVE (UID COPY + \\Deleted + UID EXPUNGE, through a
proxy that hides MOVE). Prints messages per second for each.
"""

# ruff: noqa: E402  (the sys.path fix below must run before the other imports)

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
# Run as `python bench/imap_changes.py`, this folder heads sys.path and bench/queue.py would
# shadow the standard library's `queue`.
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse
import os
import random
import time
from collections.abc import Callable, Sequence

from tests.services.dovecot import DovecotServer, ImapUser
from tests.support.mail import make_message
from tests.support.proxy import Proxy

from inboxd.providers.base import Applied, Mutation, ProviderOptions
from inboxd.providers.imap.provider import ImapProvider
from inboxd.providers.imap.settings import ImapConfig


def fill(server: DovecotServer, user: ImapUser, count: int) -> None:
    """``count`` messages written into the user's Maildir new/ (Dovecot indexes them at
    SELECT), named as Dovecot's own delivery names them: time, microseconds, pid, host,
    sizes. (Names all alike but for a few digits far from the end, as ``n.Mn.bench``,
    defeat Dovecot's filename hash: its expunges then cost 3 ms a message.)"""
    new = user.maildir / "new"
    uid, gid = server._mail_uid, server._mail_gid
    rng = random.Random(count)
    now = int(time.time()) - count
    for n in range(count):
        raw = make_message(n)
        usec = rng.randrange(1_000_000)
        path = (
            new / f"{now + n}.M{usec}P{rng.randrange(1000, 99999)}.bench,S={len(raw)},W={len(raw)}"
        )
        path.write_bytes(raw)
        os.chown(path, uid, gid)


def run(
    provider: ImapProvider,
    folder: str,
    keys: Sequence[str],
    batch: int,
    make: Callable[[str], Mutation],
) -> tuple[float, list[Applied]]:
    """Seconds for every batch's current_marks + apply, and what apply said."""
    out: list[Applied] = []
    started = time.perf_counter()
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        provider.current_marks(folder, chunk)
        out += provider.apply([make(key) for key in chunk])
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    server = DovecotServer()
    server.start()
    try:
        user = server.add_user("bench", "bench-password")
        fill(server, user, args.messages)
        config = ImapConfig(user.host, user.port, "none", user.username, timeout=60)
        provider = ImapProvider(config, user.password, ProviderOptions())
        provider.session.examine("INBOX")  # Dovecot indexes the new Maildir here
        keys = [str(uid) for uid in provider.session.all_uids()]
        label = ("\\Seen", "$inboxd_newsletter")
        rows: list[tuple[str, float, list[Applied]]] = []
        seconds, applied = run(
            provider, "INBOX", keys, args.batch, lambda k: Mutation("INBOX", k, add_flags=label)
        )
        rows.append(("flags + keyword added (UID STORE)", seconds, applied))
        seconds, applied = run(
            provider, "INBOX", keys, args.batch, lambda k: Mutation("INBOX", k, remove_flags=label)
        )
        rows.append(("flags + keyword cleared", seconds, applied))
        archive = provider.archive_folder()
        seconds, applied = run(
            provider, "INBOX", keys, args.batch, lambda k: Mutation("INBOX", k, move_to=archive)
        )
        rows.append(("move to Archive (UID MOVE)", seconds, applied))
        moved = [str(a.new_key) for a in applied]
        provider.close()
        with Proxy(user.port, rewrite=lambda data: data.replace(b" MOVE", b"")) as proxy:
            hidden = ImapConfig(user.host, proxy.port, "none", user.username, timeout=60)
            fallback = ImapProvider(hidden, user.password, ProviderOptions())
            seconds, applied = run(
                fallback,
                archive,
                moved,
                args.batch,
                lambda k: Mutation(archive, k, move_to="INBOX"),
            )
            fallback.close()
        rows.append(("move back, no MOVE (COPY+UID EXPUNGE)", seconds, applied))
        print(f"{args.messages} messages, batches of {args.batch}, loopback Dovecot")
        for name, seconds, results in rows:
            ok = sum(1 for a in results if a.ok)
            print(f"  {name:<40} {seconds:6.2f} s  {ok / seconds:8.0f} msg/s  ({ok} ok)")
        print(f"  INBOX holds {user.message_count('INBOX')}, Archive {user.message_count(archive)}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
