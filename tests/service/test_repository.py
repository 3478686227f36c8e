"""Model repository: layout scanning, versions, failures, reconciliation with the disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.errors import ModelNotFound, ModelNotReady
from service.model import ModelVersion, SessionConfig
from service.model_config import BatchingConfig, load_model_config
from service.repository import ModelRegistry, scan
from tests.service.conftest import settings_for
from tests.service.helpers import client, scale_model, serving, write_model

CPU = SessionConfig(providers=("CPUExecutionProvider",))


def _registry(root: Path, unloaded: list | None = None) -> ModelRegistry:
    return ModelRegistry(
        root,
        lambda n, v, p: ModelVersion.load(n, v, p, CPU),
        on_unload=(unloaded.append if unloaded is not None else None),
    )


def test_scan_follows_triton_layout_and_skips_hidden_and_non_numeric(tmp_path: Path) -> None:
    write_model(tmp_path / "a" / "1" / "model.onnx", scale_model(1))
    write_model(tmp_path / "a" / "10" / "model.onnx", scale_model(1))
    write_model(tmp_path / "a" / ".tmp-11-x" / "model.onnx", scale_model(1))
    write_model(tmp_path / "a" / "latest" / "model.onnx", scale_model(1))
    write_model(tmp_path / ".hidden" / "1" / "model.onnx", scale_model(1))
    (tmp_path / "README.txt").write_text("not a model")
    found = scan(tmp_path)
    assert list(found) == ["a"]
    assert sorted(found["a"]) == [1, 10]


def test_missing_model_dir_is_not_ready_not_a_crash(tmp_path: Path) -> None:
    registry = _registry(tmp_path / "absent")
    registry.sync()
    assert registry.initial_load_done
    assert not registry.ready()
    with pytest.raises(ModelNotFound):
        registry.get("anything")


def test_corrupt_model_is_reported_and_others_serve(tmp_path: Path) -> None:
    write_model(tmp_path / "good" / "1" / "model.onnx", scale_model(2))
    bad = tmp_path / "bad" / "1" / "model.onnx"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"this is not an onnx file")
    registry = _registry(tmp_path)
    report = registry.sync()
    assert report.loaded == ["good/1"] and report.failed == ["bad/1"]
    assert registry.ready() and not registry.ready(strict=True)
    assert registry.get("good").version == 1
    with pytest.raises(ModelNotReady, match=r"model 'bad' is not ready: "):
        registry.get("bad")
    states = {(e["name"], e["state"]) for e in registry.index()}
    assert states == {("good", "READY"), ("bad", "UNAVAILABLE")}


def test_failed_version_is_not_retried_until_the_file_changes(tmp_path: Path) -> None:
    bad = tmp_path / "m" / "1" / "model.onnx"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"garbage")
    registry = _registry(tmp_path)
    assert registry.sync().failed == ["m/1"]
    assert not registry.sync().changed
    write_model(bad, scale_model(5))
    assert registry.sync().loaded == ["m/1"]


def test_sync_adds_new_versions_and_drops_removed_ones(tmp_path: Path) -> None:
    write_model(tmp_path / "m" / "1" / "model.onnx", scale_model(1))
    unloaded: list[ModelVersion] = []
    registry = _registry(tmp_path, unloaded)
    registry.sync()
    v1 = registry.get("m")
    write_model(tmp_path / "m" / "2" / "model.onnx", scale_model(2))
    assert registry.sync().loaded == ["m/2"]
    assert registry.get("m").version == 2
    shutil.rmtree(tmp_path / "m" / "1")
    assert registry.sync().removed == ["m/1"]
    assert unloaded == [v1]
    assert registry.versions("m") == [2]
    shutil.rmtree(tmp_path / "m")
    registry.sync()
    assert registry.names() == []


def test_highest_ready_version_serves_when_newest_is_broken(tmp_path: Path) -> None:
    write_model(tmp_path / "m" / "1" / "model.onnx", scale_model(1))
    broken = tmp_path / "m" / "2" / "model.onnx"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"broken")
    registry = _registry(tmp_path)
    registry.sync()
    assert registry.get("m").version == 1
    with pytest.raises(ModelNotReady):
        registry.get("m", "2")


def test_version_folder_without_model_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    registry = _registry(tmp_path)
    assert registry.sync().failed == ["m/1"]
    assert registry.index()[0]["reason"].startswith("FileNotFoundError")


def test_server_with_one_good_and_one_corrupt_model(tmp_path: Path) -> None:
    write_model(tmp_path / "good" / "1" / "model.onnx", scale_model(2))
    (tmp_path / "corrupt" / "1").mkdir(parents=True)
    (tmp_path / "corrupt" / "1" / "model.onnx").write_bytes(b"\x08\x01garbage")
    body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,1,1,1]}]}'
    with serving(settings_for(tmp_path)) as server, client(server) as http:
        assert http.get("/health").status_code == 200
        assert http.get("/v2/models/good/ready").status_code == 200
        corrupt_ready = http.get("/v2/models/corrupt/ready")
        assert corrupt_ready.status_code == 503
        assert http.post("/v2/models/good/infer", content=body).status_code == 200
        failed = http.post("/v2/models/corrupt/infer", content=body)
        assert failed.status_code == 503
        assert "model 'corrupt' is not ready" in failed.json()["error"]
    with serving(settings_for(tmp_path, strict_readiness=True)) as server, client(server) as h:
        assert h.get("/health").status_code == 503


def test_serving_version_that_fails_to_reload_keeps_serving(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m" / "1" / "model.onnx", scale_model(2))
    registry = _registry(tmp_path)
    registry.sync()
    serving_now = registry.get("m")
    path.write_bytes(b"replaced in place by something broken")
    report = registry.sync()
    assert report.failed == ["m/1"]
    assert registry.get("m") is serving_now
    (entry,) = registry.index()
    assert entry["state"] == "READY"  # still serving the version it had loaded
    assert "Protobuf parsing failed" in entry["reason"]  # and says why the reload failed
    assert not registry.sync().changed  # the same broken file is not retried every poll


def test_editing_config_json_reloads_the_model(tmp_path: Path) -> None:
    write_model(tmp_path / "m" / "1" / "model.onnx", scale_model(2))
    registry = ModelRegistry(
        tmp_path,
        lambda n, v, p: ModelVersion.load(
            n, v, p, CPU, load_model_config(p.parent.parent, BatchingConfig())
        ),
    )
    registry.sync()
    assert registry.get("m").batching.max_batch_size == 32
    (tmp_path / "m" / "config.json").write_text('{"max_batch_size": 4}')
    assert registry.sync().loaded == ["m/1"]
    assert registry.get("m").batching.max_batch_size == 4
