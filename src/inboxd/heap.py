"""Garbage collection tuned for long-running mail work.

A sync allocates millions of short-lived containers (tuples, lists, dicts per message),
which with CPython's default thresholds triggers a collection every 700 of them, and every
so often a full one that walks every object alive: the few hundred thousand objects of the
imported libraries (SQLAlchemy, pydantic, FastAPI, ...) included, though they never die.
"""

from __future__ import annotations

import gc
import os

#: Allocations between two young collections (CPython's default is 700). Mail work creates
#: few reference cycles, so collecting less often costs little memory.
YOUNG_THRESHOLD = 20_000

_settled_in: int | None = None  # the process that settled its heap (a fork must again)


def settle(*, collect: bool = True) -> None:
    """Move every object alive now (imports, settings, engines) out of the collector's
    sight, and collect the young generation less often; for a process about to do bulk
    work (a worker after start-up, a sync helper). Without ``collect`` the garbage of the
    moment is kept too, but no full collection (~30 ms) delays the start. Once per
    process: a test process starts many workers."""
    global _settled_in
    if _settled_in == os.getpid():
        return
    _settled_in = os.getpid()
    if collect:
        gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
