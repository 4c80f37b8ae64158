"""Built-in maintenance kinds: ``noop``, ``selftest`` and ``prune``."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from inboxd.errors import PermanentError, RetryableError
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.registry import EmptyParams, task
from inboxd.jobs.retention import prune
from inboxd.vocabulary import Step


@task("noop", params=EmptyParams, queue="default")
def noop(ctx: TaskContext, params: EmptyParams) -> None:
    """Do nothing (for checks and benchmarks)."""


class SelftestParams(BaseModel, extra="forbid"):
    """Parameters of ``selftest``."""

    steps: int = Field(default=10, ge=0, le=1_000_000)
    step_ms: float = Field(default=100, ge=0, le=3_600_000)
    fail_at: int | None = Field(default=None, ge=1, description="fail when reaching this step")
    fail_mode: Literal["permanent", "retryable"] = "permanent"


@task("selftest", params=SelftestParams)
def selftest(ctx: TaskContext, params: SelftestParams) -> dict[str, Any]:
    """Run N steps of T ms with progress, honouring cancel; resumes from its checkpoint."""
    resumed_from = int((ctx.checkpoint or {}).get("done", 0))
    progress = ctx.progress
    progress.step(Step.SELFTEST, total=params.steps)
    progress.update(resumed_from)
    for number in range(resumed_from + 1, params.steps + 1):
        progress.check_cancelled()
        if params.fail_at is not None and number == params.fail_at:
            message = f"selftest asked to fail at step {number}"
            if params.fail_mode == "retryable":
                raise RetryableError(message)
            raise PermanentError(message)
        time.sleep(params.step_ms / 1000)
        # Checkpoint before reporting, so the progress anyone sees is never ahead of what a
        # rescued attempt resumes from.
        progress.checkpoint({"done": number})
        progress.update(number, message=f"step {number} of {params.steps}")
    return {"steps": params.steps, "resumed_from": resumed_from, "attempt": ctx.attempt}


@task("prune", params=EmptyParams, queue="maintenance", max_attempts=3)
def prune_task(ctx: TaskContext, params: EmptyParams) -> dict[str, int]:
    """Delete finished jobs, their events and old runs per the retention settings."""
    ctx.progress.step(Step.PRUNING)
    return prune(ctx.engine, ctx.settings).as_dict()
