#!/usr/bin/env python3
"""Benchmark of the ``newsletter_extraction`` job (figures, not a test).

    python bench/newsletters.py [--newsletters 100] [--links 10] [--hosts 10] [--delay 0.05]
                                [--concurrency 16]

A Maildir of HTML newsletters (each with ``--links`` article links, a third of them shared
with other newsletters, and an unsubscribe link) is synced into a fresh store. The links
point at ``--hosts`` local servers (127.0.0.1, 127.0.0.2, …), each answering every hop after
``--delay`` seconds; a link redirects 1-3 times before its article. Measured: extraction
alone (store → bodies → links, newsletters per second), then the whole job on a worker in
this process (resolution through the guarded client), the most requests any one server saw
at once (the per-host cap), repeats answered from the cache, requests to unsubscribe
pages (must be 0), and the stored result's size (JSON, and as stored: compressed).
"""

# ruff: noqa: E402  (the sys.path fix below must run before the other imports)

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
# As in bench/sync.py: bench/queue.py must not shadow the standard library's `queue`.
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse
import contextlib
import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from tests.support.apps import make_app, running_worker, sync_and_index, wait_finished
from tests.support.link_server import LinkServer, Route

from inboxd.db.engine import reading
from inboxd.db.types import utcnow
from inboxd.jobs.model import JobStatus
from inboxd.mail.links import extract_links
from inboxd.mail.reading import parse_message
from inboxd.pipeline.newsletters import NewsletterParams, select_newsletters
from inboxd.store import newsletters as extractions
from inboxd.store.accounts import Accounts
from inboxd.store.bodies import read_bodies


def build(servers: list[LinkServer], count: int, per: int, delay: float) -> list[bytes]:
    """The newsletters, and each server's routes (chains of 1-3 hops to an article)."""
    rng = random.Random(7)
    shared: list[str] = []
    raws: list[bytes] = []
    now = datetime.now(UTC)
    serial = 0
    for n in range(count):
        links: list[str] = []
        for _ in range(per):
            if shared and rng.random() < 1 / 3:
                links.append(rng.choice(shared))
                continue
            serial += 1
            server = servers[serial % len(servers)]
            hops = 1 + serial % 3
            for h in range(hops - 1):
                server.routes[f"/l{serial}/{h}"] = Route(
                    status=302, headers={"Location": f"/l{serial}/{h + 1}"}, delay=delay
                )
            server.routes[f"/l{serial}/{hops - 1}"] = Route(body=b"<html>x</html>", delay=delay)
            url = server.url(f"/l{serial}/0?utm_source=bench")
            shared.append(url)
            links.append(url)
        unsubscribe = servers[0].url(f"/unsubscribe?n={n}")
        body = "".join(f'<p><a href="{u}">Article {i}</a></p>' for i, u in enumerate(links))
        body += f'<p><a href="{unsubscribe}">Unsubscribe</a></p>'
        msg = EmailMessage()
        msg["From"] = f"News {n % 20} <news{n % 20}@list{n % 20}.example>"
        msg["To"] = "reader@home.example"
        msg["Subject"] = f"Issue {n}"
        msg["Date"] = format_datetime(now - timedelta(minutes=n))
        msg["Message-ID"] = f"<issue{n}@bench.example>"
        msg["List-Id"] = f"<list{n % 20}.example>"
        msg["List-Unsubscribe"] = f"<{unsubscribe}>"
        msg.set_content("HTML only.\n")
        msg.add_alternative(f"<html><body>{body}</body></html>", subtype="html")
        raws.append(msg.as_bytes())
    return raws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--newsletters", type=int, default=100)
    parser.add_argument("--links", type=int, default=10)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        servers = [
            stack.enter_context(LinkServer(host=f"127.0.0.{n + 1}")) for n in range(args.hosts)
        ]
        raws = build(servers, args.newsletters, args.links, args.delay)
        root = tmp / "mail"
        for sub in ("cur", "new", "tmp"):
            (root / sub).mkdir(parents=True)
        for n, raw in enumerate(raws):
            (root / "cur" / f"{n}.bench:2,S").write_bytes(raw)
        database_url = f"sqlite:///{tmp}/bench.db"
        app = make_app(
            database_url,
            tmp,
            fetch_allow_networks=["127.0.0.0/24"],
            fetch_concurrency=args.concurrency,
        )
        stack.callback(app.close)
        account = Accounts(app.engine, app.settings).add("maildir", "bench", {"path": str(root)})
        sync_and_index(app, account)

        params = NewsletterParams(account_id=account.id, days_back=1, max_results=1000)
        started = time.perf_counter()
        with reading(app.engine) as conn:
            rows = select_newsletters(conn, params, owner=None, now=utcnow())
            bodies = read_bodies(conn, [int(r.id) for r in rows])
        links = 0
        for row in rows:
            parsed = parse_message(bodies[int(row.id)])
            got = extract_links(
                parsed.html_body, parsed.text_body, list_unsubscribe=row.list_unsubscribe
            )
            links += len(got.links)
        took = time.perf_counter() - started
        print(
            f"extraction: {len(rows)} newsletters, {links} links in {took:.3f} s "
            f"({len(rows) / took:.0f} newsletters/s)"
        )

        job = app.queue.enqueue("newsletter_extraction", params.model_dump(exclude_none=True))
        started = time.perf_counter()
        with running_worker(app, concurrency=1):
            done = wait_finished(app, job.id, timeout=600)
        took = time.perf_counter() - started
        assert done.status == JobStatus.COMPLETED, done.error
        counts = done.result["counts"]
        requests = sum(len(s.seen) for s in servers)
        unsubscribed = sum(1 for s in servers for seen in s.seen if "unsub" in seen.path)
        print(
            f"job: {took:.2f} s; {counts['links']} links, {counts['resolved']} distinct "
            f"resolved, {counts['articles']} articles, {counts['rejected']} rejected; "
            f"{requests} requests; most at once on one server: "
            f"{max(s.max_in_flight for s in servers)} (cap {app.settings.fetch_per_host}); "
            f"unsubscribe requests: {unsubscribed}"
        )
        with reading(app.engine) as conn:
            stored = extractions.get(conn, job.id, owner=None)
        assert stored is not None and stored.packed_result is not None
        plain = len(json.dumps(stored.result, ensure_ascii=False, separators=(",", ":")))
        packed = len(stored.packed_result)
        print(
            f"stored result: {plain:,} bytes of JSON, {packed:,} compressed ({plain / packed:.1f}x)"
        )


if __name__ == "__main__":
    main()
