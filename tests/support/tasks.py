"""Task kinds used only by tests; workers load them through INBOXD_TASK_MODULES."""

from __future__ import annotations

import logging
import os
import time

from pydantic import BaseModel

from inboxd.errors import RetryableError
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.registry import EmptyParams, task


class RecordParams(BaseModel, extra="forbid"):
    """Where to record the run, and for how long to sleep."""

    path: str
    sleep_ms: float = 0


@task("test.record", params=RecordParams)
def record(ctx: TaskContext, params: RecordParams) -> dict[str, str]:
    """Append 'job-id pid' to a file: each line is one execution."""
    line = f"{ctx.job_id} {os.getpid()} start\n".encode()
    fd = os.open(params.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
        if params.sleep_ms:
            time.sleep(params.sleep_ms / 1000)
        os.write(fd, f"{ctx.job_id} {os.getpid()} end\n".encode())
    finally:
        os.close(fd)
    return {"pid": str(os.getpid())}


class FlakyParams(BaseModel, extra="forbid"):
    """How many attempts fail before one succeeds, and the Retry-After to ask for."""

    fail_times: int = 1
    retry_after: float | None = None


@task("test.flaky", params=FlakyParams, max_attempts=3)
def flaky(ctx: TaskContext, params: FlakyParams) -> dict[str, int]:
    """Fail with a retryable error on the first ``fail_times`` attempts."""
    if ctx.attempt <= params.fail_times:
        raise RetryableError(f"flaky attempt {ctx.attempt}", retry_after=params.retry_after)
    return {"attempt": ctx.attempt}


@task("test.crash")
def crash(ctx: TaskContext, params: EmptyParams) -> None:
    """Raise an unexpected exception (a bug in a task)."""
    raise ZeroDivisionError("boom")


@task("test.chatty")
def chatty(ctx: TaskContext, params: EmptyParams) -> None:
    """Log through a plain module logger, as library code does (no job id passed along)."""
    logging.getLogger(__name__).info("chatty task says hello")
    logging.getLogger("inboxd.elsewhere").warning("and warns once")
