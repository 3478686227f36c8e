"""The per-loop sweeper that fires connection deadlines (service/http_protocol.py).

The slow-client tests (test_hostile_dos.py, test_keep_alive.py) prove the deadlines end to end;
these pin the sweeper's own rules: only expired deadlines fire, each once; it shortens its
interval for sub-second timeouts; it stops, leaving no timer, when the loop has no connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from service.http_protocol import SWEEP_INTERVAL_S, DeadlineSweeper


class FakeConnection:
    """The three members of DeadlineHttpToolsProtocol the sweeper uses."""

    def __init__(self, deadline_at: float) -> None:
        self._deadline_at = deadline_at
        self.fired = 0
        self._on_deadline: Callable[[], None] | None = self._fire

    def _fire(self) -> None:
        self.fired += 1

    def _disarm(self) -> None:
        self._deadline_at = float("inf")
        self._on_deadline = None


def test_only_expired_deadlines_fire_and_each_once() -> None:
    async def scenario() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        sweeper = DeadlineSweeper.of(loop)
        late, early = FakeConnection(loop.time() - 1), FakeConnection(loop.time() + 60)
        sweeper.add(late, 60.0)  # type: ignore[arg-type]
        sweeper.add(early, 60.0)  # type: ignore[arg-type]
        sweeper._sweep()
        sweeper._sweep()
        sweeper.discard(late)  # type: ignore[arg-type]
        sweeper.discard(early)  # type: ignore[arg-type]
        return late.fired, early.fired

    assert asyncio.run(scenario()) == (1, 0)


def test_sub_second_timeouts_shorten_the_interval() -> None:
    async def scenario() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        sweeper = DeadlineSweeper.of(loop)
        sweeper.add(FakeConnection(float("inf")), 60.0)  # type: ignore[arg-type]
        default = sweeper.interval_s
        sweeper.add(FakeConnection(float("inf")), 0.4)  # type: ignore[arg-type]
        shortened = sweeper.interval_s
        sweeper.protocols.clear()
        return default, shortened

    default, shortened = asyncio.run(scenario())
    assert default == SWEEP_INTERVAL_S
    assert abs(shortened - 0.1) < 1e-9


def test_the_sweeper_stops_when_the_last_connection_is_gone() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        loop = asyncio.get_running_loop()
        sweeper = DeadlineSweeper.of(loop)
        connection = FakeConnection(float("inf"))
        sweeper.add(connection, 60.0)  # type: ignore[arg-type]
        running = sweeper._timer is not None
        sweeper.discard(connection)  # type: ignore[arg-type]
        sweeper._timer.cancel()  # type: ignore[union-attr]
        sweeper._sweep()  # the tick that finds no connection
        return running, sweeper._timer is None, DeadlineSweeper.of(loop) is not sweeper

    running, stopped, forgotten = asyncio.run(scenario())
    assert running and stopped and forgotten
