#!/usr/bin/env python3
"""Does a prior model trained on public hand-labelled mail help classify on mail it has not
seen? Grouped k-fold cross-validation over tests/fixtures/triage/labels.tsv (figures, not a
test).

    python bench/triage_cv.py [--folds 5] [--labels tests/fixtures/triage/labels.tsv]

Per fold, a model (inboxd.triage.model.train, labels = the hand labels) is trained on the
other folds and evaluated on this one, against classify alone. Messages of one group never
straddle folds: a group joins messages with the same body, the same normalised subject
(a thread), the same List-Id or the same sender, and the numbered test files of one
directory of a library's test suite (realmail/mikel-mail/*: variants of one message).
Variants:

- ``classify``: classify alone.
- ``combine@U/P``: model.combine for decisions below confidence U when the model's
  probability is at least P (``combine@0.6/0.5`` is what the job does with an account model).
- ``+cls``: the model also reads classify's decision as tokens (category, confidence band,
  direct) and is trained on them.

Every variant is checked for direct-mail violations (a message labelled direct filed as
newsletter, promotion or notification).
"""

# ruff: noqa: E402  (the sys.path fix below must run before the other imports)

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse
import hashlib
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bench.triage import DEFAULT_LABELS, Loaded, load, read_labels
from inboxd.triage import model as triage_model
from inboxd.triage.classify import UNSURE, classify
from inboxd.triage.extract import mail_from
from inboxd.triage.types import Decision, Mail
from inboxd.vocabulary import BULK_CATEGORIES, Category

_SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|aw|sv)\s*(\[\d+\])?\s*:\s*|\[[^\]]*\]\s*)+", re.I)


@dataclass(frozen=True)
class Item:
    """One labelled message, extracted and classified once."""

    loaded: Loaded
    mail: Mail
    decision: Decision

    @property
    def label(self) -> Category:
        return self.loaded.sample.category

    @property
    def direct(self) -> bool:
        return self.loaded.sample.direct


def with_decision(mail: Mail, decision: Decision) -> Mail:
    """``mail`` with classify's decision as extra tokens the model can read."""
    band = "hi" if decision.confidence >= 0.8 else "mid" if decision.confidence >= UNSURE else "lo"
    tokens = f"cls__{decision.category.value} clsconf__{band} clsdirect__{int(decision.direct)}"
    return replace(mail, subject=f"{mail.subject}\n{tokens}")


def group_keys(index: int, item: Item, grouping: str) -> list[str]:
    """What ties ``item`` to others: ``strict``: its body, thread subject, List-Id, sender
    and test-suite directory; ``copies``: its body and directory; ``none``: nothing."""
    if grouping == "none":
        return []
    body = " ".join(item.mail.text.split())
    # An empty or one-line body is not a copy of anything: a key of its own keeps it alone.
    keys = [f"body:{hashlib.sha1(body.encode()).hexdigest()}" if len(body) >= 40 else f"#{index}"]
    name = item.loaded.sample.name
    if name.startswith("realmail/mikel-mail/"):
        keys.append("dir:" + name.rpartition("/")[0])
    if grouping == "copies":
        return keys
    subject = _SUBJECT_PREFIX.sub("", item.mail.subject).strip().lower()
    if len(subject) >= 8:
        keys.append(f"subject:{subject}")
    list_id = item.mail.header("list-id")
    if list_id:
        keys.append(f"list:{list_id.rpartition('<')[2].rstrip('>').lower()}")
    if item.mail.from_addr:
        keys.append(f"from:{item.mail.from_addr.lower()}")
    return keys


def groups(items: Sequence[Item], grouping: str = "strict") -> list[int]:
    """A group number per item: items sharing a key of :func:`group_keys` are one group
    (union-find, transitively)."""
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, item in enumerate(items):
        for key in group_keys(i, item, grouping):
            if key in first:
                a, b = find(i), find(first[key])
                if a != b:
                    parent[a] = b
            else:
                first[key] = i
    return [find(i) for i in range(len(items))]


def folds_of(items: Sequence[Item], k: int, grouping: str) -> list[int]:
    """A fold per item: whole groups, largest first, each to the fold with fewest items;
    single items are dealt round-robin in a fixed shuffled order, so folds mix sources."""
    group = groups(items, grouping)
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(group):
        members[g].append(i)
    fold = [0] * len(items)
    sizes = [0] * k
    order = sorted(
        members,
        key=lambda g: (-len(members[g]), hashlib.sha1(str(min(members[g])).encode()).digest()),
    )
    for g in order:
        target = min(range(k), key=lambda f: (sizes[f], f))
        for i in members[g]:
            fold[i] = target
        sizes[target] += len(members[g])
    return fold


Variant = Callable[[Item, tuple[Category, float] | None, tuple[Category, float] | None], Decision]


def variants() -> dict[str, Variant]:
    """Name -> (item, plain model guess, +cls model guess) -> the decision."""
    out: dict[str, Variant] = {"classify": lambda item, p, q: item.decision}
    for unsure in (UNSURE, 0.7, 0.8, 0.9):
        for minimum in (0.5, 0.6, 0.7):

            def blend(
                item: Item,
                p: tuple[Category, float] | None,
                q: tuple[Category, float] | None,
                unsure: float = unsure,
                minimum: float = minimum,
            ) -> Decision:
                return _combine(item.decision, p, unsure, minimum)

            def blend_cls(
                item: Item,
                p: tuple[Category, float] | None,
                q: tuple[Category, float] | None,
                unsure: float = unsure,
                minimum: float = minimum,
            ) -> Decision:
                return _combine(item.decision, q, unsure, minimum)

            out[f"combine@{unsure:.1f}/{minimum:.1f}"] = blend
            out[f"combine+cls@{unsure:.1f}/{minimum:.1f}"] = blend_cls
    for minimum in (0.5, 0.7):

        def swap(
            item: Item,
            p: tuple[Category, float] | None,
            q: tuple[Category, float] | None,
            minimum: float = minimum,
        ) -> Decision:
            return _bulk_swap(item.decision, p, minimum)

        def swap_cls(
            item: Item,
            p: tuple[Category, float] | None,
            q: tuple[Category, float] | None,
            minimum: float = minimum,
        ) -> Decision:
            return _bulk_swap(item.decision, q, minimum)

        out[f"bulkswap@{minimum:.1f}"] = swap
        out[f"bulkswap+cls@{minimum:.1f}"] = swap_cls
    return out


#: Where classify errs most: which kind of machine-sent mail a message is.
_MACHINE = BULK_CATEGORIES | {Category.SPAM}


def _bulk_swap(
    decision: Decision, predicted: tuple[Category, float] | None, minimum: float
) -> Decision:
    # The prior only re-labels machine-sent mail as another kind of machine-sent mail,
    # and never a decision classify is sure of (>= 0.9) or one it found direct.
    if predicted is None or predicted[1] < minimum or decision.direct:
        return decision
    if decision.confidence >= 0.9 or decision.category not in _MACHINE:
        return decision
    if predicted[0] not in _MACHINE or predicted[0] is decision.category:
        return decision
    return replace(decision, category=predicted[0], confidence=min(predicted[1], 0.85))


def _combine(
    decision: Decision, predicted: tuple[Category, float] | None, unsure: float, minimum: float
) -> Decision:
    if predicted is None or predicted[1] < minimum:
        return decision
    return triage_model.combine(decision, predicted, unsure=unsure)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cross-validation and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--grouping",
        choices=("strict", "copies", "none"),
        default="strict",
        help="what keeps messages together in one fold (see groups())",
    )
    parser.add_argument("--show", nargs="*", default=None, help="variants to detail per category")
    args = parser.parse_args(argv)

    now = datetime.now(UTC)
    loaded = load(read_labels(args.labels, None), now)
    items = []
    for entry in loaded:
        mail = mail_from(entry.raw, entry.stored)
        items.append(Item(entry, mail, classify(mail, entry.ctx)))
    fold = folds_of(items, args.folds, args.grouping)
    sizes = Counter(groups(items, args.grouping)).values()
    print(
        f"messages: {len(items)}, groups ({args.grouping}): {len(sizes)}, largest "
        f"{max(sizes)}, folds: {args.folds}"
    )
    wrong = Counter(
        "<0.6"
        if it.decision.confidence < UNSURE
        else "<0.8"
        if it.decision.confidence < 0.8
        else ">=0.8"
        for it in items
        if it.decision.category is not it.label
    )
    print(f"classify's misses by its confidence: {dict(sorted(wrong.items()))}")
    print("fold sizes:", [fold.count(f) for f in range(args.folds)])

    table = variants()
    acc: dict[str, list[float]] = {name: [] for name in table}
    right_total: Counter[str] = Counter()
    violations: Counter[str] = Counter()
    changed: Counter[str] = Counter()
    per_cat: dict[str, Counter[tuple[Category, bool]]] = {name: Counter() for name in table}
    for f in range(args.folds):
        train_items = [it for it, g in zip(items, fold, strict=True) if g != f]
        test_items = [it for it, g in zip(items, fold, strict=True) if g == f]
        plain = triage_model.train([(it.mail, it.label) for it in train_items])
        with_cls = triage_model.train(
            [(with_decision(it.mail, it.decision), it.label) for it in train_items]
        )
        p = plain.predict([it.mail for it in test_items]) if plain else [None] * len(test_items)
        q = (
            with_cls.predict([with_decision(it.mail, it.decision) for it in test_items])
            if with_cls
            else [None] * len(test_items)
        )
        alone = sum(
            pp is not None and pp[0] is it.label for pp, it in zip(p, test_items, strict=True)
        )
        acc.setdefault("model alone", []).append(alone / len(test_items))
        for name, variant in table.items():
            right = 0
            for it, pp, qq in zip(test_items, p, q, strict=True):
                decision = variant(it, pp, qq)
                ok = decision.category is it.label
                right += ok
                per_cat[name][(it.label, ok)] += 1
                if it.direct and decision.category in BULK_CATEGORIES:
                    violations[name] += 1
                if decision.category is not it.decision.category:
                    changed[name] += 1
            acc[name].append(right / len(test_items))
            right_total[name] += right

    print()
    print(
        f"{'variant':<22} "
        + " ".join(f"{'f' + str(f):>6}" for f in range(args.folds))
        + f" {'mean':>6} {'pooled':>7} {'Δmean':>6} {'chg':>4} {'viol':>4}"
    )
    base = statistics.mean(acc["classify"])
    for name, values in acc.items():
        mean = statistics.mean(values)
        pooled = right_total[name] / len(items) if name in right_total else mean
        print(
            f"{name:<22} "
            + " ".join(f"{v:>6.1%}" for v in values)
            + f" {mean:>6.1%} {pooled:>7.1%} {100 * (mean - base):>+6.1f}"
            + f" {changed[name]:>4} {violations[name]:>4}"
        )
    shown = args.show if args.show is not None else ["classify", "combine@0.6/0.5"]
    for name in shown:
        print()
        print(f"per category, {name}:")
        for cat in Category:
            n = per_cat[name][(cat, True)] + per_cat[name][(cat, False)]
            if n:
                hit = per_cat[name][(cat, True)]
                print(f"  {cat.value:<16} {hit:>4}/{n:<4} {hit / n:>6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
