"""Dynamic batching: concurrent requests to one model version are combined into one ORT run.

Each version gets a bounded queue and ``instance_count`` worker threads (Triton's instance
groups). A free worker takes the oldest request plus every queued request with the same
non-batch shapes and dtypes, up to ``max_batch_size`` rows, runs them as one batch (ORT releases
the GIL) and hands each request its slice of the outputs.

Latency when idle: a worker never waits for a batch to fill when the model was idle. It waits up
to ``max_queue_delay_us`` for more requests only while traffic is flowing (its previous batch
finished less than that delay ago), which is when waiting buys a bigger batch.

Overload: a full queue answers at once with ``ServerBusy`` (503 + Retry-After) instead of letting
latency grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.errors import ServerBusy
from service.metrics import Metrics
from service.model import ModelVersion
from service.model_config import BatchingConfig

_SCAN_LIMIT = 4  # look at most this many times max_batch_size queued items for a compatible one


@dataclass(slots=True)
class _Pending:
    feeds: dict[str, np.ndarray]
    rows: int
    key: tuple | None
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


def batch_key(feeds: dict[str, np.ndarray]) -> tuple:
    """Requests may share a batch only when everything but the first dimension matches."""
    return tuple((name, a.shape[1:], a.dtype.str) for name, a in sorted(feeds.items()))


class VersionQueue:
    """The queue and worker threads of one model version.

    Workers are threads, not event-loop tasks: under overload an event-loop iteration can take
    tens of milliseconds of request parsing, and a worker that got one turn per iteration would
    run the model that rarely. A thread runs the next batch the moment the previous one ends and
    hands results back with one ``call_soon_threadsafe`` per batch.
    """

    def __init__(self, model: ModelVersion, config: BatchingConfig, metrics: Metrics) -> None:
        self.model = model
        self.config = config
        self.batching = model.dynamic_batching  # config, structure and probe (model.py)
        self._items: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._last_finish = 0.0
        self._delay_s = config.max_queue_delay_us / 1e6
        self._loop = asyncio.get_running_loop()
        label = model.name
        self._batch_size = metrics.batch_size.labels(label)
        self._queue_time = metrics.queue_time.labels(label)
        self._exec_time = metrics.execution_time.labels(label)
        self._emf = metrics.emf
        self._workers = [
            threading.Thread(
                target=self._worker, name=f"batch-{model.name}-{model.version}-{i}", daemon=True
            )
            for i in range(config.instance_count)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, feeds: dict[str, np.ndarray]) -> asyncio.Future:
        future = self._loop.create_future()
        rows = {a.shape[0] if a.ndim else None for a in feeds.values()}
        if self.batching and len(rows) == 1 and None not in rows:
            item = _Pending(feeds, rows.pop(), batch_key(feeds), future)
        else:  # not batchable, scalar, or inputs disagree on their first dimension: run alone
            item = _Pending(feeds, 1, None, future)
        with self._cond:
            if len(self._items) >= self.config.max_queue_size:
                raise ServerBusy(
                    f"model '{self.model.name}' queue is full ({self.config.max_queue_size} "
                    "requests waiting); retry later",
                    retry_after_s=1,
                )
            self._items.append(item)
            self._cond.notify()
        return future

    def close(self) -> None:
        """Finish what is queued, then stop the workers."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def _worker(self) -> None:
        while True:
            with self._cond:
                while not self._items:
                    if self._closing:
                        return
                    self._cond.wait()
                batch, rows = self._take()
                if batch and self._should_wait(rows):
                    deadline = time.perf_counter() + self._delay_s
                    while rows < self.config.max_batch_size:
                        left = deadline - time.perf_counter()
                        if left <= 0:
                            break
                        self._cond.wait(left)  # releases the lock: requests keep coming
                        rows = self._take_more(batch, rows)
            if batch:
                self._execute(batch, rows)

    def _should_wait(self, rows: int) -> bool:
        return (
            self.batching
            and self._delay_s > 0
            and rows < self.config.max_batch_size
            and time.perf_counter() - self._last_finish < self._delay_s
        )

    def _take(self) -> tuple[list[_Pending], int]:
        while self._items:
            first = self._items.popleft()
            if not first.future.done():  # skip requests cancelled while queued
                batch = [first]
                if first.key is None:
                    return batch, first.rows
                return batch, self._take_more(batch, first.rows)
        return [], 0

    def _take_more(self, batch: list[_Pending], rows: int) -> int:
        limit = self.config.max_batch_size
        key = batch[0].key
        skipped: list[_Pending] = []
        scanned = 0
        while self._items and rows < limit and scanned < limit * _SCAN_LIMIT:
            item = self._items.popleft()
            scanned += 1
            if item.future.done():
                continue
            if item.key is not None and item.key == key and rows + item.rows <= limit:
                batch.append(item)
                rows += item.rows
            else:
                skipped.append(item)
        self._items.extendleft(reversed(skipped))
        return rows

    def _execute(self, batch: list[_Pending], rows: int) -> None:
        started = time.perf_counter()
        for item in batch:
            self._queue_time.observe(started - item.enqueued)
        if len(batch) == 1:
            try:
                results = [self.model.run(batch[0].feeds)]
            except Exception as exc:
                self._finish(started, batch, rows)
                self._deliver(_fail, batch, exc)
                return
        else:
            results = self._run_combined(batch, rows)
        self._finish(started, batch, rows)
        self._deliver(_resolve, batch, results)

    def _run_combined(self, batch: list[_Pending], rows: int) -> list[Any]:
        """One run for the whole batch, split by rows. If the combined run fails, or an output
        does not have one row per input row, each request runs alone instead, so one bad request
        cannot fail (or receive rows of) the others."""
        feeds = {
            name: np.concatenate([item.feeds[name] for item in batch]) for name in batch[0].feeds
        }
        try:
            outputs = self.model.run(feeds)
        except Exception:
            outputs = None
        if outputs is None or any(out.shape[:1] != (rows,) for out in outputs):
            return [self._run_alone(item) for item in batch]
        results, offset = [], 0
        for item in batch:
            end = offset + item.rows
            results.append([out[offset:end] for out in outputs])
            offset = end
        return results

    def _run_alone(self, item: _Pending) -> list[np.ndarray] | BaseException:
        try:
            return self.model.run(item.feeds)
        except Exception as exc:
            return exc

    def _finish(self, started: float, batch: list[_Pending], rows: int) -> None:
        self._last_finish = time.perf_counter()
        self._exec_time.observe(self._last_finish - started)
        self._batch_size.observe(rows)
        if self._emf is not None:
            self._emf.batch(
                self.model.name,
                self.model.version,
                [started - item.enqueued for item in batch],
                self._last_finish - started,
                rows,
            )

    def _deliver(self, fn: Any, batch: list[_Pending], payload: Any) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: the server is gone, nobody waits
            self._loop.call_soon_threadsafe(fn, batch, payload)


def _resolve(batch: list[_Pending], results: list[list[np.ndarray] | BaseException]) -> None:
    for item, result in zip(batch, results, strict=True):
        if item.future.done():
            continue
        if isinstance(result, BaseException):
            item.future.set_exception(result)
        else:
            item.future.set_result(result)


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)


class BatchingScheduler:
    """Routes each request to its version's queue, creating queues on first use."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._queues: dict[ModelVersion, VersionQueue] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _queue(self, model: ModelVersion) -> VersionQueue:
        queue = self._queues.get(model)
        if queue is None:
            self._loop = asyncio.get_running_loop()
            queue = VersionQueue(model, model.batching, self._metrics)
            self._queues[model] = queue
        return queue

    async def run(
        self, model: ModelVersion, feeds: dict[str, np.ndarray], output_names: Sequence[str]
    ) -> list[np.ndarray]:
        outputs = await self._queue(model).submit(feeds)
        index = model.output_index
        return [outputs[index[name]] for name in output_names]

    def release(self, model: ModelVersion) -> None:
        """Called (from the loader thread) when a version is unloaded: drain, then stop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._close_queue, model)

    def _close_queue(self, model: ModelVersion) -> None:
        queue = self._queues.pop(model, None)
        if queue is not None:
            queue.close()

    def close(self) -> None:
        for queue in self._queues.values():
            queue.close()
        self._queues.clear()
