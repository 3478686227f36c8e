"""The in-process ONNX Runtime limit: ``session.run`` in a loop, no server, one intra-op thread.

Run as ``taskset -c 0 python -m bench.inprocess MODEL --seconds S --batch 1 --batch 32`` so it
shares the servers' CPU; prints one JSON object ``{"<batch>": {"inferences_s", "samples_s",
"cpu_us_per_inference", "cpu_share"}}`` (CPU time says what the run cost even when other work
took part of the CPU).
A server that batches can beat the batch-1 figure; none can beat the batch-32 samples/s.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.models import INPUT, OUTPUT
from bench.payloads import random_input, reference_session


def measure(model: Path, batch: int, seconds: float) -> dict[str, float]:
    session = reference_session(model)
    x = random_input(batch, seed=batch)
    warm_until = time.perf_counter() + min(0.5, seconds / 4)
    while time.perf_counter() < warm_until:
        session.run([OUTPUT], {INPUT: x})
    runs = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    deadline = started + seconds
    while True:
        session.run([OUTPUT], {INPUT: x})
        runs += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    rate = runs / (now - started)
    cpu_s = time.process_time() - cpu_started
    return {
        "inferences_s": rate,
        "samples_s": rate * batch,
        "cpu_us_per_inference": 1e6 * cpu_s / runs,
        "cpu_share": cpu_s / (now - started),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch", type=int, action="append", default=[])
    args = parser.parse_args(argv)
    result = {str(b): measure(args.model, b, args.seconds) for b in args.batch or [1, 32]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
