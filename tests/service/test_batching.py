"""Dynamic batching: combined runs give the same answers, shapes never mix, idle never waits,
a full queue answers 503 at once."""

from __future__ import annotations

import asyncio
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


def test_batched_outputs_equal_unbatched_runs(tmp_path: Path) -> None:
    model = _load(tmp_path, build_mlp(), BatchingConfig(max_batch_size=16))
    rng = np.random.default_rng(3)
    requests = [rng.standard_normal((1 + i % 3, 256)).astype(np.float32) for i in range(64)]
    expected = [model.run({"input": x})[0] for x in requests]
    metrics = Metrics()
    scheduler = BatchingScheduler(metrics)

    async def go() -> list[list[np.ndarray]]:
        return await asyncio.gather(
            *(scheduler.run(model, {"input": x}, ["output"]) for x in requests)
        )

    results = asyncio.run(go())
    scheduler.close()
    for got, want, x in zip(results, expected, requests, strict=True):
        assert got[0].shape == (x.shape[0], 128)
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)
    count, total = _observed_batches(metrics, "m")
    assert total == sum(x.shape[0] for x in requests)
    assert count < len(requests), "no two requests were combined"


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
    [("{oops", "not valid JSON"), ("[1]", "JSON object"), ('{"max_batch_size": -1}', "greater")],
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
