#!/usr/bin/env python3
"""Accuracy and speed of inboxd's rule-based triage on hand-labelled real mail (figures,
not a test).

    python bench/triage.py [--labels tests/fixtures/triage/labels.tsv] [--user ADDR]
    python bench/triage.py --labels DIR      # DIR/<category>/<message files>

A labels file is tab-separated with a header line ``file category user direct note``
(``file`` relative to the file's ``tests/fixtures/`` root, see
tests/fixtures/triage/README.md). Prints accuracy overall and per category, a confusion
matrix, every message labelled as written directly to the user that was filed as bulk (the
issue's "direct-mail violations"), the misfiled messages, and messages/s of extract +
classify + prioritize over the same messages in one process (one core).
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
import collections
import csv
import platform
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from inboxd.triage.classify import UNSURE, classify
from inboxd.triage.extract import Stored, mail_from, stored_from
from inboxd.triage.priority import prioritize
from inboxd.triage.types import Context, Decision
from inboxd.vocabulary import BULK_CATEGORIES, Category

DEFAULT_LABELS = ROOT / "tests" / "fixtures" / "triage" / "labels.tsv"
TARGET_ACCURACY = 0.90
TARGET_RATE = 5000.0
#: One message in HOLDOUT (by a hash of its file name) is held out of tuning: ``--part held``
#: measures on those alone, ``--part tune`` on the rest. Rows whose ``part`` column names a
#: part (``fresh``, ``fresh2``) were added after the signals were tuned and are never tuned
#: on: ``--part fresh``.
HOLDOUT = 5
PARTS = ("tune", "held", "fresh", "fresh2")


@dataclass(frozen=True)
class Sample:
    """One labelled message."""

    path: Path
    name: str
    category: Category
    user: str
    direct: bool
    note: str = ""
    part: str = ""


@dataclass(frozen=True)
class Loaded:
    """A sample with its bytes, stored columns and context, ready to triage."""

    sample: Sample
    raw: bytes
    stored: Stored
    ctx: Context


def read_labels(path: Path, user: str | None) -> list[Sample]:
    """Samples from a labels file or from a ``<dir>/<category>/<file>`` tree."""
    if path.is_dir():
        return _read_tree(path, user)
    root = path.parent.parent  # tests/fixtures/triage/labels.tsv -> tests/fixtures
    samples = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            samples.append(
                Sample(
                    path=root / row["file"],
                    name=row["file"],
                    category=Category(row["category"].strip()),
                    user=(user or row.get("user") or "").strip().lower(),
                    direct=(row.get("direct") or "0").strip() == "1",
                    note=row.get("note") or "",
                    part=(row.get("part") or "").strip(),
                )
            )
    return samples


def _read_tree(path: Path, user: str | None) -> list[Sample]:
    samples = []
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        category = Category(folder.name)
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            samples.append(
                Sample(file, str(file.relative_to(path)), category, (user or "").lower(), False)
            )
    return samples


def part_of(sample: Sample) -> str:
    """The row's own part (``fresh``...), else ``held`` (one in HOLDOUT, by a CRC of the
    name) or ``tune``."""
    if sample.part:
        return sample.part
    return "held" if zlib.crc32(sample.name.encode()) % HOLDOUT == 0 else "tune"


def _in_part(sample: Sample, part: str) -> bool:
    return part == "all" or part_of(sample) == part


def load(samples: Sequence[Sample], now: datetime) -> list[Loaded]:
    """Read each sample's bytes and the columns a store would hold for it."""
    loaded = []
    for pk, sample in enumerate(samples):
        raw = sample.path.read_bytes()
        ctx = Context(
            addresses=frozenset({sample.user}) if sample.user else frozenset(),
            name=None,
            correspondents={},
            replied_threads=frozenset(),
            now=now,
        )
        loaded.append(Loaded(sample, raw, stored_from(raw, pk, flags=("\\Seen",)), ctx))
    return loaded


def triage_one(item: Loaded) -> tuple[Decision, int]:
    """Extract, classify and prioritize one message, as the triage job does."""
    mail = mail_from(item.raw, item.stored)
    decision = classify(mail, item.ctx)
    priority, _reasons = prioritize(mail, decision, item.ctx)
    return decision, priority


def accuracy_report(items: Sequence[Loaded], show_misses: bool) -> list[Decision]:
    """Print accuracy per category, the confusion matrix and the violations."""
    decisions = [triage_one(item)[0] for item in items]
    total = len(items)
    right = sum(d.category is i.sample.category for d, i in zip(decisions, items, strict=True))
    print(f"messages: {total}")
    print(
        f"accuracy: {right}/{total} = {right / max(total, 1):.1%}  (target {TARGET_ACCURACY:.0%})"
    )
    unsure = sum(d.confidence < UNSURE for d in decisions)
    unsure_right = sum(
        d.confidence < UNSURE and d.category is i.sample.category
        for d, i in zip(decisions, items, strict=True)
    )
    print(f"below UNSURE ({UNSURE}): {unsure}, of which right: {unsure_right}")
    print()
    cats = [c for c in Category if any(i.sample.category is c for i in items)]
    print(f"{'category':<16} {'n':>4} {'right':>5} {'recall':>7} {'precision':>9}")
    for cat in cats:
        n = sum(i.sample.category is cat for i in items)
        hit = sum(
            d.category is cat and i.sample.category is cat
            for d, i in zip(decisions, items, strict=True)
        )
        filed = sum(d.category is cat for d in decisions)
        precision = f"{hit / filed:.0%}" if filed else "-"
        print(f"{cat.value:<16} {n:>4} {hit:>5} {hit / n:>7.0%} {precision:>9}")
    print()
    _confusion(items, decisions)
    violations = [
        (i, d)
        for d, i in zip(decisions, items, strict=True)
        if i.sample.direct and d.category in BULK_CATEGORIES
    ]
    labelled_direct = sum(i.sample.direct for i in items)
    print(f"direct-mail violations: {len(violations)} of {labelled_direct} direct messages")
    for item, decision in violations:
        print(f"  {item.sample.name}: {decision.category.value} {decision.reasons}")
    found_direct = sum(d.direct for d in decisions)
    print(f"filed as direct: {found_direct}")
    _by_part(items, decisions)
    if show_misses:
        print()
        print("misfiled:")
        for d, i in zip(decisions, items, strict=True):
            if d.category is not i.sample.category:
                print(
                    f"  {i.sample.name}: {i.sample.category.value} -> {d.category.value}"
                    f" ({d.confidence:.2f}) {'; '.join(d.reasons)}"
                )
    return decisions


def _by_part(items: Sequence[Loaded], decisions: Sequence[Decision]) -> None:
    parts = collections.Counter(part_of(i.sample) for i in items)
    if len(parts) < 2:
        return
    hits = collections.Counter(
        part_of(i.sample)
        for d, i in zip(decisions, items, strict=True)
        if d.category is i.sample.category
    )
    shown = ", ".join(
        f"{p} {hits[p]}/{parts[p]} = {hits[p] / parts[p]:.1%}" for p in PARTS if parts[p]
    )
    print(f"by part: {shown}")


def _confusion(items: Sequence[Loaded], decisions: Sequence[Decision]) -> None:
    cats = list(Category)
    short = {c: c.value[:6] for c in cats}
    counts = collections.Counter(
        (i.sample.category, d.category) for d, i in zip(decisions, items, strict=True)
    )
    print("confusion (rows: label, columns: filed as)")
    print(f"{'':<16}" + "".join(f"{short[c]:>7}" for c in cats))
    for label in cats:
        if not any(i.sample.category is label for i in items):
            continue
        row = "".join(f"{counts[(label, c)] or '.':>7}" for c in cats)
        print(f"{label.value:<16}{row}")
    print()


def speed_report(items: Sequence[Loaded], seconds: float) -> float:
    """Messages/s of extract + classify + prioritize on one core, over ``items`` repeated
    for about ``seconds``: by the wall clock and by this process's CPU time (the machine may
    be shared; the CPU figure is what one core of its own would give)."""
    for item in items[:50]:  # warm caches and lazy imports
        triage_one(item)
    done = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while True:
        for item in items:
            triage_one(item)
        done += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    cpu = max(time.process_time() - cpu_start, 1e-9)
    rate, cpu_rate = done / elapsed, done / cpu
    mean_kb = sum(len(i.raw) for i in items) / max(len(items), 1) / 1024
    verdict = "met" if cpu_rate >= TARGET_RATE else "NOT met"
    print(
        f"speed: {cpu_rate:,.0f} messages per CPU second, {rate:,.0f}/s by the wall clock "
        f"(extract + classify + prioritize on one core, {done} messages, mean "
        f"{mean_kb:.1f} KiB; target {TARGET_RATE:,.0f}/s per core: {verdict})"
    )
    return cpu_rate


def generated_items(count: int, now: datetime) -> list[Loaded]:
    """``count`` messages of bench/sync.py's generated mailbox (the one the sync and search
    benchmarks use: lognormal text sizes, a third with HTML, 6 % with attachments)."""
    from bench.sync import generate_message

    ctx = Context(frozenset({"user@example.com"}), None, {}, frozenset(), now)
    items = []
    for index in range(count):
        message = generate_message(index)
        flags = ("\\Seen",) if "S" in message.flags else ()
        stored = stored_from(message.raw, index, flags=flags)
        sample = Sample(
            Path(f"generated/{index}"), f"generated/{index}", Category.PERSONAL, "", False
        )
        items.append(Loaded(sample, message.raw, stored, ctx))
    return items


#: Extra sections (e.g. a job-level run over 100,000 messages) register here; each is
#: called with the parsed arguments after the accuracy and speed sections.
SECTIONS: list[Callable[[argparse.Namespace], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the exit code is 0 (figures, not a test)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--user", help="the mailbox owner's address (overrides the labels')")
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent on speed")
    parser.add_argument("--misses", action="store_true", help="list every misfiled message")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument(
        "--generated",
        type=int,
        default=2000,
        help="also time this many messages of bench/sync.py's generated mailbox (0: not)",
    )
    parser.add_argument(
        "--part",
        choices=("all", *PARTS),
        default="all",
        help=f"all messages, the 1 in {HOLDOUT} held out of tuning, the others (tune), or "
        "the rows added after tuning (fresh, fresh2)",
    )
    args = parser.parse_args(argv)
    print(f"python {platform.python_version()} on {platform.machine()}, labels {args.labels}")
    samples = [s for s in read_labels(args.labels, args.user) if _in_part(s, args.part)]
    items = load(samples, datetime.now(UTC))
    accuracy_report(items, args.misses)
    if not args.skip_speed:
        print()
        print("labelled mail:")
        speed_report(items, args.seconds)
        if args.generated:
            print(f"generated mail (bench/sync.py, {args.generated} messages):")
            speed_report(generated_items(args.generated, datetime.now(UTC)), args.seconds)
    for section in SECTIONS:
        section(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
