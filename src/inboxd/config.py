"""Settings: the one place that reads the environment (``INBOXD_*``) or a ``.env`` file."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from inboxd.errors import ConfigError


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("inboxd", appauthor=False))


class Settings(BaseSettings):
    """Typed settings with defaults; every field is documented in docs/settings.md."""

    model_config = SettingsConfigDict(env_prefix="INBOXD_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the SQLite database, the key file and demo mail live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/inboxd.db. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=30_000, ge=100, description="How long a SQLite writer waits for the lock."
    )
    job_lease_seconds: float = Field(
        default=30.0,
        gt=0.2,
        description="A running job whose worker has not renewed its lease for this long "
        "is rescued by another worker.",
    )
    job_max_attempts: int = Field(default=5, ge=1, description="Default attempts per job.")
    retry_base_seconds: float = Field(
        default=2.0, ge=0, description="First retry delay; doubles per attempt, with jitter."
    )
    retry_max_seconds: float = Field(default=600.0, ge=0, description="Longest retry delay.")
    owner_max_running: int = Field(
        default=2, ge=1, description="Most jobs one owner may have running at once."
    )
    max_running_jobs: int = Field(
        default=0, ge=0, description="Global cap on running jobs across all workers; 0: none."
    )
    worker_concurrency: int = Field(
        default=4, ge=1, le=256, description="Jobs one worker process runs at once."
    )
    poll_interval_ms: int = Field(
        default=20,
        ge=1,
        description="Idle poll period of a worker on SQLite (PostgreSQL wakes on NOTIFY "
        "and polls only as a safety net).",
    )
    progress_interval_ms: int = Field(
        default=250, ge=0, description="Minimum gap between two progress events of a job."
    )
    retention_days: float = Field(
        default=7.0, ge=0, description="Finished jobs and their events are pruned after this."
    )
    retention_per_kind: int = Field(
        default=10_000, ge=1, description="Finished jobs kept per kind at most."
    )
    runs_retention_days: float = Field(
        default=365.0, ge=0, description="How long the history of runs is kept."
    )
    schedules: Annotated[list[dict[str, Any]], NoDecode] = Field(
        default_factory=list,
        description='Extra periodic jobs, JSON: [{"name": "n", "kind": "selftest", '
        '"every": 3600, "params": {}}].',
    )
    task_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra Python modules imported by workers to register task kinds.",
    )
    log_level: str = Field(default="INFO", description="Logging level of the entry points.")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key that encrypts account passwords at rest; default: a key "
        "file (mode 0600) generated in the data dir.",
    )
    sync_interval_seconds: int = Field(
        default=300, ge=0, description="Default period of the automatic sync; 0 turns it off."
    )
    sync_batch_messages: int = Field(
        default=100, ge=1, description="Most messages fetched and stored per batch."
    )
    sync_batch_bytes: int = Field(
        default=4 * 1024 * 1024, ge=65536, description="Most bytes fetched per batch."
    )
    imap_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Socket timeout of IMAP connections."
    )

    @field_validator("schedules", "task_modules", mode="before")
    @classmethod
    def _json_or_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return []
            if value.startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @cached_property
    def effective_database_url(self) -> str:
        """The database URL in force: the setting, or the SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'inboxd.db'}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, with explicit overrides on top."""
    try:
        return Settings(**overrides)
    except (ValidationError, SettingsError, ValueError) as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
