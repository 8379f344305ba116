"""Prometheus metrics: the worker's training counters and the API's registry.

Workers and the API share nothing but the database (hosts may differ), so each process
exposes its own metrics: a worker counts what it trains on prometheus_client's default
registry and serves it on `cerebros worker --metrics-port` (`serve_worker_metrics`); the API
keeps one registry per app (`ApiMetrics`: several apps may live in one test process) and
answers `GET /metrics` from it, plus gauges computed at scrape time (`ScrapeSnapshot`).

Counters are per process and start at zero with it; Prometheus' `rate()`/`increase()` handle
the resets. Label values come from fixed sets only (statuses, route templates), never from
owners, run ids or raw paths, so `/metrics` reveals counts and nothing per owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

NAMESPACE = "cerebros"

# --- worker: what it trained (default registry, served by serve_worker_metrics) ----------

# A trial takes seconds (iris) to hours (a large network on mnist).
TRIAL_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)

TRIALS_FINISHED = Counter(
    "trials_finished",
    "Trials this worker finished, by outcome (skipped: over the parameter cap, never built).",
    ["status"],
    namespace=NAMESPACE,
)
EPOCHS_FINISHED = Counter(
    "epochs_finished", "Training epochs this worker finished and recorded.", namespace=NAMESPACE
)
TRIAL_DURATION = Histogram(
    "trial_duration_seconds",
    "Wall time of one trial (build, training, evaluation), by outcome; skipped ones excluded.",
    ["status"],
    buckets=TRIAL_BUCKETS,
    namespace=NAMESPACE,
)


def record_trial_finished(status: str, duration_s: float, *, skipped: bool) -> None:
    """Count one recorded trial (`status`: completed, pruned or failed)."""
    if skipped:
        TRIALS_FINISHED.labels("skipped").inc()
        return
    TRIALS_FINISHED.labels(status).inc()
    TRIAL_DURATION.labels(status).observe(max(duration_s, 0.0))


def record_epoch_finished() -> None:
    EPOCHS_FINISHED.inc()


def serve_worker_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Serve the default registry over HTTP (any path) from a daemon thread; the bound port."""
    server, _ = start_http_server(port, addr=host, registry=REGISTRY)
    return int(server.server_port)


# --- API ---------------------------------------------------------------------------------

# Request latency: from the request's arrival to its response's headers.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ApiMetrics:
    """One API app's registry: HTTP requests, the process, and the scrape-time gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response's headers (an SSE stream counts "
            "until it opens), by method, route template and status code.",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def with_snapshot(self, snapshot: ScrapeSnapshot) -> Collector:
        """What one scrape exposes: this registry and the gauges of `snapshot`."""
        return _Combined((self.registry, snapshot))


@dataclass(frozen=True)
class DatabaseCounts:
    """Rows counted at scrape time (see `app.observability.gauges.count_rows`)."""

    runs: Mapping[str, int]  # status -> runs
    jobs: Mapping[tuple[str, str], int]  # (queue, status) -> procrastinate jobs
    workers_live: int  # heartbeat within the stalled timeout
    workers_registered: int


@dataclass(frozen=True)
class HubStats:
    """The API's event hub, read at scrape time."""

    sse_clients: int
    connected: bool
    reconnects: int


@dataclass(frozen=True)
class ScrapeSnapshot:
    """Gauges computed for one scrape.

    `database` is None when the counts could not be read in time: the gauges are then left out
    (never stale values) and `database_up` says 0.
    """

    hub: HubStats | None
    database: DatabaseCounts | None
    database_seconds: float
    run_statuses: Iterable[str] = field(default=())
    job_statuses: Iterable[str] = field(default=())

    def collect(self) -> Iterator[Metric]:
        yield _gauge(
            "scrape_database_up",
            "1 when this scrape counted runs, jobs and workers in the database, else 0 "
            "(unreachable, or slower than the scrape's query timeout).",
            float(self.database is not None),
        )
        yield _gauge(
            "scrape_database_seconds",
            "Time this scrape spent counting rows in the database.",
            self.database_seconds,
        )
        if self.database is not None:
            yield from self._database(self.database)
        if self.hub is not None:
            yield _gauge(
                "sse_clients",
                "Open SSE event streams on this API process.",
                float(self.hub.sse_clients),
            )
            yield _gauge(
                "event_hub_connected",
                "1 while the event hub's LISTEN connection is up.",
                float(self.hub.connected),
            )
            reconnects = CounterMetricFamily(
                f"{NAMESPACE}_event_hub_reconnects",
                "Times the event hub's LISTEN connection was lost (or failed) and retried.",
            )
            reconnects.add_metric([], float(self.hub.reconnects))
            yield reconnects

    def _database(self, counts: DatabaseCounts) -> Iterator[Metric]:
        runs = GaugeMetricFamily(
            f"{NAMESPACE}_runs", "Runs by status (every owner).", labels=["status"]
        )
        for status in sorted({*self.run_statuses, *counts.runs}):
            runs.add_metric([status], float(counts.runs.get(status, 0)))
        yield runs
        jobs = GaugeMetricFamily(
            f"{NAMESPACE}_queue_jobs",
            "procrastinate jobs by queue and status.",
            labels=["queue", "status"],
        )
        queues = sorted({queue for queue, _ in counts.jobs})
        for queue in queues:
            for status in sorted({*self.job_statuses, *(s for q, s in counts.jobs if q == queue)}):
                jobs.add_metric([queue, status], float(counts.jobs.get((queue, status), 0)))
        yield jobs
        yield _gauge(
            "workers_live",
            "Workers whose heartbeat is within CEREBROS_STALLED_AFTER_SECONDS.",
            float(counts.workers_live),
        )
        yield _gauge(
            "workers_registered",
            "Workers registered in procrastinate_workers, live or stalled.",
            float(counts.workers_registered),
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{NAMESPACE}_{name}", documentation, value=value)


class _Combined:
    def __init__(self, parts: Iterable[Collector]) -> None:
        self.parts = tuple(parts)

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield from part.collect()
