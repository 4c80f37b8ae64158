"""The IDLE watcher's status file: what another process reads of it."""

from __future__ import annotations

import time
from pathlib import Path

from inboxd.config import Settings
from inboxd.sync.idle_status import (
    STALE_SECONDS,
    IdleStatus,
    idle_connections,
    read_status,
    remove_status,
    status_path,
    write_status,
)


def test_a_fresh_status_is_read_back_and_a_stale_or_missing_one_is_none(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert read_status(settings) is None and idle_connections(settings) == 0
    now = time.time()
    status = IdleStatus(
        connections=3,
        watching=["a", "b", "c", "d"],
        left_out={"e": "over the IDLE connection budget"},
        max_connections=4,
        pid=123,
        updated_at=now,
    )
    write_status(status_path(settings), status)
    assert read_status(settings) == status and idle_connections(settings) == 3
    # A watcher killed without cleaning up stops counting once its heartbeat is old.
    assert read_status(settings, now=now + STALE_SECONDS + 1) is None
    remove_status(status_path(settings))
    assert read_status(settings) is None


def test_a_damaged_status_file_reads_as_no_watcher(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    status_path(settings).write_text('{"connections": 2, "unknown": 1}')
    assert read_status(settings) is None
    status_path(settings).write_text("{not json")
    assert idle_connections(settings) == 0
