"""Settings: each is documented; bad values are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from inboxd.config import Settings, load_settings
from inboxd.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    for name in Settings.model_fields:
        assert f"`INBOXD_{name.upper()}`" in text, f"INBOXD_{name.upper()} is not documented"


def test_defaults_put_sqlite_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("INBOXD_DATABASE_URL", raising=False)
    monkeypatch.setenv("INBOXD_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.effective_database_url == f"sqlite:///{tmp_path}/inboxd.db"
    assert settings.job_lease_seconds == 30 and settings.owner_max_running == 2


def test_list_settings_accept_json_or_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOXD_TASK_MODULES", "a.b, c.d")
    monkeypatch.setenv("INBOXD_SCHEDULES", '[{"name": "n", "kind": "noop", "every": 5}]')
    settings = load_settings()
    assert settings.task_modules == ["a.b", "c.d"]
    assert settings.schedules == [{"name": "n", "kind": "noop", "every": 5}]


def test_bad_values_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOXD_JOB_LEASE_SECONDS", "soon")
    with pytest.raises(ConfigError, match="job_lease_seconds"):
        load_settings()
