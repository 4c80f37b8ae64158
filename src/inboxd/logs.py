"""Logging set-up for entry points (library code only calls ``getLogger(__name__)``)."""

from __future__ import annotations

import logging
import sys


class _JobFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        job_id = getattr(record, "job_id", None)
        line = super().format(record)
        return f"{line} [job {job_id}]" if job_id and job_id not in line else line


def configure(level: str = "INFO") -> None:
    """Send logs to stderr, one line each, with the job id when there is one."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JobFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
