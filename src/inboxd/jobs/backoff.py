"""Retry delays: exponential backoff with jitter, never shorter than a server's Retry-After."""

from __future__ import annotations

import random


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1).

    "Equal jitter": half the exponential delay is fixed, the other half random, so retries
    of many jobs spread out but none comes back sooner than half the nominal delay.
    """
    nominal = min(cap, base * (2 ** max(0, attempt - 1)))
    delay: float = nominal / 2 + (rng or random).uniform(0, nominal / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
