"""Decoding big request bodies off the event loop, within a memory budget.

A 48 MB JSON body takes most of a second of parsing (orjson, then numpy): on the event loop
that is a second in which ``/health`` and every other request wait, and the load balancer's
2 s health check fails a task after two such stalls. So bodies above ``INLINE_BYTES`` are
decompressed and decoded off the loop: binary bodies (little JSON, numpy copies) in a worker
thread, JSON above ``PROCESS_JSON_BYTES`` in the decoder process (``decode_worker.py``: one
``orjson.loads`` call holds the GIL throughout, which a thread cannot hide). Decoding JSON
multiplies memory (Python lists hold 30+ bytes per number): a byte budget lets through at most
``budget`` bytes of bodies being decoded at once, so the peak stays near one maximum-size
request however many arrive together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

INLINE_BYTES = 256 * 1024  # below this, the thread hop costs more than the decode
PROCESS_JSON_BYTES = 4 * 1024 * 1024  # ~30 ms of orjson: above, parse in the decoder process


class ByteBudget:
    """An asyncio semaphore counted in bytes; one request larger than the budget still runs
    (alone), so nothing waits forever."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._cond: asyncio.Condition | None = None

    async def run(self, size: int, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        if self._cond is None:
            self._cond = asyncio.Condition()
        async with self._cond:
            await self._cond.wait_for(lambda: self.used == 0 or self.used + size <= self.budget)
            self.used += size
        try:
            return await fn(*args)
        finally:
            async with self._cond:
                self.used -= size
                self._cond.notify_all()
