"""Logging set-up for entry points (library code only calls ``getLogger(__name__)``).

Two formats: ``text`` (one readable line each) and ``json`` (one object per line, for log
shippers). uvicorn's loggers are left without handlers of their own, so its lines (and the
access log, when on) go through the same formatter as ours. The worker wraps each task in
:func:`job_context`, so every line logged while a job runs carries its job and account id.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

#: (job id, account id) of the job running in this thread or task, if any.
_job: ContextVar[tuple[str, str | None] | None] = ContextVar("inboxd_job", default=None)

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
    | {"message", "asctime", "taskName", "color_message"}
)


@contextmanager
def job_context(job_id: str, account_id: str | None) -> Iterator[None]:
    """Tag every line logged inside the block (same thread or task) with the job's ids."""
    token = _job.set((job_id, account_id))
    try:
        yield
    finally:
        _job.reset(token)


def current_job() -> tuple[str, str | None] | None:
    """The (job id, account id) set by the enclosing :func:`job_context`, if any."""
    return _job.get()


def adopt(job: tuple[str, str | None] | None) -> None:
    """Give a new thread its creator's job ids (a thread pool's ``initializer``, with
    ``initargs=(current_job(),)``): threads do not inherit context variables."""
    _job.set(job)


class _JobFilter(logging.Filter):
    """Copies the running job's ids onto each record (an explicit ``extra`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        running = _job.get()
        if running is not None:
            if getattr(record, "job_id", None) is None:
                record.job_id = running[0]
            if getattr(record, "account_id", None) is None:
                record.account_id = running[1]
        return True


class TextFormatter(logging.Formatter):
    """``time level logger: message [job ID]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The line, with the job id appended when the message does not name it."""
        job_id = getattr(record, "job_id", None)
        line = super().format(record)
        return f"{line} [job {job_id}]" if job_id and job_id not in line else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the job's ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (never with a raw newline inside)."""
        stamp = datetime.fromtimestamp(record.created, UTC)
        doc: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            doc.update(_access_fields(record.args))
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in doc and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def _access_fields(args: tuple[object, ...]) -> dict[str, object]:
    # uvicorn's access record: (client "host:port", method, path with query, HTTP version,
    # status code).
    if len(args) != 5:
        return {}
    client, method, path, http_version, status = args
    return {
        "client": client,
        "method": method,
        "path": path,
        "http_version": http_version,
        "status": status,
    }


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of ``log_format``."""
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(level: str = "INFO", log_format: LogFormat = "text") -> None:
    """Send logs to stderr, one line each (text or JSON), with the running job's ids."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use one of {LOG_FORMATS}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(_JobFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # uvicorn's own handlers would print its lines in its own format: route them to ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_log = logging.getLogger(name)
        uvicorn_log.handlers[:] = []
        uvicorn_log.propagate = True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's ``log_config``: its loggers keep no handlers and pass every line to ours."""
    routed = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: dict(routed) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }
