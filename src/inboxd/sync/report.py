"""The result of a sync job, the same for every provider."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self


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
    repaired: int = 0  # messages re-keyed from an earlier version's identity
    fetched_by_helpers: int = 0
    helpers: int = 0  # helper processes that fetched part of a folder (summed over folders)
    helper_peak_rss_kb: int = 0  # the largest peak memory of one of them
    per_folder: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """A report from its saved JSON form; what is not a count of the right kind (junk,
        a field of another version) reads as nothing."""
        report = cls()
        if not isinstance(data, dict):
            return report
        for f in fields(cls):
            value = data.get(f.name)
            if f.name == "per_folder":
                if isinstance(value, dict):
                    report.per_folder = {
                        str(k): v for k, v in value.items() if type(v) is int and v >= 0
                    }
            elif type(value) is int and value >= 0:
                setattr(report, f.name, value)
        return report

    def after(self, earlier: SyncReport) -> SyncReport:
        """This attempt's report with ``earlier`` attempts' work added: the whole job's.
        Folder counts are this attempt's (it looked at every folder again)."""
        total = SyncReport(**asdict(self))
        for name in _ADDED:
            setattr(total, name, getattr(self, name) + getattr(earlier, name))
        total.helper_peak_rss_kb = max(self.helper_peak_rss_kb, earlier.helper_peak_rss_kb)
        total.per_folder = dict(earlier.per_folder)
        for folder, count in self.per_folder.items():
            total.per_folder[folder] = total.per_folder.get(folder, 0) + count
        return total


#: Counts of work done, which add up over attempts (the rest describe the last look).
_ADDED = (
    "fetched",
    "new",
    "duplicates",
    "flags_changed",
    "expunged",
    "bytes",
    "reconnects",
    "parse_errors",
    "unavailable",
    "uidvalidity_resets",
    "repaired",
    "fetched_by_helpers",
    "helpers",
)
