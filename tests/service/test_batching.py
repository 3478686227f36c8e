"""Dynamic batching: combined runs give the same answers, shapes never mix, idle never waits,
a full queue answers 503 at once."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.models import build_mlp
from service.batching import BatchingScheduler, batch_key
from service.errors import ServerBusy
from service.metrics import Metrics
from service.model import ModelVersion, SessionConfig
from service.model_config import BatchingConfig, load_model_config
from tests.service.conftest import settings_for
from tests.service.helpers import client, scale_model, serving, write_model
from tests.service.test_shutdown import slow_model

CPU = SessionConfig(providers=("CPUExecutionProvider",), intra_op_threads=1)


def _load(tmp_path: Path, model: onnx.ModelProto, config: BatchingConfig, name: str = "m"):
    path = write_model(tmp_path / name / "1" / "model.onnx", model)
    return ModelVersion.load(name, 1, path, CPU, config)


def _observed_batches(metrics: Metrics, model: str) -> tuple[float, float]:
    count = metrics.registry.get_sample_value("inference_batch_size_count", {"model": model})
    total = metrics.registry.get_sample_value("inference_batch_size_sum", {"model": model})
    return count or 0.0, total or 0.0


class GatedModel:
    """Wraps a model: its first run blocks until ``release`` is set, so that the requests sent
    meanwhile queue up and are combined deterministically."""

    def __init__(self, model: ModelVersion) -> None:
        self._model = model
        self.release = threading.Event()
        self.calls: list[int] = []
        self.name, self.version = model.name, model.version
        self.inputs, self.outputs = model.inputs, model.outputs
        self.output_names, self.output_index = model.output_names, model.output_index
        self.batching, self.batchable = model.batching, model.batchable
        self.dynamic_batching = model.dynamic_batching

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not self.calls:
            self.release.wait(10)
        self.calls.append(next(iter(feeds.values())).shape[0])
        return self._model.run(feeds)


def test_batched_outputs_equal_unbatched_runs(tmp_path: Path) -> None:
    model = _load(tmp_path, build_mlp(), BatchingConfig(max_batch_size=16))
    rng = np.random.default_rng(3)
    requests = [rng.standard_normal((1 + i % 3, 256)).astype(np.float32) for i in range(64)]
    expected = [model.run({"input": x})[0] for x in requests]
    gated = GatedModel(model)
    metrics = Metrics()
    scheduler = BatchingScheduler(metrics)

    async def go() -> list[list[np.ndarray]]:
        tasks = [
            asyncio.ensure_future(scheduler.run(gated, {"input": x}, ["output"])) for x in requests
        ]
        await asyncio.sleep(0.05)  # every request is queued behind the gated first run
        gated.release.set()
        return await asyncio.gather(*tasks)

    results = asyncio.run(go())
    scheduler.close()
    for got, want, x in zip(results, expected, requests, strict=True):
        assert got[0].shape == (x.shape[0], 128)
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)
    count, total = _observed_batches(metrics, "m")
    assert total == sum(x.shape[0] for x in requests)
    assert max(gated.calls) > 8, gated.calls  # queued requests were combined ...
    assert max(gated.calls) <= 16  # ... up to max_batch_size rows
    assert count == len(gated.calls) < len(requests)


class PoisonModel:
    """A batchable stub: rows whose first value is negative make the whole run fail."""

    name, version = "poison", 1
    output_index = {"y": 0}
    batchable = dynamic_batching = True
    batching = BatchingConfig(max_batch_size=8)

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        if self.calls == 1:
            self.release.wait(10)
        x = feeds["x"]
        if (x[:, 0] < 0).any():
            raise RuntimeError("poisoned row")
        return [x * 2]


def test_one_bad_request_does_not_fail_the_others_in_its_batch() -> None:
    model = PoisonModel()
    scheduler = BatchingScheduler(Metrics())
    good = [np.full((1, 2), float(i + 1), dtype=np.float32) for i in range(3)]
    bad = np.full((1, 2), -1.0, dtype=np.float32)

    async def go() -> list:
        first = asyncio.ensure_future(scheduler.run(model, {"x": good[0]}, ["y"]))
        await asyncio.sleep(0.05)
        rest = [
            asyncio.ensure_future(scheduler.run(model, {"x": x}, ["y"]))
            for x in (good[1], bad, good[2])
        ]
        await asyncio.sleep(0.05)
        model.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(go())
    scheduler.close()
    assert isinstance(results[2], RuntimeError)
    for got, x in zip([results[0], results[1], results[3]], good, strict=True):
        np.testing.assert_array_equal(got[0], x * 2)


class RowDroppingModel(PoisonModel):
    """Returns one row whatever it is given: its outputs cannot be split by request."""

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        if self.calls == 1:
            self.release.wait(10)
        return [feeds["x"][:1] * 2]


def test_outputs_without_a_row_per_input_row_are_never_split_across_requests() -> None:
    model = RowDroppingModel()
    scheduler = BatchingScheduler(Metrics())
    xs = [np.full((1, 2), float(i + 1), dtype=np.float32) for i in range(4)]

    async def go() -> list:
        tasks = [asyncio.ensure_future(scheduler.run(model, {"x": xs[0]}, ["y"]))]
        await asyncio.sleep(0.05)
        tasks += [asyncio.ensure_future(scheduler.run(model, {"x": x}, ["y"])) for x in xs[1:]]
        await asyncio.sleep(0.05)
        model.release.set()
        return await asyncio.gather(*tasks)

    results = asyncio.run(go())
    scheduler.close()
    for got, x in zip(results, xs, strict=True):
        np.testing.assert_array_equal(got[0], x * 2)  # each answer computed from its own row


def test_inputs_disagreeing_on_the_batch_dimension_run_alone() -> None:
    model = PoisonModel()
    model.release.set()
    scheduler = BatchingScheduler(Metrics())
    feeds = {"x": np.ones((2, 2), dtype=np.float32), "z": np.ones((3, 2), dtype=np.float32)}

    async def go() -> list:
        return await scheduler.run(model, feeds, ["y"])

    np.testing.assert_array_equal(asyncio.run(go())[0], feeds["x"] * 2)
    scheduler.close()


def _dynamic_width_model() -> onnx.ModelProto:
    """s = sum over axis 1 of x: [n, w] -> [n, 1], with both dimensions dynamic."""
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=1)],
        "rowsum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "w"])],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["n", 1])],
        initializer=[numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m


def test_requests_with_different_inner_shapes_are_not_mixed(tmp_path: Path) -> None:
    model = _load(tmp_path, _dynamic_width_model(), BatchingConfig(max_batch_size=64))
    widths = [4, 8, 4, 8, 3] * 8
    requests = [np.full((1 + i % 2, w), 1.0, dtype=np.float32) for i, w in enumerate(widths)]
    scheduler = BatchingScheduler(Metrics())

    async def go() -> list:
        return await asyncio.gather(*(scheduler.run(model, {"x": x}, ["s"]) for x in requests))

    results = asyncio.run(go())
    scheduler.close()
    for result, x in zip(results, requests, strict=True):
        assert result[0].tolist() == [[float(x.shape[1])]] * x.shape[0]
    assert batch_key({"x": requests[0]}) != batch_key({"x": requests[1]})


def test_idle_request_does_not_wait_for_the_queue_delay(tmp_path: Path) -> None:
    delay_s = 5.0
    config = BatchingConfig(max_batch_size=32, max_queue_delay_us=int(delay_s * 1e6))
    model = _load(tmp_path, build_mlp(), config)
    scheduler = BatchingScheduler(Metrics())
    x = np.ones((1, 256), dtype=np.float32)

    async def go() -> float:
        started = time.perf_counter()
        await scheduler.run(model, {"input": x}, ["output"])
        return time.perf_counter() - started

    elapsed = asyncio.run(go())
    scheduler.close()
    assert elapsed < delay_s / 2, f"an idle request waited {elapsed:.2f}s for a batch to fill"


def test_model_without_dynamic_batch_dimension_runs_requests_alone(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    model = _load(tmp_path, m, BatchingConfig(max_batch_size=8))
    assert not model.batchable
    metrics = Metrics()
    scheduler = BatchingScheduler(metrics)
    x = np.array([[-1, 2], [3, -4]], dtype=np.float32)

    async def go() -> list:
        return await asyncio.gather(*(scheduler.run(model, {"x": x}, ["y"]) for _ in range(5)))

    results = asyncio.run(go())
    scheduler.close()
    assert all(np.array_equal(r[0], np.maximum(x, 0)) for r in results)
    assert _observed_batches(metrics, "m") == (5.0, 5.0)


def test_full_queue_raises_server_busy_at_once(tmp_path: Path) -> None:
    model = _load(tmp_path, slow_model(), BatchingConfig(max_batch_size=1, max_queue_size=2))
    scheduler = BatchingScheduler(Metrics())
    x = np.ones((256, 1024), dtype=np.float32)

    async def go() -> list:
        return await asyncio.gather(
            *(scheduler.run(model, {"x": x}, ["y"]) for _ in range(6)), return_exceptions=True
        )

    results = asyncio.run(go())
    scheduler.close()
    busy = [r for r in results if isinstance(r, ServerBusy)]
    assert busy and all(b.headers == {"Retry-After": "1"} for b in busy)
    assert any(isinstance(r, list) for r in results)


def test_queue_full_is_503_with_retry_after_over_http(tmp_path: Path) -> None:
    write_model(tmp_path / "slow" / "1" / "model.onnx", slow_model())
    (tmp_path / "slow" / "config.json").write_text(
        '{"max_batch_size": 1, "dynamic_batching": {"max_queue_size": 1}}'
    )
    header = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[512,1024],"parameters":{"binary_data_size":2097152}}]}'  # noqa: E501
    body = header + np.ones((512, 1024), dtype=np.float32).tobytes()
    import concurrent.futures

    with serving(settings_for(tmp_path)) as server, client(server) as http:

        def send(_: int):
            return http.post(
                "/v2/models/slow/infer",
                content=body,
                headers={"Inference-Header-Content-Length": str(len(header))},
            )

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(send, range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 503 in statuses, statuses
    rejected = next(r for r in responses if r.status_code == 503)
    assert rejected.headers["retry-after"] == "1"
    assert "queue is full" in rejected.json()["error"]


def test_model_config_file_overrides_defaults(tmp_path: Path) -> None:
    defaults = BatchingConfig(max_batch_size=8, max_queue_delay_us=0, instance_count=1)
    assert load_model_config(tmp_path, defaults) == defaults
    (tmp_path / "config.json").write_text(
        '{"max_batch_size": 64, "dynamic_batching": {"max_queue_delay_microseconds": 250,'
        ' "max_queue_size": 10}, "instance_group": [{"count": 2}, {"count": 1}]}'
    )
    config = load_model_config(tmp_path, defaults)
    assert (config.max_batch_size, config.max_queue_delay_us) == (64, 250)
    assert (config.max_queue_size, config.instance_count) == (10, 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{oops", "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"max_batch_size": -1}', "greater"),
        ('{"dynamic_batching": [1]}', "dynamic_batching must be an object"),
        ('{"instance_group": {"count": 2}}', "instance_group must be a list"),
    ],
)
def test_bad_model_config_fails_the_model_with_the_reason(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        load_model_config(tmp_path, BatchingConfig())


def test_bad_config_json_makes_model_unavailable_not_the_server(tmp_path: Path) -> None:
    write_model(tmp_path / "good" / "1" / "model.onnx", scale_model(2))
    write_model(tmp_path / "bad" / "1" / "model.onnx", scale_model(2))
    (tmp_path / "bad" / "config.json").write_text('{"max_batch_size": "lots"}')
    with serving(settings_for(tmp_path)) as server, client(server) as http:
        assert http.get("/v2/models/good/ready").status_code == 200
        response = http.get("/v2/models/bad/ready")
        assert response.status_code == 503
