"""Service metrics for CloudWatch, as Embedded Metric Format (EMF) records on stdout.

On ECS nothing scrapes ``/metrics``. Instead the service aggregates its own metrics in process
and, once per interval (60 s), writes a few EMF records to stdout; the FireLens router sends them
to a metrics log group whose ``cloudwatch_logs`` output sets ``log_format json/emf``, and
CloudWatch Logs extracts the metrics (names in ``service/metric_names.py``). Nothing is sent per
request: a request adds to counters and a log-bucketed histogram (a few hundred nanoseconds), so
the cost stays off the request path, and the records per interval are bounded by the number of
model versions loaded.

Distributions (latency, queue time, inference time, batch size) are EMF histograms -- ``Values``
and ``Counts`` with ``Min``/``Max``/``Count``/``Sum``, at most 100 bins -- the form AWS's own EMF
library emits (awslabs/aws-embedded-metrics-java, ``model/Histogram.java``: log buckets of 10 %,
"CloudWatch will drop Histograms with more than 100 bins") and AWS's OpenTelemetry EMF exporter
too (aws-observability/aws-otel-java-instrumentation#814: "metric histograms ... may contain no
more than 100 values"), so CloudWatch computes p50/p99 across tasks. Bins are 10 % wide; if one
interval spans more than 100 of them, neighbours are merged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from service import metric_names as mn
from service.logs import DOCUMENT

EMF_LOGGER = "service.emf"  # the logger member of every EMF record: what the router matches
log = logging.getLogger(EMF_LOGGER)
app_log = logging.getLogger("service.app")  # errors must not look like metrics to the router

MAX_BINS = 100  # EMF/PutMetricData: at most 100 distinct values per metric in one record
MAX_METRICS_PER_DIRECTIVE = 100
MAX_DIMENSIONS_PER_SET = 30
_LOG_RATIO = math.log(1.1)  # 10 % wide bins, as the AWS EMF library's histograms


class Distribution:
    """Values observed in one interval, in log buckets (bounded memory, percentiles kept)."""

    __slots__ = ("bins", "count", "high", "low", "total", "zeros")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value < self.low:
            self.low = value
        if value > self.high:
            self.high = value
        if value > 0:
            index = math.floor(math.log(value) / _LOG_RATIO)
            self.bins[index] = self.bins.get(index, 0) + 1
        else:
            self.zeros += 1

    def to_emf(self) -> dict[str, Any]:
        """The EMF histogram value: bin midpoints and their counts, at most MAX_BINS."""
        bins, shift = self.bins, 0
        limit = MAX_BINS - (1 if self.zeros else 0)
        while len(bins) > limit:  # merge neighbours: bins twice as wide
            shift += 1
            merged: dict[int, int] = {}
            for index, n in self.bins.items():
                key = index >> shift
                merged[key] = merged.get(key, 0) + n
            bins = merged
        width = _LOG_RATIO * (1 << shift)
        values = [0.0] if self.zeros else []
        counts = [self.zeros] if self.zeros else []
        for key in sorted(bins):
            # The bin's geometric midpoint, clamped into what was really observed.
            mid = math.exp((key + 0.5) * width)
            values.append(round(min(max(mid, self.low), self.high), 6))
            counts.append(bins[key])
        return {
            "Values": values,
            "Counts": counts,
            "Max": round(self.high, 6),
            "Min": round(self.low, 6),
            "Count": self.count,
            "Sum": round(self.total, 6),
        }


@dataclass
class _ModelStats:
    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    shed: int = 0
    latency_ms: Distribution = field(default_factory=Distribution)


@dataclass
class _VersionStats:
    queue_ms: Distribution = field(default_factory=Distribution)
    inference_ms: Distribution = field(default_factory=Distribution)
    batch_size: Distribution = field(default_factory=Distribution)


def record(
    namespace: str,
    dimensions: tuple[tuple[str, ...], ...],
    values: dict[str, Any],
    metrics: Iterable[mn.Metric],
    timestamp_ms: int,
) -> dict[str, Any]:
    """One EMF document: the ``_aws`` metadata plus the dimension and metric members."""
    definitions = [{"Name": m.name, "Unit": m.unit} for m in metrics if m.name in values]
    return {
        # Every line the service writes names its logger; the log router routes this one to the
        # metrics log group (log_router/custom.conf). A plain member, ignored by CloudWatch.
        "logger": EMF_LOGGER,
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(d) for d in dimensions],
                    "Metrics": definitions,
                }
            ],
        },
        **values,
    }


class EmfMetrics:
    """Per-interval aggregation of the service's metrics; ``flush()`` turns it into EMF records.

    Request hooks run on the event loop; batch hooks on the batch worker threads; load failures on
    the loader thread: one lock guards the counters (uncontended, well under a microsecond).
    A request's time in flight counts in the interval it ends in (inference takes milliseconds
    against a 60 s interval).
    """

    def __init__(
        self,
        service_name: str,
        namespace: str = mn.NAMESPACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service_name = service_name
        self.namespace = namespace
        self._clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, _ModelStats] = {}
        self._versions: dict[tuple[str, str], _VersionStats] = {}
        self._load_failures: dict[tuple[str, str], int] = {}
        self._in_flight = 0
        self._max_in_flight = 0
        self._busy_s = 0.0
        self._since = clock()
        self._since_wall = time.time()

    # -- hooks (hot path: keep them small) ------------------------------------------------------
    def request_started(self) -> None:
        with self._lock:
            self._in_flight += 1
            if self._in_flight > self._max_in_flight:
                self._max_in_flight = self._in_flight

    def request_finished(self, model: str, status: int, duration_s: float, shed: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            self._busy_s += duration_s
            stats = self._models.get(model)
            if stats is None:
                stats = self._models[model] = _ModelStats()
            stats.requests += 1
            if status >= 500:
                stats.errors_5xx += 1
                if shed:
                    stats.shed += 1
            elif status >= 400:
                stats.errors_4xx += 1
            else:
                stats.latency_ms.add(duration_s * 1000.0)

    def batch(
        self, model: str, version: int, queue_times_s: Iterable[float], run_s: float, rows: int
    ) -> None:
        with self._lock:
            key = (model, str(version))
            stats = self._versions.get(key)
            if stats is None:
                stats = self._versions[key] = _VersionStats()
            for waited in queue_times_s:
                stats.queue_ms.add(waited * 1000.0)
            stats.inference_ms.add(run_s * 1000.0)
            stats.batch_size.add(rows)

    def load_failed(self, model: str, version: int) -> None:
        with self._lock:
            key = (model, str(version))
            self._load_failures[key] = self._load_failures.get(key, 0) + 1

    # -- the interval's records -----------------------------------------------------------------
    def flush(
        self,
        ready_by_provider: dict[str, int] | None = None,
        unavailable: int = 0,
        now: float | None = None,
    ) -> list[dict[str, Any]]:
        """The EMF records of the interval since the last flush, and a fresh interval.

        The service record (concurrency, unavailable versions) is written every interval, even
        idle, so the scaling policy sees 0 rather than missing data when there is no traffic.
        """
        wall = time.time() if now is None else now
        with self._lock:
            models, self._models = self._models, {}
            versions, self._versions = self._versions, {}
            failures, self._load_failures = self._load_failures, {}
            mono = self._clock()
            elapsed = max(mono - self._since, 1e-9)
            busy, self._busy_s = self._busy_s, 0.0
            peak, self._max_in_flight = self._max_in_flight, self._in_flight
            self._since = mono
            # The middle of the interval: with flushes on minute boundaries, each datapoint
            # lands in the CloudWatch minute it describes.
            stamp = int((self._since_wall + wall) / 2 * 1000)
            self._since_wall = wall
        service = {mn.SERVICE: self.service_name}
        out = []
        for name, s in sorted(models.items()):
            values: dict[str, Any] = {
                **service,
                mn.MODEL: name,
                mn.REQUESTS.name: s.requests,
                mn.ERRORS_4XX.name: s.errors_4xx,
                mn.ERRORS_5XX.name: s.errors_5xx,
                mn.SHED.name: s.shed,
            }
            if s.latency_ms.count:
                values[mn.LATENCY.name] = s.latency_ms.to_emf()
            out.append(record(self.namespace, mn.PER_MODEL, values, mn.MODEL_METRICS, stamp))
        for (name, version), v in sorted(versions.items()):
            values = {
                **service,
                mn.MODEL: name,
                mn.VERSION: version,
                mn.QUEUE_TIME.name: v.queue_ms.to_emf(),
                mn.INFERENCE_TIME.name: v.inference_ms.to_emf(),
                mn.BATCH_SIZE.name: v.batch_size.to_emf(),
            }
            out.append(record(self.namespace, mn.PER_VERSION, values, mn.VERSION_METRICS, stamp))
        for (name, version), n in sorted(failures.items()):
            values = {
                **service,
                mn.MODEL: name,
                mn.VERSION: version,
                mn.MODEL_LOAD_FAILURES.name: n,
            }
            out.append(
                record(
                    self.namespace,
                    mn.PER_FAILED_VERSION,
                    values,
                    (mn.MODEL_LOAD_FAILURES,),
                    stamp,
                )
            )
        for provider, n in sorted((ready_by_provider or {}).items()):
            values = {**service, mn.PROVIDER: provider, mn.VERSIONS_READY.name: n}
            out.append(record(self.namespace, mn.PER_PROVIDER, values, (mn.VERSIONS_READY,), stamp))
        values = {
            **service,
            mn.CONCURRENCY.name: round(busy / elapsed, 4),
            mn.MAX_CONCURRENCY.name: peak,
            mn.VERSIONS_UNAVAILABLE.name: unavailable,
        }
        out.append(record(self.namespace, mn.PER_SERVICE, values, mn.SERVICE_METRICS, stamp))
        return out


def write(records: Iterable[dict[str, Any]]) -> None:
    """One JSON line per record, written verbatim by the service's JSON log handler (so lines
    from other threads never interleave with it). Its own logger at INFO: metrics do not depend
    on LOG_LEVEL, and the router routes on ``_aws``, not on a level."""
    for doc in records:
        log.info("metrics", extra={DOCUMENT: doc})


log.setLevel(logging.INFO)


async def publish_periodically(
    metrics: EmfMetrics,
    interval_s: float,
    state: Callable[[], tuple[dict[str, int], int]],
) -> None:
    """Flush every ``interval_s`` (on its multiples) until cancelled, then once more (the last
    partial interval of a task being stopped is not lost)."""
    try:
        while True:
            # On multiples of the interval (wall clock): every task flushes at the same moments,
            # so each 1-minute period gets exactly one datapoint per task.
            await asyncio.sleep(interval_s - time.time() % interval_s)
            _flush(metrics, state)
    finally:
        with contextlib.suppress(Exception):
            _flush(metrics, state)


def _flush(metrics: EmfMetrics, state: Callable[[], tuple[dict[str, int], int]]) -> None:
    try:
        ready, unavailable = state()
        write(metrics.flush(ready, unavailable))
    except Exception:
        app_log.exception("metrics flush failed")
