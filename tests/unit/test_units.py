"""Pure pieces: backoff, batching, the credential vault, the collector's settings."""

from __future__ import annotations

import gc
import random
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from inboxd import heap
from inboxd.config import Settings
from inboxd.errors import ConfigError
from inboxd.jobs.backoff import retry_delay
from inboxd.jobs.model import new_job_id
from inboxd.mail.credentials import Vault
from inboxd.providers.imap.provider import cut_batches


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    rng = random.Random(1)
    delays = [retry_delay(n, base=1, cap=10, rng=rng) for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        nominal = min(10, 2 ** (n - 1))
        assert nominal / 2 <= delay <= nominal
    assert retry_delay(1, base=1, cap=10, retry_after=42, rng=rng) == 42


def test_job_ids_are_unique_and_time_ordered() -> None:
    ids = [new_job_id() for _ in range(2000)]
    assert len(set(ids)) == 2000
    assert all(len(i) == 36 and i[14] == "7" for i in ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)


def test_batches_are_cut_by_count_and_bytes() -> None:
    uids = list(range(1, 11))
    sizes = {u: 100 for u in uids} | {5: 10_000}
    batches = list(cut_batches(uids, sizes, max_count=3, max_bytes=1000))
    assert [u for b in batches for u in b] == uids
    assert all(len(b) <= 3 for b in batches)
    assert [5] in batches  # a message larger than the byte cap goes alone


def test_vault_round_trip_and_key_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    vault = Vault.from_settings(settings)
    token = vault.seal({"password": "hunter2"})
    assert "hunter2" not in token
    assert Vault.from_settings(settings).open(token) == {"password": "hunter2"}
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    other = Vault(Fernet.generate_key())
    with pytest.raises(ConfigError, match="secret key changed"):
        other.open(token)
    with pytest.raises(ConfigError, match="not a valid Fernet key"):
        Vault(b"short")


def test_settling_the_heap_hides_what_lives_now_and_collects_young_objects_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heap, "_settled_in", None)  # whatever a worker of another test did
    before = gc.get_threshold()
    kept = [[n] for n in range(1000)]  # containers alive now, tracked by the collector
    try:
        heap.settle()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, *before[1:])
        assert all(gc.is_tracked(k) for k in kept)  # hidden, not untracked
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
