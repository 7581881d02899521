"""Prometheus metrics, one registry per app so tests can build many apps in one process."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.agent_requests = Counter(
            "garrison_agent_requests",
            "Agent API requests by task and status code",
            ["task", "status"],
            registry=self.registry,
        )
        self.agent_latency = Histogram(
            "garrison_agent_request_seconds",
            "Agent API request handling time",
            ["task"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.admin_requests = Counter(
            "garrison_admin_requests",
            "Admin API requests by method and status code",
            ["method", "status"],
            registry=self.registry,
        )
        self.alerts_stored = Counter(
            "garrison_alerts_stored", "Alerts stored", registry=self.registry
        )
        self.alerts_duplicate = Counter(
            "garrison_alerts_duplicate", "Repeated alerts not stored again", registry=self.registry
        )
        self.enrollments = Counter(
            "garrison_enrollments", "Enrollments by outcome", ["outcome"], registry=self.registry
        )
        self.events_ingested = Counter(
            "garrison_events_ingested",
            "Events sent by stations, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.export_sent = Counter(
            "garrison_export_sent",
            "Messages delivered to an export target",
            ["target"],
            registry=self.registry,
        )
        self.export_failed = Counter(
            "garrison_export_failed",
            "Failed deliveries (retried)",
            ["target"],
            registry=self.registry,
        )
        self.export_dropped = Counter(
            "garrison_export_dropped",
            "Events dropped past the backlog bound",
            ["target"],
            registry=self.registry,
        )
        self.export_lag = Gauge(
            "garrison_export_lag",
            "Events stored but not yet exported",
            ["target"],
            registry=self.registry,
        )
        self.presence_flush = Gauge(
            "garrison_presence_pending", "Check-ins waiting to be written", registry=self.registry
        )

    def add_collector(self, collect: Callable[[], dict[str, tuple[str, float]]]) -> None:
        """Gauges computed at scrape time (station counts read from the database)."""

        class _Computed(Collector):
            def collect(self):  # type: ignore[no-untyped-def]
                for name, (doc, value) in collect().items():
                    family = GaugeMetricFamily(name, doc)
                    family.add_metric([], value)
                    yield family

        self.registry.register(_Computed())

    def render(self) -> bytes:
        return generate_latest(self.registry)
