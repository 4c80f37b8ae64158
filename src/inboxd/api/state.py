"""What every request handler needs, built once per server process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

import anyio
from fastapi import Depends, Request
from prometheus_client.registry import CollectorRegistry
from starlette.requests import HTTPConnection

from inboxd.api.limits import RateLimiter
from inboxd.api.pump import EventPump
from inboxd.app import App
from inboxd.store.users import Users


@dataclass
class ApiState:
    """Services and limits of one server process."""

    app: App
    pump: EventPump
    users: Users = field(init=False)
    job_limiter: RateLimiter = field(init=False)
    test_limiter: RateLimiter = field(init=False)
    #: threads for account tests, apart from the pool every other sync route runs on
    test_slots: anyio.CapacityLimiter = field(init=False)
    login_limiter: RateLimiter = field(init=False)
    #: What /metrics serves (filled by create_api).
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)
    #: Recent rechecks of open live streams' credentials: digest -> (loop time, user id).
    live_rechecks: dict[bytes, tuple[float, asyncio.Future[str | None]]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        settings = self.app.settings
        self.users = Users(self.app.engine)
        self.job_limiter = RateLimiter(settings.jobs_rate_per_minute)
        per_minute = settings.account_tests_per_minute
        self.test_limiter = RateLimiter(per_minute, burst=min(per_minute, 3))
        self.test_slots = anyio.CapacityLimiter(settings.account_test_concurrency)
        self.login_limiter = RateLimiter(settings.login_rate_per_minute)


def api_state(conn: HTTPConnection) -> ApiState:
    """The ApiState of the app serving this request or socket."""
    state: ApiState = conn.app.state.inboxd
    return state


def get_state(request: Request) -> ApiState:
    """FastAPI dependency form of :func:`api_state`."""
    return api_state(request)


State = Annotated[ApiState, Depends(get_state)]
