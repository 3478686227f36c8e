"""Prometheus metrics of the service, bound to one registry per app (tests build several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.emf import EmfMetrics

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Every collector the service exports at ``GET /metrics``, plus (``emf``, optional) the
    same measurements aggregated for CloudWatch (service/emf.py)."""

    def __init__(
        self, registry: CollectorRegistry | None = None, emf: EmfMetrics | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.emf = emf
        r = self.registry
        self.http_requests = Counter(
            "http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.in_flight = Gauge("http_requests_in_flight", "HTTP requests being served.", registry=r)
        self.inference_requests = Counter(
            "inference_requests",
            "Inference requests by model and HTTP status (4xx/5xx are failures).",
            ["model", "status"],
            registry=r,
        )
        self.inference_failures = Counter(
            "inference_failures",
            "Inference requests that failed, by model and status.",
            ["model", "status"],
            registry=r,
        )
        self.inference_latency = Histogram(
            "inference_request_duration_seconds",
            "Inference request latency from the start of the body to the encoded response.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "inference_batch_size",
            "Requests combined into one model run.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "inference_queue_duration_seconds",
            "Time a request waited for its batch.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.execution_time = Histogram(
            "inference_execution_duration_seconds",
            "Time of one model run (one batch).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.models_ready = Gauge(
            "models_ready", "Model versions loaded and ready to serve.", registry=r
        )
        self.grpc_requests = Counter(
            "grpc_requests",
            "gRPC calls by method and status code.",
            ["method", "code"],
            registry=r,
        )
