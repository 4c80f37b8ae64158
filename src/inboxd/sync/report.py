"""The result of a sync job, the same for every provider."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SyncReport:
    """Counts of one sync run (the job's result)."""

    folders: int = 0
    folders_unchanged: int = 0
    folders_skipped: int = 0  # the server would not open them this time (see the log)
    fetched: int = 0
    new: int = 0
    duplicates: int = 0
    flags_changed: int = 0
    expunged: int = 0
    bytes: int = 0
    reconnects: int = 0
    parse_errors: int = 0
    unavailable: int = 0  # listed by the server, but it would not send them
    uidvalidity_resets: int = 0
    fetched_by_helpers: int = 0
    helpers: int = 0  # helper processes that fetched part of a folder (summed over folders)
    helper_peak_rss_kb: int = 0  # the largest peak memory of one of them
    per_folder: dict[str, int] = field(default_factory=dict)
