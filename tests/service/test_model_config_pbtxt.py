"""Triton's config.pbtxt as Triton reads it, version policies in both file forms, and the
effective configuration over HTTP and gRPC (tritonclient's get_model_config)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from onnx import TensorProto

from service.model_config import BatchingConfig
from service.model_config_files import read_model_config, read_version_policy
from service.version_policy import VersionPolicy
from tests.service.conftest import settings_for
from tests.service.helpers import ServerThread, free_port, scale_model, serving, write_model
from tests.service.hostile_models import centered, identity

DEFAULTS = BatchingConfig(max_batch_size=32, max_queue_delay_us=0, max_queue_size=1024)

TRITON_CONFIG = """
name: "scale"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: { latest: { num_versions: 2 } }
input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching {
  max_queue_delay_microseconds: 100
  default_queue_policy { max_queue_size: 16 }
}
instance_group [ { count: 2 kind: KIND_CPU } ]
"""


def _model_dir(tmp_path: Path, text: str, name: str = "scale", json: bool = False) -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ("config.json" if json else "config.pbtxt")).write_text(text)
    return folder


# -- reading the file ----------------------------------------------------------------------
def test_triton_config_means_what_it_means_on_triton(tmp_path: Path) -> None:
    config = read_model_config(_model_dir(tmp_path, TRITON_CONFIG), DEFAULTS)
    assert config.source == "config.pbtxt"
    assert config.batching.max_batch_size == 8
    assert config.batching.batching
    assert config.batching.max_queue_delay_us == 100
    assert config.batching.max_queue_size == 16
    assert config.batching.instance_count == 2
    assert config.version_policy == VersionPolicy("latest", 2)
    assert config.ignored == ()


def test_no_max_batch_size_means_no_batching(tmp_path: Path) -> None:
    config = read_model_config(_model_dir(tmp_path, 'name: "scale"'), DEFAULTS)
    assert not config.batching.batching  # Triton: 0 or absent, no batching (defaults overridden)
    assert config.max_batch_size == 0
    assert config.version_policy == VersionPolicy("latest", 1)  # Triton's default policy


def test_max_batch_size_without_dynamic_batching_does_not_combine_requests(tmp_path: Path) -> None:
    config = read_model_config(_model_dir(tmp_path, "max_batch_size: 8"), DEFAULTS)
    assert not config.batching.batching  # Triton batches only what one request carries
    assert config.max_batch_size == 8


def test_instance_groups_add_up(tmp_path: Path) -> None:
    text = "instance_group [ { count: 2 kind: KIND_CPU }, { kind: KIND_CPU } ]"
    assert read_model_config(_model_dir(tmp_path, text), DEFAULTS).batching.instance_count == 3


def test_unknown_field_names_line_and_field(tmp_path: Path) -> None:
    text = 'name: "scale"\nmax_batch_sise: 8\n'
    with pytest.raises(ValueError, match=r"config.pbtxt.*2:1.*max_batch_sise"):
        read_model_config(_model_dir(tmp_path, text), DEFAULTS)


def test_unsupported_fields_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = """
    max_batch_size: 4
    dynamic_batching { preferred_batch_size: [ 2, 4 ] }
    instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] } ]
    optimization { execution_accelerators { gpu_execution_accelerator: [ { name: "tensorrt" } ] } }
    """
    caplog.set_level(logging.WARNING, logger="service.model_config")
    config = read_model_config(_model_dir(tmp_path, text), DEFAULTS)
    assert config.ignored == (
        "dynamic_batching.preferred_batch_size",
        "instance_group.gpus",
        "optimization",
    )
    (record,) = [r for r in caplog.records if r.name == "service.model_config"]
    assert record.fields == list(config.ignored)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name: "other"', "name is 'other' but the model folder is 'scale'"),
        ('platform: "tensorrt_plan"', "platform 'tensorrt_plan' is not served"),
        ('backend: "python"', "backend 'python' is not served"),
        ("max_batch_size: -1", "max_batch_size"),
    ],
)
def test_a_different_model_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_model_config(_model_dir(tmp_path, text), DEFAULTS)


def test_both_files_is_an_error(tmp_path: Path) -> None:
    folder = _model_dir(tmp_path, "max_batch_size: 8")
    (folder / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"both config\.json and config\.pbtxt"):
        read_model_config(folder, DEFAULTS)


@pytest.mark.parametrize(
    ("pbtxt", "json", "expected"),
    [
        ("version_policy: { all { } }", {"all": {}}, VersionPolicy("all")),
        (
            "version_policy: { latest { num_versions: 2 } }",
            {"latest": {"num_versions": 2}},
            VersionPolicy("latest", 2),
        ),
        (
            "version_policy: { specific { versions: [ 3, 1 ] } }",
            {"specific": {"versions": [3, 1]}},
            VersionPolicy("specific", versions=(1, 3)),
        ),
    ],
)
def test_version_policy_in_both_file_forms(
    tmp_path: Path, pbtxt: str, json: dict, expected: VersionPolicy
) -> None:
    import orjson

    assert read_version_policy(_model_dir(tmp_path / "a", pbtxt)) == expected
    text = orjson.dumps({"version_policy": json}).decode()
    assert read_version_policy(_model_dir(tmp_path / "b", text, json=True)) == expected


def test_policy_selection() -> None:
    assert VersionPolicy("latest", 2).select([1, 2, 3]) == {2, 3}
    assert VersionPolicy("specific", versions=(1, 3, 9)).select([1, 2, 3]) == {1, 3}
    assert VersionPolicy("all").select([1, 2, 3]) == {1, 2, 3}


def test_bad_json_policy_is_named(tmp_path: Path) -> None:
    folder = _model_dir(tmp_path, '{"version_policy": {"newest": {}}}', json=True)
    with pytest.raises(ValueError, match="version_policy 'newest': use latest, all or specific"):
        read_model_config(folder, DEFAULTS)


# -- served as Triton would serve it --------------------------------------------------------------
@pytest.fixture(scope="module")
def triton_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("triton-repo")
    for version in (1, 2, 3):
        write_model(root / "scale" / str(version) / "model.onnx", scale_model(float(version)))
        write_model(root / "pinned" / str(version) / "model.onnx", scale_model(float(version)))
        write_model(root / "typo" / str(version) / "model.onnx", scale_model(float(version)))
        write_model(root / "mismatch" / str(version) / "model.onnx", scale_model(1.0))
    (root / "scale" / "config.pbtxt").write_text(TRITON_CONFIG)
    (root / "pinned" / "config.pbtxt").write_text(
        "version_policy: { specific: { versions: [ 1, 3 ] } }"
    )
    (root / "typo" / "config.pbtxt").write_text("max_batch_sise: 8")
    (root / "mismatch" / "config.pbtxt").write_text(
        'version_policy: { all { } }\ninput [ { name: "x" data_type: TYPE_INT64 dims: [ 4 ] } ]'
    )
    settings = settings_for(root, grpc_port=free_port(), repository_api=True)
    with serving(settings) as server:
        yield server


def _infer_factor(server: ServerThread, model: str, version: str = "") -> float:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}]}
    answer = httpx.post(server.base + path, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["outputs"][0]["data"][0]


def test_version_policy_decides_what_is_served(triton_repo: ServerThread) -> None:
    assert httpx.get(f"{triton_repo.base}/v2/models/scale").json()["versions"] == ["2", "3"]
    assert _infer_factor(triton_repo, "scale") == 3.0
    assert _infer_factor(triton_repo, "scale", "2") == 2.0
    gone = httpx.get(f"{triton_repo.base}/v2/models/scale/versions/1/ready")
    assert gone.status_code == 404
    assert httpx.get(f"{triton_repo.base}/v2/models/pinned").json()["versions"] == ["1", "3"]


def test_bad_configs_are_visible_in_the_index(triton_repo: ServerThread) -> None:
    index = httpx.post(f"{triton_repo.base}/v2/repository/index").json()
    reasons = {(e["name"], e["version"]): e["reason"] for e in index}
    assert "max_batch_sise" in reasons[("typo", "1")]
    assert "input 'x' is declared TYPE_INT64 but the model has FP32" in reasons[("mismatch", "2")]
    assert "version_policy" in reasons[("scale", "1")]


def test_get_model_config_over_both_protocols(triton_repo: ServerThread) -> None:
    http = httpclient.InferenceServerClient(url=triton_repo.url)
    with grpcclient.InferenceServerClient(url=f"127.0.0.1:{triton_repo.settings.grpc_port}") as g:
        over_grpc = g.get_model_config("scale", as_json=True)["config"]
        over_grpc_v2 = g.get_model_config("scale", "2", as_json=True)["config"]
    over_http = http.get_model_config("scale")
    for config in (over_http, over_grpc, over_grpc_v2):
        assert config["name"] == "scale"
        assert config["platform"] == "onnxruntime_onnx"
        assert int(config["max_batch_size"]) == 8
        assert config["version_policy"] == {"latest": {"num_versions": 2}}
        assert [
            (i["name"], i["data_type"], [int(d) for d in i["dims"]]) for i in config["input"]
        ] == [("x", "TYPE_FP32", [4])]
        dynamic = config["dynamic_batching"]
        assert int(dynamic["max_queue_delay_microseconds"]) == 100
        assert int(dynamic["default_queue_policy"]["max_queue_size"]) == 16
        assert [(g["count"], g["kind"]) for g in config["instance_group"]] == [(2, "KIND_CPU")]
        assert config["parameters"]["config_file"]["string_value"] == "config.pbtxt"
    assert over_http["input"][0]["dims"] == [4]  # numbers, as Triton's HTTP API writes them
    http.close()


def test_config_of_unknown_model_is_404(triton_repo: ServerThread) -> None:
    answer = httpx.get(f"{triton_repo.base}/v2/models/nope/config")
    assert answer.status_code == 404
    assert answer.json()["error"].startswith("unknown model 'nope'")


def test_config_without_file_reports_the_service_defaults(tmp_path: Path) -> None:
    write_model(tmp_path / "plain" / "1" / "model.onnx", scale_model(1.0))
    with serving(settings_for(tmp_path, max_batch_size=16, instance_count=2)) as server:
        config = httpx.get(f"{server.base}/v2/models/plain/versions/1/config").json()
    assert config["max_batch_size"] == 16
    assert config["version_policy"] == {"all": {}}
    assert config["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]}]
    assert config["instance_group"][0]["count"] == 2
    assert config["parameters"]["config_file"]["string_value"] == "none"
    assert config["dynamic_batching"]["default_queue_policy"]["max_queue_size"] == 1024


def test_config_pbtxt_decides_batching_over_the_probe(tmp_path: Path) -> None:
    """As config.json's max_batch_size does (issue 15's batch probe): the file is the user's
    word. ``centered`` (x - mean over dimension 0) fails the probe, but a config.pbtxt with
    max_batch_size 8 and dynamic_batching turns batching on without asking; a row-wise model
    whose config.pbtxt declares no max_batch_size is not batched, probe or not."""
    write_model(tmp_path / "forced_on" / "1" / "model.onnx", centered())
    (tmp_path / "forced_on" / "config.pbtxt").write_text(
        "max_batch_size: 8\ndynamic_batching { }\n"
    )
    write_model(tmp_path / "forced_off" / "1" / "model.onnx", identity(TensorProto.FLOAT))
    (tmp_path / "forced_off" / "config.pbtxt").write_text('platform: "onnxruntime_onnx"\n')
    assert read_model_config(tmp_path / "forced_on", DEFAULTS).batching.explicit
    assert read_model_config(tmp_path / "forced_off", DEFAULTS).batching.explicit
    with serving(settings_for(tmp_path)) as server:
        on = httpx.get(f"{server.base}/v2/models/forced_on").json()["parameters"]
        off = httpx.get(f"{server.base}/v2/models/forced_off").json()["parameters"]
        on_config = httpx.get(f"{server.base}/v2/models/forced_on/config").json()
    assert (on["dynamic_batching"], on["max_batch_size"]) == (True, 8)
    assert "config file" in on["batching_decision"]
    assert on_config["max_batch_size"] == 8 and "dynamic_batching" in on_config
    assert (off["dynamic_batching"], off["max_batch_size"]) == (False, 0)
    assert "batching off" in off["batching_decision"]
