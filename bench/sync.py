#!/usr/bin/env python3
"""Benchmark of inboxd's IMAP sync against mbsync (Debian isync), same mailbox, same run
(figures, not a test).

    python bench/sync.py [--messages 20000] [--rtt-messages 2000] [--keep]

A private Dovecot (tests/services/dovecot.py) serves a generated INBOX whose messages are
sized like real mail (cached under .bench/sync-mail between runs). Each inboxd measurement
is a separate child process (so its peak RSS is that of the sync alone) that opens an App on
a fresh SQLite database, enqueues a ``sync`` job and runs a Worker for that one job. mbsync
pulls the same mailbox into a Maildir. Measured: full sync, no-change re-sync, re-sync after
100 new messages, and a full sync of a smaller mailbox through a proxy adding 20 ms of
round-trip time. See bench/README.md.
"""

# ruff: noqa: E402  (the sys.path fix below must run before the other imports)

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
# Run as `python bench/sync.py`, this file's folder heads sys.path, and bench/queue.py would
# then shadow the standard library's `queue` (that asyncio and inboxd's worker import).
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse
import asyncio
import base64
import contextlib
import email.utils
import imaplib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Imported lazily at run time: a sync child must not carry the test fixtures (pytest)
    # in its peak RSS, and the parent needs no inboxd modules at all.
    from tests.services.dovecot import DovecotServer, ImapUser

LOOPBACK = "127.0.0.1"
CACHE = ROOT / ".bench" / "sync-mail"
#: Bump when the generator changes so cached mailboxes are made again.
GEN_VERSION = 1
GEN_SEED = 20_000
MAILBOX = "bench"
PASSWORD = "bench-password"
MIB = 1024 * 1024

# Targets from the issue.
TARGET_FULL_RATIO = 0.80  # inboxd msg/s >= 80% of mbsync's
TARGET_NOCHANGE_S = 0.2
TARGET_RSS_MB = 150.0
#: Stand-in sets of --bounds: what is made free in each extra full sync.
BOUNDS: tuple[tuple[str, ...], ...] = (("parser",), ("parser", "zstd"))
_STAND_IN_NAMES = {"parser": "parsing", "zstd": "compression"}
TARGET_RTT_RATIO = 1.5  # inboxd time <= 1.5 x mbsync's


# --------------------------------------------------------------------------- mail generator


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


_SYLLABLES = _words(
    "ka lo mi ne ru ta po se di an or el ul ve zo qu ir ba fe gu ström grü ße na ïve ca fé ço"
)
_NAMES = _words(
    "Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy "
    "Rupert Sybil Trent Victor Walter Zoë José Björn François"
)
_DOMAINS = _words(
    "example.com example.org example.net mail.example.com lists.example.org "
    "news.example.net shop.example.com corp.example.org"
)
_TOPICS = _words(
    "Quarterly report|Re: lunch on Friday?|Your invoice #{n}|Build failed on main|"
    "Meeting notes {n}|Fwd: contract draft|Weekly newsletter #{n}|Re: Re: the plan|"
    "Photos from the trip|Password reset requested|Ticket {n} updated|Welcome aboard",
    "|",
)


class _Pools:
    """Deterministic text and base64 material that messages are cut from (fast to slice)."""

    def __init__(self) -> None:
        rng = random.Random(GEN_SEED)
        words = [
            "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(4000)
        ]
        lines: list[str] = []
        line: list[str] = []
        width = total = 0
        while total < 1_500_000:
            word = rng.choice(words)
            if width + len(word) + 1 > 72:
                lines.append(" ".join(line))
                total += width
                line, width = [], 0
            line.append(word)
            width += len(word) + 1
        self.text = "\n".join(lines).encode()
        self.b64 = base64.encodebytes(rng.randbytes(2_600_000))  # 76-char lines

    def slice_text(self, rng: random.Random, size: int) -> bytes:
        size = min(size, len(self.text) - 1)
        start = self.text.find(b"\n", rng.randrange(len(self.text) - size)) + 1
        chunk = self.text[start : start + size]
        cut = chunk.rfind(b"\n")
        return (chunk[:cut] if cut > 0 else chunk) + b"\n"

    def slice_b64(self, rng: random.Random, size: int) -> bytes:
        line = 77
        lines = max(1, min(size // line, len(self.b64) // line - 1))
        start = rng.randrange(len(self.b64) // line - lines) * line
        return self.b64[start : start + lines * line]


_POOLS: _Pools | None = None


def _pools() -> _Pools:
    global _POOLS
    if _POOLS is None:
        _POOLS = _Pools()
    return _POOLS


@dataclass(frozen=True)
class GeneratedMessage:
    """One generated message (LF line endings, as Maildir stores them)."""

    index: int
    raw: bytes
    date: datetime
    flags: str  # Maildir info flags, sorted: "", "S", "FS", "RS"


def _address(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(_NAMES)
    last = rng.choice(_NAMES)
    return f"{name} {last}", f"{name.lower()}.{last.lower()}@{rng.choice(_DOMAINS)}"


def _encode_name(name: str) -> str:
    if name.isascii():
        return f'"{name}"'
    return "=?UTF-8?B?" + base64.b64encode(name.encode()).decode() + "?="


def _headers(index: int, rng: random.Random, date: datetime, bulk: bool) -> list[str]:
    name, addr = _address(rng)
    stamp = email.utils.format_datetime(date)
    host = rng.choice(_DOMAINS)
    out = [f"Return-Path: <{addr}>", "Delivered-To: me@example.com"]
    for hop in range(rng.randint(2, 5)):
        ip = f"192.0.2.{rng.randint(1, 254)}"
        out.append(
            f"Received: from mx{hop}.{host} (mx{hop}.{host} [{ip}])\n"
            f"\tby mail.example.com (Postfix) with ESMTPS id {rng.getrandbits(40):010X}\n"
            f"\tfor <me@example.com>; {stamp}"
        )
    if rng.random() < 0.7:
        sig = base64.b64encode(rng.randbytes(256)).decode()
        folded = "\n\t ".join(sig[i : i + 70] for i in range(0, len(sig), 70))
        out.append(
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={host}; s=s1;\n"
            f"\th=from:to:subject:date:message-id:mime-version;\n"
            f"\tbh={base64.b64encode(rng.randbytes(32)).decode()};\n\tb={folded}"
        )
    subject = rng.choice(_TOPICS).format(n=index)
    if rng.random() < 0.1:
        subject = "=?UTF-8?Q?" + subject.replace(" ", "_") + "_=C3=A9t=C3=A9?="
    out += [
        f"From: {_encode_name(name)} <{addr}>",
        "To: Me <me@example.com>",
    ]
    if rng.random() < 0.25:
        out.append("Cc: " + ", ".join(f"{n} <{a}>" for n, a in (_address(rng) for _ in range(3))))
    out += [f"Subject: {subject}", f"Date: {stamp}"]
    if rng.random() >= 0.005:  # a few messages have no Message-ID
        out.append(f"Message-ID: <{index:08d}.{rng.getrandbits(48):012x}@{host}>")
    if rng.random() < 0.3:
        parent = f"<{rng.getrandbits(48):012x}@{host}>"
        out += [f"In-Reply-To: {parent}", f"References: {parent}"]
    if bulk:
        out += [
            f"List-Id: Newsletter <news.{host}>",
            f"List-Unsubscribe: <https://{host}/unsubscribe/{rng.getrandbits(64):x}>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "Precedence: bulk",
        ]
    out.append("MIME-Version: 1.0")
    return out


def _html(text: bytes, rng: random.Random) -> bytes:
    paras = text.split(b"\n")
    link = f'<p><a href="https://example.com/r/{rng.getrandbits(32):x}">Read more</a></p>\n'
    return (
        b"<html><head><style>p{margin:0 0 1em;font-family:sans-serif}</style></head><body>\n"
        + b"".join(b'<p style="color:#333">' + p + b"</p>\n" for p in paras if p)
        + link.encode()
        + b"</body></html>\n"
    )


def generate_message(index: int) -> GeneratedMessage:
    """Message ``index`` of the benchmark mailbox (the same bytes every time).

    Sizes: the text follows a lognormal (median ~2 KB); a third are multipart/alternative
    with HTML; 6% carry a 50-500 KB attachment; 0.2% a 1.5-2.5 MB one.
    """
    rng = random.Random(GEN_SEED * 1_000_003 + index)
    pools = _pools()
    base = datetime(2022, 1, 1, tzinfo=UTC)
    date = base + timedelta(seconds=index * 4000 + rng.randrange(3600))
    kind = rng.random()
    bulk = 0.062 <= kind < 0.30
    headers = _headers(index, rng, date, bulk)
    text_size = int(min(300_000, max(200, rng.lognormvariate(math.log(2000), 1.0))))
    text = pools.slice_text(rng, text_size)
    boundary = f"=_b{index:x}_{rng.getrandbits(32):08x}"
    text_part = "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    if kind < 0.062:
        size = (
            rng.randint(1_500_000, 2_500_000)
            if kind < 0.002
            else int(math.exp(rng.uniform(math.log(50_000), math.log(500_000))))
        )
        filename = f"document-{index}.pdf" if rng.random() < 0.6 else f"photo-{index}.jpg"
        ctype = "application/pdf" if filename.endswith(".pdf") else "image/jpeg"
        headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        body = (
            f"This is a multi-part message in MIME format.\n\n--{boundary}\n{text_part}".encode()
            + text
            + (
                f'\n--{boundary}\nContent-Type: {ctype}; name="{filename}"\n'
                f"Content-Transfer-Encoding: base64\n"
                f'Content-Disposition: attachment; filename="{filename}"\n\n'
            ).encode()
            + pools.slice_b64(rng, size)
            + f"\n--{boundary}--\n".encode()
        )
    elif kind < 0.40:
        headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        body = (
            f"--{boundary}\n{text_part}".encode()
            + text
            + (
                f"\n--{boundary}\nContent-Type: text/html; charset=utf-8\n"
                "Content-Transfer-Encoding: 8bit\n\n"
            ).encode()
            + _html(text, rng)
            + f"\n--{boundary}--\n".encode()
        )
    else:
        headers += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
        body = text
    raw = "\n".join(headers).encode() + b"\n\n" + body
    roll = rng.random()
    flags = "FS" if roll < 0.03 else "RS" if roll < 0.06 else "S" if roll < 0.8 else ""
    return GeneratedMessage(index, raw, date, flags)


_CACHED_NAME = re.compile(r"\.M(\d+)P")


def corpus(count: int) -> dict[int, Path]:
    """Files of messages 0..count-1 in the cache (made where missing): index -> path."""
    cur = CACHE / f"v{GEN_VERSION}" / "cur"
    cur.mkdir(parents=True, exist_ok=True)
    found: dict[int, Path] = {}
    for path in cur.iterdir():
        match = _CACHED_NAME.search(path.name)
        if match and path.stat().st_size > 0:
            found[int(match.group(1))] = path
    missing = [i for i in range(count) if i not in found]
    if missing:
        print(f"generating {len(missing)} messages into {cur} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        for i in missing:
            msg = generate_message(i)
            stamp = int(msg.date.timestamp())
            # Dovecot's own naming: S= is the size, W= the size with CRLF line endings.
            size, vsize = len(msg.raw), len(msg.raw) + msg.raw.count(b"\n")
            name = f"{stamp}.M{i:06d}P1Q1.bench,S={size},W={vsize}:2,{msg.flags}"
            tmp = cur.parent / f".{name}.tmp"
            tmp.write_bytes(msg.raw)
            os.utime(tmp, (stamp, stamp))
            tmp.replace(cur / name)
            found[i] = cur / name
        print(f"  done in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    return {i: found[i] for i in range(count)}


def fill_maildir(user: ImapUser, count: int) -> None:
    """Put messages 0..count-1 into the user's INBOX (cur/) before its first login.

    Hard links when the cache is on the same file system (Dovecot never rewrites a Maildir
    file, it only renames it within its own folder), copies otherwise."""
    st = user.maildir.stat()
    target = user.maildir / "cur"
    for path in corpus(count).values():
        dest = target / path.name
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)
        if os.geteuid() == 0:
            os.chown(dest, st.st_uid, st.st_gid)


# --------------------------------------------------------------------------- IMAP helpers


@dataclass
class MailboxFacts:
    """What the server says about the benchmark INBOX."""

    messages: int
    bytes: int
    sizes: list[int]
    imaplib_seconds: float | None = None  # plain imaplib body fetch, reference only


def _ok(answer: tuple[str, Any], what: str) -> Any:
    typ, data = answer
    if typ != "OK":
        raise RuntimeError(f"{what} failed: {typ} {data!r:.300}")
    return data


def _login(user: ImapUser) -> imaplib.IMAP4:
    conn = imaplib.IMAP4(user.host, user.port, timeout=120)
    conn.login(user.username, user.password)
    return conn


def warm_up(user: ImapUser, *, reference: bool) -> MailboxFacts:
    """Let Dovecot index the Maildir and cache what both clients ask for, read every body
    once (page cache), and, with ``reference``, time a second body pass with plain imaplib
    in UID batches of 500 (no parsing, no storing)."""
    conn = _login(user)
    try:
        # Read-write, as mbsync opens it: the first such SELECT takes the \Recent flags.
        conn.select("INBOX")
        data = _ok(conn.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE)"), "FETCH")
        sizes: dict[int, int] = {}
        for line in data:
            if isinstance(line, bytes):
                m = re.search(rb"UID (\d+)", line)
                s = re.search(rb"RFC822\.SIZE (\d+)", line)
                if m and s:
                    sizes[int(m.group(1))] = int(s.group(1))
        uids = sorted(sizes)
        passes = 2 if reference else 1
        took = None
        for _ in range(passes):
            started = time.perf_counter()
            for lo in range(0, len(uids), 500):
                chunk = uids[lo : lo + 500]
                fetch = conn.uid("FETCH", f"{chunk[0]}:{chunk[-1]}", "(UID BODY.PEEK[])")
                _ok(fetch, "FETCH")
                del fetch
            took = time.perf_counter() - started
        facts = [sizes[u] for u in uids]
        return MailboxFacts(len(uids), sum(facts), facts, took if reference else None)
    finally:
        with contextlib.suppress(Exception):
            conn.logout()


def append_new(user: ImapUser, first: int, count: int) -> int:
    """APPEND generated messages first..first+count-1 over one connection; returns bytes."""
    conn = _login(user)
    total = 0
    try:
        for i in range(first, first + count):
            msg = generate_message(i)
            when = imaplib.Time2Internaldate(msg.date.timestamp())
            flags = "(\\Seen)" if msg.flags else None
            _ok(conn.append("INBOX", flags, when, msg.raw), "APPEND")
            total += len(msg.raw) + msg.raw.count(b"\n")
    finally:
        with contextlib.suppress(Exception):
            conn.logout()
    return total


# --------------------------------------------------------------------------- latency proxy


class DelayProxy:
    """Loopback TCP proxy that delays every chunk by ``one_way_ms`` in each direction (a
    pure latency; bandwidth is not limited and order is kept)."""

    def __init__(self, target_port: int, one_way_ms: float) -> None:
        self.target_port = target_port
        self.delay = one_way_ms / 1000
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("delay proxy did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, LOOPBACK, 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            self._pipe(client_r, server_w), self._pipe(server_r, client_w), return_exceptions=True
        )
        for w in (client_w, server_w):
            w.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await chunks.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        dst.write_eof()
                    return
                dst.write(data)
                await dst.drain()

        sender = asyncio.create_task(forward())
        try:
            while True:
                data = await src.read(256 * 1024)
                chunks.put_nowait((loop.time() + self.delay, data))
                if not data:
                    break
            await sender
        except (OSError, asyncio.IncompleteReadError):
            sender.cancel()


# --------------------------------------------------------------------------- measurements


@dataclass
class Run:
    """One measured sync."""

    tool: str
    seconds: float  # inboxd: job started_at -> finished_at; mbsync: process wall time
    wall: float  # the whole process
    rss_kb: int
    fetched: int | None = None
    ok: bool = True
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: CPU seconds the whole machine spent busy meanwhile (client, Dovecot, the rest)
    cpu: float | None = None


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (``/proc/stat``):
    the difference over a run is the CPU the client, Dovecot and anything else used."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    # user, nice, system, (idle, iowait), irq, softirq; not steal (another guest's time)
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def run_measured(
    command: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> tuple[float, int, int, str]:
    """Run a command (with ``env`` added to the environment) with its output appended to
    ``log``; returns wall seconds, exit code, peak RSS in KB of that process alone (from
    wait4) and its output."""
    # Write back what earlier runs left dirty, so no run pays for another's page cache.
    os.sync()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        start = out.tell()
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env else None,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    with log.open("rb") as read:
        read.seek(start)
        output = read.read().decode(errors="replace")
    return wall, proc.returncode, usage.ru_maxrss, output


_STAND_INS = '''\
"""Written by bench/sync.py --bounds: replaces parts of inboxd with stand-ins that cost
(almost) nothing, in every process of the sync (its helpers are forked from a forkserver
that is a new interpreter, so a patch in the sync's process alone would not reach them)."""
import os

_WHAT = os.environ.get("INBOXD_BENCH_STAND_INS", "").split(",")
if "parser" in _WHAT:
    import datetime as _dt

    import inboxd.sync.batch_store as _batch_store
    from inboxd.mail.message import ParsedMessage as _Parsed

    _DATE = _dt.datetime(2024, 1, 1, tzinfo=_dt.UTC)
    _SNIPPET = "A snippet as long as most are, the first words of the text of a message. " * 2

    def _free_parse(raw):
        # Fields of a typical size; a distinct Message-ID so every message is stored.
        return _Parsed(
            message_id=f"{hash(raw)}@bench.invalid",
            from_addr="sender@example.com",
            from_name="A Sender",
            to=["me@example.com"],
            subject="A subject of ordinary length for a message",
            date=_DATE,
            snippet=_SNIPPET[:200],
            size=len(raw),
        )

    _batch_store.summarize_message = _free_parse
if "zstd" in _WHAT:
    import inboxd.store.bodies as _bodies

    _bodies.pack_many = lambda raws: [bytes(raw) for raw in raws]
'''


def stand_in_env(work: Path, stand_ins: Sequence[str]) -> dict[str, str]:
    """Environment for a child whose ``stand_ins`` ("parser": message parsing, "zstd":
    compression) cost nothing: the bound a faster (native) implementation could reach."""
    site = work / "stand-ins"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_STAND_INS)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "INBOXD_BENCH_STAND_INS": ",".join(stand_ins)}


def run_inboxd(
    work: Path,
    db: Path,
    user: ImapUser,
    port: int,
    log: Path,
    wrap: Sequence[str] = (),
    processes: int | None = None,
    stand_ins: Sequence[str] = (),
) -> Run:
    """One sync job of ``user`` into the SQLite database ``db``, in a child process
    (started through ``wrap``, e.g. a profiler, when given); ``processes`` overrides
    inboxd's INBOXD_SYNC_PROCESSES; ``stand_ins`` (see :func:`stand_in_env`) replace
    parts of inboxd with free stand-ins."""
    result_file = work / f"result-{time.monotonic_ns()}.json"
    spec = {
        "db": str(db),
        "data_dir": str(db.parent / "data"),
        "host": user.host,
        "port": port,
        "username": user.username,
        "password": user.password,
        "result": str(result_file),
        "processes": processes,
    }
    spec_file = result_file.with_suffix(".spec")
    spec_file.write_text(json.dumps(spec))
    spec_file.chmod(0o600)
    command = [*wrap, sys.executable, str(Path(__file__).resolve()), "--child", str(spec_file)]
    env = stand_in_env(work, stand_ins) if stand_ins else None
    wall, code, rss, output = run_measured(command, log, env)
    spec_file.unlink()
    if code != 0 or not result_file.exists():
        raise RuntimeError(f"inboxd sync child failed ({code}):\n{output[-3000:]}")
    got = json.loads(result_file.read_text())
    result_file.unlink()
    report = got.get("result") or {}
    return Run(
        "inboxd",
        seconds=got["job_seconds"],
        wall=wall,
        rss_kb=rss,
        fetched=report.get("fetched"),
        cpu=got.get("machine_cpu"),
        ok=got["status"] == "completed",
        detail=got.get("error") or "",
        extra={
            "self_rss_kb": got["rss_kb"],
            "report": report,
            "startup": got["startup"],
            "batch": got["batch"],
        },
    )


def child(spec: dict[str, Any]) -> None:
    """Inside the child process: open an App, run one sync job, write the figures."""
    started = time.perf_counter()
    from inboxd.app import App
    from inboxd.config import Settings
    from inboxd.jobs.worker import Worker
    from inboxd.store.accounts import Accounts
    from inboxd.sync import helpers as imap_helper
    from inboxd.sync.task import sync_dedupe_key

    extra = {"sync_processes": spec["processes"]} if spec.get("processes") else {}
    settings = Settings(
        database_url=f"sqlite:///{spec['db']}",
        data_dir=Path(spec["data_dir"]),
        poll_interval_ms=20,
        task_modules=[],
        **extra,
    )
    if settings.sync_processes > 1:
        # As in a running worker: its helpers' forkserver is up before the first sync.
        imap_helper.warm_up(wait=True)
    app = App.open(settings)
    try:
        registry = Accounts(app.engine, app.settings)
        found = [a for a in registry.list() if a.name == spec["username"]]
        account = found[0] if found else None
        if account is None:
            account = registry.add(
                "imap",
                spec["username"],
                {
                    "host": spec["host"],
                    "port": spec["port"],
                    "security": "none",
                    "username": spec["username"],
                },
                secret={"password": spec["password"]},
            )
        job = app.queue.enqueue(
            "sync", account_id=account.id, dedupe_key=sync_dedupe_key(account.id)
        )
        startup = time.perf_counter() - started
        busy = machine_busy_seconds()
        Worker(app, concurrency=1).run(install_signals=False, max_jobs=1)
        busy = machine_busy_seconds() - busy
        done = app.queue.get(job.id)
        assert done.started_at is not None and done.finished_at is not None
        out = {
            "status": str(getattr(done.status, "value", done.status)),
            "error": done.error,
            "result": done.result,
            "job_seconds": (done.finished_at - done.started_at).total_seconds(),
            "startup": startup,
            "machine_cpu": busy,
            "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "batch": [settings.sync_batch_messages, settings.sync_batch_bytes],
        }
    finally:
        app.close()
    Path(spec["result"]).write_text(json.dumps(out, default=str))


_MBSYNCRC = """\
{fsync}

IMAPAccount bench
Host {host}
Port {port}
User {user}
Pass {password}
SSLType None
AuthMechs LOGIN

IMAPStore far
Account bench

MaildirStore near
Path {near}/
Inbox {near}/INBOX
SubFolders Verbatim

Channel bench
Far :far:
Near :near:
Patterns INBOX
Create Near
Sync Pull
SyncState *
"""


def mbsync_rc(work: Path, user: ImapUser, port: int, *, fsync: bool) -> Path:
    """An mbsyncrc pulling the user's INBOX into a fresh Maildir under ``work``."""
    near = work / "maildir"
    shutil.rmtree(near, ignore_errors=True)
    near.mkdir(parents=True)
    rc = work / "mbsyncrc"
    rc.write_text(
        _MBSYNCRC.format(
            host=user.host,
            port=port,
            user=user.username,
            password=user.password,
            near=near,
            fsync="FSync yes" if fsync else "FSync no",
        )
    )
    rc.chmod(0o600)
    return rc


def run_mbsync(rc: Path, log: Path) -> Run:
    """``mbsync -a`` with ``rc``; the time is the process's wall time."""
    busy = machine_busy_seconds()
    wall, code, rss, output = run_measured(["mbsync", "-c", str(rc), "-a"], log)
    busy = machine_busy_seconds() - busy
    inbox = rc.parent / "maildir" / "INBOX"
    files = sum(len(os.listdir(inbox / d)) for d in ("cur", "new") if (inbox / d).is_dir())
    return Run(
        "mbsync",
        seconds=wall,
        wall=wall,
        rss_kb=rss,
        ok=code == 0,
        detail="" if code == 0 else output[-3000:],
        extra={"files": files},
        cpu=busy,
    )


# --------------------------------------------------------------------------- profile

PROFILE_OUT = ROOT / ".bench" / "sync-profile.txt"
_PY_SPY_RATE = 200
_FRAME_PATH = re.compile(r" \((/[^()]*?)([^/()]+\.py):(\d+)\)$")
_PACKAGE_ROOT = re.compile(r".*/(?:site-packages|src)/")
_IDLE = re.compile(r"(?:Condition|Event)\.wait |_PollLikeSelector\.select ")


def _short_frame(frame: str) -> str:
    """``func (/abs/path/src/inboxd/x.py:12)`` -> ``func (inboxd/x.py:12)``."""
    match = _FRAME_PATH.search(frame)
    if match is None:
        return frame
    folder = _PACKAGE_ROOT.sub("", match.group(1))
    folder = "" if folder.startswith("/") else folder
    return f"{frame[: match.start()]} ({folder}{match.group(2)}:{match.group(3)})"


def profile_full_sync(py_spy: str, work: Path, user: ImapUser) -> list[str]:
    """One more inboxd full sync under ``py-spy record`` (all threads, native time
    included); the raw stacks go to .bench/sync-profile.txt, the top costs are returned."""
    db = work / "inboxd-profile" / "inboxd.db"
    db.parent.mkdir(parents=True)
    PROFILE_OUT.parent.mkdir(parents=True, exist_ok=True)
    wrap = [py_spy, "record", "-s", "-t", "-r", str(_PY_SPY_RATE), "-f", "raw"]
    run = run_inboxd(
        work, db, user, user.port, work / "bench.log", [*wrap, "-o", str(PROFILE_OUT), "--"]
    )
    shutil.rmtree(db.parent, ignore_errors=True)
    lines = [
        f"py-spy profile of one more full sync (job {run.seconds:.1f}s with sampling on; "
        f"raw stacks in {PROFILE_OUT.relative_to(ROOT)}), seconds of samples:"
    ]
    return lines + summarize_profile(PROFILE_OUT.read_text().splitlines())


def summarize_profile(raw: Sequence[str], top: int = 12) -> list[str]:
    """Per thread: sampled seconds and the frames with the most self time; then the inboxd
    functions with the most inclusive time (py-spy's raw format: ``a;b;c count``)."""
    threads: dict[str, int] = {}
    own: dict[str, dict[str, int]] = {}
    inclusive: dict[str, int] = {}
    for line in raw:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        head, *frames = stack.split(";")
        thread = re.sub(r"^thread \(\w+\):? ?|[-_]\d+$", "", head) or "main"
        frames = [_short_frame(f) for f in frames]
        threads[thread] = threads.get(thread, 0) + count
        if frames:
            mine = own.setdefault(thread, {})
            mine[frames[-1]] = mine.get(frames[-1], 0) + count
        for name in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            inclusive[name] = inclusive.get(name, 0) + count
    out: list[str] = []
    for thread, count in sorted(threads.items(), key=lambda kv: -kv[1]):
        waiting = sum(n for f, n in own.get(thread, {}).items() if _IDLE.match(f))
        if count - waiting < _PY_SPY_RATE / 2:
            continue  # an idle thread (py-spy cannot tell waiting from running here)
        out.append(f"  thread {thread}: {count / _PY_SPY_RATE:.1f}s")
        ranked = sorted(own.get(thread, {}).items(), key=lambda kv: -kv[1])[:top]
        out += [f"    self {n / _PY_SPY_RATE:6.2f}s  {frame}" for frame, n in ranked]
    ours = [(k, v) for k, v in inclusive.items() if "(inboxd/" in k or "(imaplib.py" in k]
    out.append("  inclusive, inboxd and imaplib functions:")
    for frame, n in sorted(ours, key=lambda kv: -kv[1])[: top * 2]:
        out.append(f"    {n / _PY_SPY_RATE:6.2f}s  {frame}")
    return out


# --------------------------------------------------------------------------- report


def _cmd_version(command: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(command), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def _dist(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def machine_facts() -> list[str]:
    """nproc, RAM, CPU, versions."""
    mem = "?"
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    spec = importlib.util.find_spec("inboxd")
    where = str(Path(spec.origin).parent) if spec and spec.origin else "?"
    commit = _cmd_version(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: {len(os.sched_getaffinity(0))} CPUs ({cpu}), {mem} RAM, "
        f"{platform.system()} {platform.release()}; load average now {load} (1/5/15 min)",
        f"python {platform.python_version()}, inboxd {_dist('inboxd')}, "
        f"IMAPClient {_dist('IMAPClient')}, SQLAlchemy {_dist('SQLAlchemy')}, "
        f"SQLite {sqlite3.sqlite_version}; inboxd code: {where} (repo at {commit})",
        f"{_cmd_version(['dovecot', '--version']).join(['dovecot ', ''])}, "
        f"{_cmd_version(['mbsync', '--version'])}",
    ]


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


@dataclass
class Figures:
    """Everything the table is made of."""

    facts: MailboxFacts
    new_bytes: int
    new_count: int
    rtt_facts: MailboxFacts | None
    rtt_ms: float
    inboxd: dict[str, Run] = field(default_factory=dict)
    mbsync: dict[str, Run] = field(default_factory=dict)
    user: ImapUser | None = None  # of the main mailbox


def _mb(kb: int) -> str:
    return f"{kb / 1024:.0f} MB"


def _verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def _variant_rows(i: dict[str, Run], n: int, rm: float) -> list[tuple[str, str, str, str, str]]:
    """Rows of the other full syncs of the main mailbox: without helpers, --bounds."""
    rows: list[tuple[str, str, str, str, str]] = []

    def add(label: str, a: str, b: str, ratio: str = "") -> None:
        rows.append((label, a, b, ratio, ""))

    if "full_single" in i:
        fs = i["full_single"]
        rs = _rate(n, fs.seconds)
        add("  full sync, no helpers, msg/s", f"{rs:,.0f}", f"{rm:,.0f}", f"{rs / rm:.2f}")
        add("  full sync, no helpers, peak RSS", _mb(fs.rss_kb), "")
    for stand_ins in BOUNDS:
        if (fb := i.get("bound:" + ",".join(stand_ins))) is not None:
            rb = _rate(n, fb.seconds)
            label = " and ".join(_STAND_IN_NAMES[s] for s in stand_ins)
            add(f"  bound: {label} free, msg/s", f"{rb:,.0f}", f"{rm:,.0f}", f"{rb / rm:.2f}")
            if fb.cpu is not None:
                add("    machine CPU per message, us", f"{fb.cpu / n * 1e6:,.0f}", "")
    return rows


def table(fig: Figures) -> list[str]:
    """The side-by-side table."""
    i, m = fig.inboxd, fig.mbsync
    n, nbytes = fig.facts.messages, fig.facts.bytes
    rows: list[tuple[str, str, str, str, str]] = []

    def add(label: str, a: str, b: str, ratio: str = "", verdict: str = "") -> None:
        rows.append((label, a, b, ratio, verdict))

    if "full" in i and "full" in m:
        fi, fm = i["full"], m["full"]
        ri, rm = _rate(n, fi.seconds), _rate(n, fm.seconds)
        add(
            f"full sync ({n} msgs) msg/s",
            f"{ri:,.0f}",
            f"{rm:,.0f}",
            f"{ri / rm:.2f}",
            f"{_verdict(ri >= TARGET_FULL_RATIO * rm)} (>= {TARGET_FULL_RATIO:.2f})",
        )
        add(
            "full sync MB/s",
            f"{_rate(nbytes / MIB, fi.seconds):,.1f}",
            f"{_rate(nbytes / MIB, fm.seconds):,.1f}",
            f"{fm.seconds / fi.seconds:.2f}",
        )
        add("full sync seconds", f"{fi.seconds:.2f}", f"{fm.seconds:.2f}")
        add(
            "  process wall (incl. start-up)",
            f"{fi.wall:.2f}",
            f"{fm.wall:.2f}",
            f"{fm.wall / fi.wall:.2f}",
        )
        if fi.cpu is not None and fm.cpu is not None:
            add(
                "  machine CPU per message, us",
                f"{fi.cpu / n * 1e6:,.0f}",
                f"{fm.cpu / n * 1e6:,.0f}",
                f"{fi.cpu / fm.cpu:.2f}",
            )
        report = fi.extra.get("report") or {}
        helper_kb = int(report.get("helper_peak_rss_kb") or 0)
        add(
            "full sync peak RSS (sync process)",
            _mb(fi.rss_kb),
            _mb(fm.rss_kb),
            "",
            f"{_verdict(max(fi.rss_kb, helper_kb) / 1024 < TARGET_RSS_MB)} "
            f"(< {TARGET_RSS_MB:.0f} MB each)",
        )
        if helper_kb:
            add(f"  peak RSS of its {report.get('helpers')} helper process(es)", _mb(helper_kb), "")
        rows += _variant_rows(i, n, rm)
    if "nochange" in i and "nochange" in m:
        ci, cm = i["nochange"], m["nochange"]
        add(
            "no-change re-sync seconds",
            f"{ci.seconds:.3f}",
            f"{cm.seconds:.3f}",
            "",
            f"{_verdict(ci.seconds < TARGET_NOCHANGE_S)} (< {TARGET_NOCHANGE_S} s)",
        )
        add("  process wall (incl. start-up)", f"{ci.wall:.2f}", f"{cm.wall:.3f}")
        add("no-change re-sync peak RSS", _mb(ci.rss_kb), _mb(cm.rss_kb))
    if "plus" in i and "plus" in m:
        pi, pm = i["plus"], m["plus"]
        add(f"+{fig.new_count} re-sync seconds", f"{pi.seconds:.3f}", f"{pm.seconds:.3f}")
        add(
            f"+{fig.new_count} re-sync msg/s",
            f"{_rate(fig.new_count, pi.seconds):,.0f}",
            f"{_rate(fig.new_count, pm.seconds):,.0f}",
        )
        add(
            f"+{fig.new_count} re-sync MB/s",
            f"{_rate(fig.new_bytes / MIB, pi.seconds):,.1f}",
            f"{_rate(fig.new_bytes / MIB, pm.seconds):,.1f}",
        )
        add(f"+{fig.new_count} re-sync peak RSS", _mb(pi.rss_kb), _mb(pm.rss_kb))
    if "rtt" in i and "rtt" in m and fig.rtt_facts is not None:
        ti, tm = i["rtt"], m["rtt"]
        k = fig.rtt_facts.messages
        add(
            f"{fig.rtt_ms:.0f} ms RTT full sync ({k}) s",
            f"{ti.seconds:.2f}",
            f"{tm.seconds:.2f}",
            f"{ti.seconds / tm.seconds:.2f}",
            f"{_verdict(ti.seconds <= TARGET_RTT_RATIO * tm.seconds)} (<= {TARGET_RTT_RATIO}x)",
        )
        add("  process wall (incl. start-up)", f"{ti.wall:.2f}", f"{tm.wall:.2f}")
        if "rtt_direct" in i and "rtt_direct" in m:
            di, dm = i["rtt_direct"], m["rtt_direct"]
            add(f"  same {k} msgs without the proxy s", f"{di.seconds:.2f}", f"{dm.seconds:.2f}")
            add(
                "  time added by the RTT s",
                f"{ti.seconds - di.seconds:.2f}",
                f"{tm.seconds - dm.seconds:.2f}",
            )
        if "rtt_nochange" in i and "rtt_nochange" in m:
            add(
                f"{fig.rtt_ms:.0f} ms RTT no-change re-sync s",
                f"{i['rtt_nochange'].seconds:.3f}",
                f"{m['rtt_nochange'].seconds:.3f}",
            )
    head = ("", "inboxd", "mbsync", "inboxd/mbsync", "target met?")
    widths = [max(len(r[c]) for r in [*rows, head]) for c in range(5)]
    out = [
        "  ".join(
            (cell.ljust(widths[c]) if c in (0, 4) else cell.rjust(widths[c]))
            for c, cell in enumerate(row)
        ).rstrip()
        for row in [head, *rows]
    ]
    out.insert(1, "-" * len(out[0]))
    return out


def mailbox_lines(fig: Figures) -> list[str]:
    """Size distribution of the mailbox and the plain-imaplib reference."""
    sizes = sorted(fig.facts.sizes)
    n = len(sizes)
    q = statistics.quantiles(sizes, n=100) if n > 1 else [float(sizes[0])] * 99
    lines = [
        f"mailbox: {n} messages, {fig.facts.bytes / MIB:.0f} MB (RFC822.SIZE), "
        f"mean {statistics.fmean(sizes) / 1024:.1f} KB, median {q[49] / 1024:.1f} KB, "
        f"p90 {q[89] / 1024:.0f} KB, p99 {q[98] / 1024:.0f} KB, max {sizes[-1] / 1024:.0f} KB; "
        f"{sum(1 for s in sizes if s >= 50_000)} >= 50 KB",
    ]
    if fig.facts.imaplib_seconds:
        t = fig.facts.imaplib_seconds
        lines.append(
            f"reference: plain imaplib UID FETCH BODY.PEEK[] in 500-UID batches (no parsing, "
            f"no store): {_rate(n, t):,.0f} msg/s, {_rate(fig.facts.bytes / MIB, t):,.0f} MB/s"
        )
    return lines


def sanity_lines(fig: Figures) -> list[str]:
    """Did every run complete and fetch what it should?"""
    out = []
    for name, runs in (("inboxd", fig.inboxd), ("mbsync", fig.mbsync)):
        for phase, run in runs.items():
            if not run.ok:
                out.append(f"WARNING: {name} {phase} failed: {run.detail[-500:]}")
    expected = {
        "full": fig.facts.messages,
        "full_single": fig.facts.messages,
        "nochange": 0,
        "plus": fig.new_count,
        "rtt": fig.rtt_facts.messages if fig.rtt_facts else None,
        "rtt_direct": fig.rtt_facts.messages if fig.rtt_facts else None,
        "rtt_nochange": 0,
    }
    for phase, run in fig.inboxd.items():
        want = expected.get(phase)
        if want is not None and run.fetched != want:
            out.append(f"WARNING: inboxd {phase} fetched {run.fetched}, expected {want}")
    total = {
        "full": fig.facts.messages,
        "plus": fig.facts.messages + fig.new_count,
        "rtt": fig.rtt_facts.messages if fig.rtt_facts else None,
        "rtt_direct": fig.rtt_facts.messages if fig.rtt_facts else None,
    }
    for phase, run in fig.mbsync.items():
        want = total.get(phase)
        if want is not None and run.extra.get("files") != want:
            out.append(f"WARNING: mbsync {phase} left {run.extra.get('files')} files, want {want}")
    return out


# --------------------------------------------------------------------------- driver


def _work_root(args: argparse.Namespace) -> str | None:
    """Where the synced copies go: ``--work-dir``, else /dev/shm when it has room (a RAM
    file system: neither tool waits for the disk or for other processes' fsyncs, which make
    mbsync's file-per-message writes vary five-fold on a shared VM), else the temp dir."""
    if args.work_dir:
        return str(args.work_dir)
    shm = Path("/dev/shm")
    need = 4 * 25_000 * (args.messages + args.rtt_messages + args.new)
    with contextlib.suppress(OSError):
        if os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > need:
            return str(shm)
    return None


def file_system(path: Path) -> str:
    """The type of the file system holding ``path`` (from /proc/mounts)."""
    best, kind = "", "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


def _server() -> DovecotServer:
    from tests.services.dovecot import DovecotServer

    return DovecotServer()


def _progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _best(runs: dict[str, Run], key: str, run: Run) -> None:
    if key not in runs or run.seconds < runs[key].seconds:
        runs[key] = run


def _full_syncs(
    fig: Figures, key: str, work: Path, user: ImapUser, port: int, args: argparse.Namespace
) -> tuple[Path, Path]:
    """``--repeat`` full syncs by each tool from scratch (the fastest kept); returns the
    mbsyncrc and the database of the last ones, for the re-syncs."""
    log = work / "bench.log"
    rc = db = Path()
    for rep in range(args.repeat):
        suffix = f" ({rep + 1}/{args.repeat})" if args.repeat > 1 else ""
        rc = mbsync_rc(work / f"mbsync-{key}", user, port, fsync=args.mbsync_fsync)
        _progress(f"mbsync full sync{suffix}")
        _best(fig.mbsync, key, run_mbsync(rc, log))
        if db != Path():
            shutil.rmtree(db.parent, ignore_errors=True)
        db = work / f"inboxd-{key}-{rep}" / "inboxd.db"
        db.parent.mkdir(parents=True)
        _progress(f"inboxd full sync{suffix}")
        _best(fig.inboxd, key, run_inboxd(work, db, user, port, log))
    if key == "full":
        single = work / f"inboxd-{key}-single" / "inboxd.db"
        single.parent.mkdir(parents=True)
        _progress("inboxd full sync without helper processes")
        fig.inboxd["full_single"] = run_inboxd(work, single, user, port, log, processes=1)
        shutil.rmtree(single.parent, ignore_errors=True)
        for stand_ins in BOUNDS if args.bounds else ():
            bound = work / f"inboxd-{key}-bound" / "inboxd.db"
            bound.parent.mkdir(parents=True)
            _progress(f"inboxd full sync with free stand-ins for: {', '.join(stand_ins)}")
            run = run_inboxd(work, bound, user, port, log, stand_ins=stand_ins)
            fig.inboxd["bound:" + ",".join(stand_ins)] = run
            shutil.rmtree(bound.parent, ignore_errors=True)
    return rc, db


def _run_main_mailbox(server: DovecotServer, work: Path, args: argparse.Namespace) -> Figures:
    user = server.add_user(MAILBOX, PASSWORD)
    fill_maildir(user, args.messages)
    _progress(f"warming up Dovecot on {args.messages} messages")
    fig = Figures(warm_up(user, reference=True), 0, args.new, None, args.rtt_ms, user=user)
    log = work / "bench.log"
    rc, db = _full_syncs(fig, "full", work, user, user.port, args)
    _progress("no-change re-syncs")
    fig.inboxd["nochange"] = run_inboxd(work, db, user, user.port, log)
    fig.mbsync["nochange"] = run_mbsync(rc, log)
    _progress(f"appending {args.new} messages, re-syncs")
    fig.new_bytes = append_new(user, args.messages, args.new)
    warm_up(user, reference=False)
    fig.inboxd["plus"] = run_inboxd(work, db, user, user.port, log)
    fig.mbsync["plus"] = run_mbsync(rc, log)
    return fig


def _run_rtt_mailbox(
    server: DovecotServer, work: Path, args: argparse.Namespace, fig: Figures
) -> None:
    user = server.add_user(f"{MAILBOX}-rtt", PASSWORD)
    fill_maildir(user, args.rtt_messages)
    _progress(f"warming up Dovecot on {args.rtt_messages} messages (RTT mailbox)")
    fig.rtt_facts = warm_up(user, reference=False)
    log = work / "bench.log"
    _progress("the same mailbox without the proxy:")
    _full_syncs(fig, "rtt_direct", work, user, user.port, args)
    with DelayProxy(user.port, args.rtt_ms / 2) as proxy:
        _progress(f"through the proxy ({args.rtt_ms:.0f} ms RTT):")
        rc, db = _full_syncs(fig, "rtt", work, user, proxy.port, args)
        _progress("no-change re-syncs through the proxy")
        fig.mbsync["rtt_nochange"] = run_mbsync(rc, log)
        fig.inboxd["rtt_nochange"] = run_inboxd(work, db, user, proxy.port, log)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000, help="size of the main INBOX")
    parser.add_argument("--rtt-messages", type=int, default=2000, help="INBOX behind the proxy")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="round-trip time added")
    parser.add_argument("--new", type=int, default=100, help="messages appended for re-sync")
    parser.add_argument(
        "--repeat", type=int, default=2, help="full syncs per tool and mailbox (fastest kept)"
    )
    parser.add_argument(
        "--mbsync-fsync",
        action="store_true",
        help="leave mbsync's FSync at its default (yes); by default it is off, like inboxd's "
        "SQLite (WAL, synchronous=NORMAL: no flush per transaction)",
    )
    parser.add_argument(
        "--py-spy",
        metavar="PATH",
        help="py-spy binary: profile one more inboxd full sync with it and print the top costs",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="where the synced copies (inboxd's SQLite, mbsync's Maildir) go; default "
        "/dev/shm when it has room, else the temp dir",
    )
    parser.add_argument(
        "--bounds",
        action="store_true",
        help="also run full syncs with message parsing (then compression too) replaced by "
        "stand-ins that cost nothing: how far a native parser could take inboxd",
    )
    parser.add_argument("--keep", action="store_true", help="keep Dovecot's files and temp dirs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(Path(args.child).read_text()))
        return 0
    if shutil.which("mbsync") is None:
        print("mbsync not found: apt-get install isync", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="inboxd-bench-sync-", dir=_work_root(args)))
    server = _server()
    profile: list[str] = []
    try:
        server.start()
        _progress(f"Dovecot on 127.0.0.1:{server.port}, work dir {work}")
        fig = _run_main_mailbox(server, work, args)
        if args.rtt_messages > 0:
            _run_rtt_mailbox(server, work, args, fig)
        if args.py_spy:
            _progress("profiling one more inboxd full sync with py-spy")
            assert fig.user is not None
            profile = profile_full_sync(args.py_spy, work, fig.user)
    finally:
        if args.keep:
            import atexit

            atexit.unregister(server.close)
            server.stop()
            print(f"kept: {work} and {server.base_dir}", file=sys.stderr)
        else:
            server.close()
            shutil.rmtree(work, ignore_errors=True)
    print()
    for line in machine_facts():
        print(line)
    for line in mailbox_lines(fig):
        print(line)
    count, size = fig.inboxd["full"].extra["batch"]
    print(
        f"inboxd: one child process per sync (SQLite store, batches of <= {count} messages and "
        f"<= {size / MIB:g} MB); its time is the job's started_at -> finished_at, peak RSS "
        "is the child's (wait4)."
    )
    print(
        f"synced copies in {work} ({file_system(work)}); Dovecot's Maildir in /tmp "
        f"({file_system(Path('/tmp'))})"
    )
    print(
        "mbsync: `mbsync -a`, Sync Pull into a Maildir"
        + ("" if args.mbsync_fsync else ", FSync no")
        + "; its time is the process's wall time."
    )
    print()
    for line in table(fig):
        print(line)
    for line in sanity_lines(fig):
        print(line)
    if profile:
        print()
        for line in profile:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
