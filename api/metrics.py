"""Prometheus metrics of the gateway (a registry of its own, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120, 300)


class Metrics:
    """Requests and latency by route, analyses by outcome and by flagged class, queue depth."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ich_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ich_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.analyses = Counter(
            "ich_analyses",
            "Analyses finished, by outcome (done or a problem type).",
            ["outcome"],
            registry=self.registry,
        )
        self.analysis_seconds = Histogram(
            "ich_analysis_duration_seconds",
            "Acceptance to result, by stage.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.flagged = Counter(
            "ich_results_flagged",
            "Results flagged positive, by class (any = any ICH).",
            ["hemorrhage_class"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "ich_queue_depth", "Analyses accepted and not finished.", registry=self.registry
        )
        self.busy = Gauge("ich_workers_busy", "Workers analysing now.", registry=self.registry)
        self.webhooks = Counter(
            "ich_webhook_deliveries",
            "Webhook deliveries by outcome.",
            ["outcome"],
            registry=self.registry,
        )
