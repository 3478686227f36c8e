"""The CloudWatch names of the service's own metrics: one source for emitter and stack.

The service writes these metrics as CloudWatch Embedded Metric Format records
(``service/emf.py``); the stack's dashboard, alarms and scaling policy (``components/``) refer to
them through this module, so what the dashboard shows is what the service emits (the tests check
both sides against it). Plain data, no imports beyond the standard library: the Pulumi program
reads it without the service's runtime.

Cardinality is bounded by design: the only dimension values are the stack's service name, the
model and version names the repository holds (unknown URLs count as ``_unknown``) and the
execution provider (CPU/CUDA). No per-request or per-task values.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "OnnxServing"
GPU_NAMESPACE = f"{NAMESPACE}/GPU"  # the CloudWatch agent's nvidia_gpu metrics (GPU stacks)

# Dimension names.
SERVICE = "ServiceName"
MODEL = "Model"
VERSION = "Version"
PROVIDER = "ExecutionProvider"
UNKNOWN_MODEL = "_unknown"

# Dimension sets of each record kind (EMF ``Dimensions``): every metric of a record is published
# once per set, so ``(SERVICE,)`` gives the service-wide series the alarms and scaling use.
PER_MODEL = ((SERVICE,), (SERVICE, MODEL))
PER_VERSION = ((SERVICE,), (SERVICE, MODEL), (SERVICE, MODEL, VERSION))
PER_FAILED_VERSION = ((SERVICE,), (SERVICE, MODEL, VERSION))
PER_PROVIDER = ((SERVICE, PROVIDER),)
PER_SERVICE = ((SERVICE,),)


@dataclass(frozen=True)
class Metric:
    """One metric: CloudWatch name and unit, the dimension sets it is published with, and
    whether its value is a distribution (EMF Values/Counts: percentiles work) or a number."""

    name: str
    unit: str
    dimensions: tuple[tuple[str, ...], ...]
    distribution: bool
    description: str

    def dimension_names(self) -> set[str]:
        return {d for dims in self.dimensions for d in dims}


# -- per model, one record per model and interval (inference requests) ----------------------------
REQUESTS = Metric("Requests", "Count", PER_MODEL, False, "inference requests answered")
ERRORS_4XX = Metric("Errors4xx", "Count", PER_MODEL, False, "inference requests answered 4xx")
ERRORS_5XX = Metric(
    "Errors5xx", "Count", PER_MODEL, False, "inference requests answered 5xx (shed included)"
)
SHED = Metric(
    "RequestsShed", "Count", PER_MODEL, False, "503 + Retry-After because the queue was full"
)
LATENCY = Metric(
    "Latency", "Milliseconds", PER_MODEL, True, "successful inference, body start to response"
)
# -- per model version, one record per version and interval (batches) -----------------------------
QUEUE_TIME = Metric("QueueTime", "Milliseconds", PER_VERSION, True, "wait for a batch, per request")
INFERENCE_TIME = Metric(
    "InferenceTime", "Milliseconds", PER_VERSION, True, "one model run (one batch)"
)
BATCH_SIZE = Metric("BatchSize", "Count", PER_VERSION, True, "rows per model run")
# -- loading and state -----------------------------------------------------------------------------
MODEL_LOAD_FAILURES = Metric(
    "ModelLoadFailures", "Count", PER_FAILED_VERSION, False, "versions that failed to load"
)
VERSIONS_READY = Metric(
    "ModelVersionsReady", "Count", PER_PROVIDER, False, "versions serving, by provider in use"
)
VERSIONS_UNAVAILABLE = Metric(
    "ModelVersionsUnavailable", "Count", PER_SERVICE, False, "versions on disk that cannot serve"
)
# -- the task's load: the scaling signal ---------------------------------------------------------
CONCURRENCY = Metric(
    "ConcurrentRequests",
    "Count",
    PER_SERVICE,
    False,
    "average inference requests in flight over the interval (Little's law: busy time / interval)",
)
MAX_CONCURRENCY = Metric(
    "MaxConcurrentRequests", "Count", PER_SERVICE, False, "most inference requests in flight"
)

MODEL_METRICS = (REQUESTS, ERRORS_4XX, ERRORS_5XX, SHED, LATENCY)
VERSION_METRICS = (QUEUE_TIME, INFERENCE_TIME, BATCH_SIZE)
SERVICE_METRICS = (CONCURRENCY, MAX_CONCURRENCY, VERSIONS_UNAVAILABLE)
ALL = (*MODEL_METRICS, *VERSION_METRICS, MODEL_LOAD_FAILURES, VERSIONS_READY, *SERVICE_METRICS)
BY_NAME = {m.name: m for m in ALL}
