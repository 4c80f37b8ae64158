"""``/metrics`` for Prometheus: the queue's figures read from the database at scrape time,
and this process's live channels.

What jobs do is read from the database (``jobs.metrics``), so any web process answers the
same and worker processes need no multiprocess bookkeeping. Durations and synced messages
are cumulative since this process started, fed by the runs history: ``rate()`` and
``histogram_quantile()`` work as with any counter. Live connections and the event pump's lag
belong to this process. ``/metrics`` wants an admin's key; ``INBOXD_METRICS_LISTEN`` serves
the same on a loopback-only port without one.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import Engine

from inboxd.api.auth import CurrentUser
from inboxd.api.errors import ApiError
from inboxd.api.pump import EventPump
from inboxd.api.schemas import error_responses
from inboxd.api.state import State
from inboxd.db.types import utcnow
from inboxd.errors import ConfigError
from inboxd.jobs import gauges
from inboxd.jobs.events import last_event_id
from inboxd.jobs.metrics import FinishedRun, RunFeed, job_counts, ready_queues

#: Upper bounds of the job duration buckets (seconds): a noop to a first sync of a big box.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: The job kind whose runs count synced messages.
SYNC_KIND = "sync"
#: Queues always reported, so their depth reads 0 rather than vanishing when empty.
KNOWN_QUEUES = ("default", "maintenance")

router = APIRouter()


@dataclass
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    count: int = 0
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        for index, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.buckets[index] += 1
        self.count += 1
        self.total += seconds

    def samples(self) -> list[tuple[str, float]]:
        bounds = [
            (_bound(b), float(n)) for b, n in zip(DURATION_BUCKETS, self.buckets, strict=True)
        ]
        return [*bounds, ("+Inf", float(self.count))]


def _bound(value: float) -> str:
    return repr(float(value))


@dataclass
class _RunTally:
    """What finished runs added up to since this process started."""

    durations: dict[tuple[str, str], _Histogram] = field(default_factory=dict)
    sync_messages: int = 0
    sync_seconds: float = 0.0

    def add(self, runs: Iterable[FinishedRun]) -> None:
        for run in runs:
            seconds = max(0.0, run.duration_seconds or 0.0)
            self.durations.setdefault((run.kind, run.status), _Histogram()).observe(seconds)
            if run.fetched is not None:
                self.sync_messages += max(0, run.fetched)
                self.sync_seconds += seconds


class InboxdCollector(Collector):
    """Every inboxd family, computed when scraped (one query per database-backed family)."""

    def __init__(
        self, engine: Engine, pump: EventPump, idle: Callable[[], float] | None = None
    ) -> None:
        self.engine = engine
        self.pump = pump
        #: the IDLE watcher's connections, read from another process (its status file)
        self.idle = idle
        self.feed = RunFeed(engine, sync_kind=SYNC_KIND)
        self._tally = _RunTally()
        self._lock = threading.Lock()
        # Series seen once are reported as 0 afterwards instead of vanishing (a vanished
        # gauge keeps its last value in Prometheus for minutes).
        self._seen_jobs: set[tuple[str, str]] = set()
        self._seen_queues: set[str] = set(KNOWN_QUEUES)

    def collect(self) -> Iterator[Metric]:
        """The families, in a fixed order."""
        started = time.perf_counter()
        yield self._jobs()
        yield from self._queues()
        yield from self._runs()
        yield from self._live()
        idle = GaugeMetricFamily(
            "inboxd_idle_connections",
            "Open IMAP IDLE connections of the watcher on this data dir (0 when none runs).",
        )
        here = gauges.read(gauges.IDLE_CONNECTIONS)
        idle.add_metric([], here or (float(self.idle()) if self.idle is not None else 0.0))
        yield idle
        took = GaugeMetricFamily(
            "inboxd_metrics_scrape_seconds", "Time this scrape took to read its figures."
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _jobs(self) -> Metric:
        counts = job_counts(self.engine)
        with self._lock:
            self._seen_jobs.update(counts)
            seen = sorted(self._seen_jobs)
        family = GaugeMetricFamily(
            "inboxd_jobs",
            "Jobs not finished yet by kind and status (pending, running, awaiting_approval); "
            "finished ones: inboxd_job_duration_seconds_count.",
            labels=["kind", "status"],
        )
        for key in seen:
            family.add_metric(list(key), counts.get(key, 0))
        return family

    def _queues(self) -> Iterator[Metric]:
        now = utcnow()
        found = {depth.queue: depth for depth in ready_queues(self.engine, now)}
        with self._lock:
            self._seen_queues.update(found)
            names = sorted(self._seen_queues)
        depth = GaugeMetricFamily(
            "inboxd_queue_depth",
            "Pending jobs ready to run now (retries waiting for later not counted).",
            labels=["queue"],
        )
        age = GaugeMetricFamily(
            "inboxd_queue_oldest_age_seconds",
            "How long the longest-waiting ready job has waited for a worker (0: none waits).",
            labels=["queue"],
        )
        for name in names:
            entry = found.get(name)
            depth.add_metric([name], entry.ready if entry else 0)
            oldest = entry.oldest_ready_at if entry else None
            age.add_metric([name], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        yield depth
        yield age

    def _runs(self) -> Iterator[Metric]:
        runs = self.feed.new_runs()
        with self._lock:
            self._tally.add(runs)
            durations = {k: (h.samples(), h.total) for k, h in self._tally.durations.items()}
            messages, seconds = self._tally.sync_messages, self._tally.sync_seconds
        family = HistogramMetricFamily(
            "inboxd_job_duration_seconds",
            "Durations of jobs finished since this process started, by kind and status.",
            labels=["kind", "status"],
        )
        for (kind, status), (buckets, total) in sorted(durations.items()):
            family.add_metric([kind, status], buckets, total)
        yield family
        fetched = CounterMetricFamily(
            "inboxd_sync_messages",
            "Messages fetched by syncs completed since this process started "
            "(rate() of it: messages per second).",
        )
        fetched.add_metric([], messages)
        yield fetched
        busy = CounterMetricFamily(
            "inboxd_sync_seconds",
            "Time spent by the syncs counted in inboxd_sync_messages_total.",
        )
        busy.add_metric([], seconds)
        yield busy

    def _live(self) -> Iterator[Metric]:
        pump = self.pump
        connections = GaugeMetricFamily(
            "inboxd_live_connections", "Open SSE streams and WebSockets of this process."
        )
        connections.add_metric([], pump.subscriber_count)
        yield connections
        delivered = CounterMetricFamily(
            "inboxd_live_events_delivered", "Job events handed to live clients by this process."
        )
        delivered.add_metric([], pump.delivered)
        yield delivered
        lag = GaugeMetricFamily(
            "inboxd_event_pump_lag_seconds",
            "From the newest job event's creation to its fan-out, at the pump's last batch.",
        )
        lag.add_metric([], pump.lag_seconds)
        yield lag
        behind = GaugeMetricFamily(
            "inboxd_event_pump_behind_events",
            "Job events written but not yet read by this process's pump.",
        )
        behind.add_metric([], max(0, last_event_id(self.engine) - pump.last_id))
        yield behind


def build_registry(
    engine: Engine, pump: EventPump, idle: Callable[[], float] | None = None
) -> CollectorRegistry:
    """A registry with inboxd's families and the process's own (memory, CPU, files);
    ``idle`` reads the IDLE watcher's live connections."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InboxdCollector(engine, pump, idle))
    ProcessCollector(registry=registry)
    return registry


@router.get(
    "/metrics",
    tags=["status"],
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        **error_responses(401, 403),
    },
)
def metrics(user: CurrentUser, state: State) -> Response:
    """Prometheus metrics (an admin's key; or INBOXD_METRICS_LISTEN's port without one)."""
    if not user.is_admin:
        raise ApiError(403, "forbidden", "metrics are for admins")
    return Response(generate_latest(state.metrics), media_type=CONTENT_TYPE_LATEST)


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` of the metrics listener; ConfigError unless HOST is a loopback address."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f"INBOXD_METRICS_LISTEN={listen!r}: want a loopback HOST:PORT such as "
            "127.0.0.1:9464 (the listener has no authentication)"
        )
    return host, int(port)


def start_listener(registry: CollectorRegistry, listen: str) -> Any:
    """Serve ``registry`` at ``listen`` (loopback only) on a daemon thread; returns the
    server (its ``shutdown()`` stops it)."""
    host, port = parse_listen(listen)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
