"""Server metrics in Prometheus form: one registry per application.

`ServerMetrics` owns a `CollectorRegistry` of its own (never the global one, so tests
can build several apps in one process) holding:

- what the control plane observes as it happens: join latency (``JOIN_ROOM`` until
  ``ROOM_JOINED`` is queued), store call latency (through `TimedStore`), errors by type;
- what is read at scrape time: rooms, participants, producers, consumers and the media
  counters of ``room.router.counter_totals()`` (`api.media_metrics`), open WebSockets;
- the HTTP connection cap: connections open and refused (with ``serve``'s cap);
- the process's CPU seconds, resident memory and open file descriptors (prometheus-client's
  process collector), and the asyncio tasks of its event loop (a leak shows there first).

`/metrics` serves it (`api.routes.metrics_routes`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .connections import ConnectionCap
from .errors import ApiError
from .media_metrics import MediaCollector, RoomSource
from .store import Store

if TYPE_CHECKING:
    from .cluster.node import ClusterNode

JOIN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
INTERNAL_ERROR = "InternalError"


class ServerMetrics:
    """The metrics of one application; `render()` is what ``/metrics`` answers."""

    def __init__(self, *, enabled: bool = True, token: str | None = None) -> None:
        self.enabled = enabled
        self.token = token
        self.registry = CollectorRegistry()
        self.join_seconds = Histogram(
            "classroom_join_seconds",
            "Time from receiving JOIN_ROOM to queueing ROOM_JOINED",
            buckets=JOIN_BUCKETS,
            registry=self.registry,
        )
        self.store_seconds = Histogram(
            "classroom_store_seconds",
            "Latency of store calls, by Store method",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "classroom_errors",
            "Errors answered to clients, by channel (http, ws) and error class",
            ["channel", "type"],
            registry=self.registry,
        )
        self.media = MediaCollector(self.registry)
        self.media_path = Gauge(
            "classroom_media_path",
            "1 for the path media takes, per direction: native (the C extensions) or python",
            ["direction", "path"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        Gauge(
            "classroom_event_loop_tasks",
            "asyncio tasks not done on the server's event loop",
            registry=self.registry,
        ).set_function(_event_loop_tasks)

    def watch(self, rooms: RoomSource, websockets: Callable[[], int]) -> None:
        """Where scrape-time gauges read from (set once the services exist)."""
        self.media.bind(rooms, websockets)

    def watch_connections(self, cap: ConnectionCap) -> None:
        """Expose the HTTP connection cap's open count and refusals (`api.connections`)."""
        self.registry.register(ConnectionCapCollector(cap))

    def watch_cluster(self, node: ClusterNode) -> None:
        """Cluster mode: the live nodes this node sees, and whether Redis answers."""
        Gauge(
            "classroom_cluster_nodes",
            "Live nodes of the cluster at this node's last heartbeat (this one included)",
            registry=self.registry,
        ).set_function(lambda: len(node.registry.nodes))
        Gauge(
            "classroom_cluster_redis_up",
            "1 while this node's heartbeats reach Redis, 0 while they fail",
            registry=self.registry,
        ).set_function(lambda: 0.0 if node.registry.error else 1.0)

    def report_media_paths(self, paths: dict[str, str]) -> None:
        """Which receive and send paths the media plane took at start (`MediaConfig.
        media_paths`)."""
        for direction, path in paths.items():
            self.media_path.labels(direction, path).set(1)

    def count_error(self, channel: str, error: BaseException) -> None:
        """One error answered on ``channel``: `ApiError` subclasses by name, else internal."""
        kind = type(error).__name__ if isinstance(error, ApiError) else INTERNAL_ERROR
        self.errors.labels(channel, kind).inc()

    def observe_join(self, started: float) -> None:
        """A join that began at ``started`` (``time.perf_counter()``) succeeded."""
        self.join_seconds.observe(time.perf_counter() - started)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition (text format, or OpenMetrics if asked for) and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def _event_loop_tasks() -> float:
    """Tasks of the running loop (scrapes run on it); 0 when read outside one."""
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:
        return 0.0


METRICS = web.AppKey("metrics", ServerMetrics)


class ConnectionCapCollector(Collector):
    """The HTTP connection cap at scrape time: connections open, refusals by cap."""

    def __init__(self, cap: ConnectionCap) -> None:
        self._cap = cap

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "classroom_http_connections",
            "HTTP connections open (WebSockets included), as the connection cap counts them",
            value=self._cap.open,
        )
        refused = CounterMetricFamily(
            "classroom_http_connections_refused",
            "Connections answered 503 by the cap: HTTP_MAX_CONNECTIONS (total) or "
            "HTTP_MAX_CONNECTIONS_PER_ADDRESS (per_address)",
            labels=["cap"],
        )
        for cap in ("total", "per_address"):
            refused.add_metric([cap], self._cap.refused_by[cap])
        yield refused


class TimedStore(Store):
    """A `Store` that delegates every call to ``inner`` and records its latency.

    The delegating methods are generated from `Store`'s abstract methods (below the
    class), so a method added to the interface is timed without touching this class.
    Build one with `TimedStore.wrap`.
    """

    def __init__(self, inner: Store, seconds: Histogram) -> None:
        self.inner = inner
        self._seconds = seconds

    @classmethod
    def wrap(cls, inner: Store, seconds: Histogram) -> TimedStore:
        return cls(inner, seconds)

    def _observe(self, operation: str, started: float) -> None:
        self._seconds.labels(operation).observe(time.perf_counter() - started)


def _timed_method(name: str) -> Callable[..., Awaitable[Any]]:
    async def method(self: TimedStore, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await getattr(self.inner, name)(*args, **kwargs)
        finally:
            self._observe(name, started)

    method.__name__ = name
    method.__qualname__ = f"TimedStore.{name}"
    method.__doc__ = getattr(Store, name).__doc__
    return method


for _name in sorted(Store.__abstractmethods__):
    setattr(TimedStore, _name, _timed_method(_name))
TimedStore.__abstractmethods__ = frozenset()
