"""Prometheus metrics of the service: requests by route and status, their latency, samples per model.

Each app has its own registry (no global state), exposed at ``/metrics`` in the text format.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ServiceMetrics"]


class ServiceMetrics:
    """The collectors of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["method", "route", "status"]
        self.requests = Counter("erasable_requests", "HTTP requests.", labels, registry=self.registry)
        self.latency = Histogram(
            "erasable_request_seconds",
            "Request latency by route.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.samples = Gauge("erasable_live_samples", "Live samples per model.", ["model"], registry=self.registry)
        self.forgotten = Counter(
            "erasable_forgotten_samples", "Samples forgotten per model.", ["model"], registry=self.registry
        )
