"""The composition root: builds the engine and the queue from Settings, shared by every entry
point (CLI, worker, server)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from inboxd.config import Settings, load_settings
from inboxd.db import migrate
from inboxd.db.engine import make_engine
from inboxd.db.faults import ensure_reserve
from inboxd.jobs.leases import Leases
from inboxd.jobs.queue import Queue
from inboxd.store.webhooks import ended_hook
from inboxd.tasks import load_tasks


def private_directory(path: Path) -> None:
    """The data dir holds the database, the key file and packs: its owner's eyes only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        path.chmod(0o700)


@dataclass
class App:
    """Wired-up services; open with :meth:`open`, close with :meth:`close`."""

    settings: Settings
    engine: Engine
    queue: Queue
    leases: Leases

    @classmethod
    def open(cls, settings: Settings | None = None, *, upgrade: bool = True) -> App:
        """Connect, apply migrations (unless told not to) and register task kinds."""
        settings = settings or load_settings()
        private_directory(settings.data_dir)
        ensure_reserve(settings.data_dir, settings.disk_reserve_mb * 1024 * 1024)
        engine = make_engine(
            settings.effective_database_url,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            pool_size=max(10, settings.worker_concurrency + 4),
        )
        if upgrade:
            migrate.upgrade(engine)
        load_tasks(settings.task_modules)
        # Job endings are told to webhooks from the transaction that records them.
        leases = Leases(engine, settings, on_ended=ended_hook(settings))
        return cls(settings, engine, Queue(engine, settings), leases)

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
