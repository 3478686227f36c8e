"""Dynamic batching: concurrent requests to one model version are combined into one ORT run.

Each version gets a bounded queue and ``instance_count`` workers (Triton's instance groups). A
free worker takes the oldest request plus every queued request with the same non-batch shapes and
dtypes, up to ``max_batch_size`` rows, runs them as one batch in a thread (ORT releases the GIL)
and hands each request its slice of the outputs.

Latency when idle: a worker never waits for a batch to fill when the model was idle. It waits up
to ``max_queue_delay_us`` for more requests only while traffic is flowing (its previous batch
finished less than that delay ago), which is when waiting buys a bigger batch.

Overload: a full queue answers at once with ``ServerBusy`` (503 + Retry-After) instead of letting
latency grow without bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

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
    """The queue and workers of one model version."""

    def __init__(
        self,
        model: ModelVersion,
        config: BatchingConfig,
        executor: ThreadPoolExecutor,
        metrics: Metrics,
    ) -> None:
        self.model = model
        self.config = config
        self.batching = config.batching and model.batchable
        self._executor = executor
        self._items: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._last_finish = 0.0
        self._delay_s = config.max_queue_delay_us / 1e6
        label = model.name
        self._batch_size = metrics.batch_size.labels(label)
        self._queue_time = metrics.queue_time.labels(label)
        self._exec_time = metrics.execution_time.labels(label)
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._worker()) for _ in range(config.instance_count)]

    def submit(self, feeds: dict[str, np.ndarray]) -> asyncio.Future:
        if len(self._items) >= self.config.max_queue_size:
            raise ServerBusy(
                f"model '{self.model.name}' queue is full ({self.config.max_queue_size} "
                "requests waiting); retry later",
                retry_after_s=1,
            )
        future = asyncio.get_running_loop().create_future()
        if self.batching:
            rows = next(iter(feeds.values())).shape[0]
            self._items.append(_Pending(feeds, rows, batch_key(feeds), future))
        else:
            self._items.append(_Pending(feeds, 1, None, future))
        self._wakeup.set()
        return future

    def close(self) -> None:
        """Finish what is queued, then stop the workers."""
        self._closing = True
        self._wakeup.set()

    async def _worker(self) -> None:
        while True:
            while not self._items:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            batch, rows = self._take()
            if not batch:
                continue
            if self._should_wait(rows):
                await asyncio.sleep(self._delay_s)
                rows = self._take_more(batch, rows)
            await self._execute(batch, rows)

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
            if not first.future.done():  # skip requests whose client went away
                batch = [first]
                if not self.batching:
                    return batch, 1
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
            if item.key == key and rows + item.rows <= limit:
                batch.append(item)
                rows += item.rows
            else:
                skipped.append(item)
        self._items.extendleft(reversed(skipped))
        return rows

    async def _execute(self, batch: list[_Pending], rows: int) -> None:
        started = time.perf_counter()
        for item in batch:
            self._queue_time.observe(started - item.enqueued)
        if len(batch) == 1:
            feeds = batch[0].feeds
        else:
            feeds = {
                name: np.concatenate([item.feeds[name] for item in batch])
                for name in batch[0].feeds
            }
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self._executor, self.model.run, feeds, None)
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        finally:
            self._last_finish = time.perf_counter()
        self._exec_time.observe(self._last_finish - started)
        self._batch_size.observe(rows)
        if len(batch) == 1:
            if not batch[0].future.done():
                batch[0].future.set_result(outputs)
            return
        offset = 0
        for item in batch:
            end = offset + item.rows
            if not item.future.done():
                item.future.set_result([out[offset:end] for out in outputs])
            offset = end


class BatchingScheduler:
    """Routes each request to its version's queue, creating queues on first use."""

    def __init__(self, metrics: Metrics, threads: int = 64) -> None:
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ort")
        self._queues: dict[ModelVersion, VersionQueue] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _queue(self, model: ModelVersion) -> VersionQueue:
        queue = self._queues.get(model)
        if queue is None:
            self._loop = asyncio.get_running_loop()
            queue = VersionQueue(model, model.batching, self._executor, self._metrics)
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
        self._executor.shutdown(wait=False, cancel_futures=True)
