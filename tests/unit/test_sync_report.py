"""A retried or rescued sync's result adds up its attempts' work."""

from __future__ import annotations

from dataclasses import asdict

from inboxd.sync.report import SyncReport


def test_work_adds_up_and_the_last_look_at_folders_stands() -> None:
    first = SyncReport(folders=3, fetched=100, new=90, duplicates=10, bytes=5000, parse_errors=2)
    first.per_folder = {"INBOX": 100}
    first.helper_peak_rss_kb = 80_000
    second = SyncReport(folders=3, folders_unchanged=2, fetched=50, new=50, bytes=2500)
    second.per_folder = {"INBOX": 30, "Sent": 20}
    second.helper_peak_rss_kb = 70_000
    total = second.after(first)
    assert (total.fetched, total.new, total.duplicates) == (150, 140, 10)
    assert (total.bytes, total.parse_errors) == (7500, 2)
    assert (total.folders, total.folders_unchanged) == (3, 2)
    assert total.per_folder == {"INBOX": 130, "Sent": 20}
    assert total.helper_peak_rss_kb == 80_000
    assert second.fetched == 50 and first.per_folder == {"INBOX": 100}, "inputs unchanged"


def test_a_saved_report_reads_back_and_junk_reads_as_nothing() -> None:
    saved = SyncReport(fetched=7, per_folder={"INBOX": 7})
    assert SyncReport.from_dict(asdict(saved)) == saved
    assert SyncReport.from_dict({"fetched": 3, "from_a_newer_version": 1}).fetched == 3
    assert SyncReport.from_dict(None) == SyncReport()
    junk = SyncReport.from_dict({"fetched": {"not": "a number"}, "new": True, "bytes": -1})
    assert junk == SyncReport()
