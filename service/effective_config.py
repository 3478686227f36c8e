"""The effective configuration of a loaded model version as Triton's ``inference.ModelConfig``:
what ``GET /v2/models/{m}[/versions/{v}]/config`` and the gRPC ``ModelConfig`` RPC return.

Effective means what the service does, whatever said it: the model's config file, the
service-wide defaults (MAX_BATCH_SIZE, ...) or the ONNX model itself (inputs, outputs, whether
the first dimension can batch). ``max_batch_size`` and ``dims`` follow Triton's convention: with
``max_batch_size`` > 0 the batch dimension is left out of ``dims``.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from service.grpc.protos import model_config_pb2
from service.model import ModelVersion
from service.model_config_files import ModelFileConfig
from service.model_config_pbtxt import config_data_type
from service.providers import CUDA

mc = model_config_pb2
_INT64_KEYS = {"dims", "max_queue_delay_microseconds", "versions", "num_versions"}


def file_config_of(model: ModelVersion) -> ModelFileConfig:
    config = getattr(model, "file_config", None)
    return config if config is not None else ModelFileConfig(batching=model.batching)


def _max_batch_size(model: ModelVersion, file_config: ModelFileConfig) -> int:
    """What the file declared; without a declaration, what the batch probe decided
    (``model.dynamic_batching``: a model whose rows are not independent has no batch dimension,
    so it reports 0 and keeps the first dimension in ``dims``)."""
    if not model.batchable:
        return 0
    if file_config.max_batch_size is not None:
        return int(file_config.max_batch_size)
    return model.batching.max_batch_size if model.dynamic_batching else 0


def model_config_proto(model: ModelVersion) -> Any:
    """The ``inference.ModelConfig`` this version is served with."""
    file_config = file_config_of(model)
    batching = model.batching
    max_batch = _max_batch_size(model, file_config)
    config = mc.ModelConfig(
        name=model.name,
        platform=model.platform,
        backend="onnxruntime",
        max_batch_size=max_batch,
        default_model_filename="model.onnx",
    )
    policy = file_config.version_policy
    if policy.kind == "latest":
        config.version_policy.latest.num_versions = policy.num_versions
    elif policy.kind == "specific":
        config.version_policy.specific.versions.extend(policy.versions)
    else:
        config.version_policy.all.SetInParent()
    for spec in model.inputs:
        dims = spec.shape[1:] if max_batch > 0 else spec.shape
        config.input.add(name=spec.name, data_type=config_data_type(spec.datatype), dims=dims)
    for spec in model.outputs:
        dims = spec.shape[1:] if max_batch > 0 else spec.shape
        config.output.add(name=spec.name, data_type=config_data_type(spec.datatype), dims=dims)
    if model.dynamic_batching:  # the decision model.decide_batching made (file, structure, probe)
        config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us
        config.dynamic_batching.default_queue_policy.max_queue_size = batching.max_queue_size
    kind = (
        mc.ModelInstanceGroup.KIND_GPU if model.provider == CUDA else mc.ModelInstanceGroup.KIND_CPU
    )
    config.instance_group.add(name=model.name, kind=kind, count=batching.instance_count)
    config.parameters["config_file"].string_value = file_config.source or "none"
    config.parameters["batching_decision"].string_value = model.batching_reason
    if file_config.ignored:
        config.parameters["ignored_config_fields"].string_value = ", ".join(file_config.ignored)
    return config


def _numbers(value: Any, key: str = "") -> Any:
    """protobuf's JSON mapping writes int64 as strings; Triton's HTTP API writes numbers."""
    if isinstance(value, dict):
        return {k: _numbers(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v, key) for v in value]
    if key in _INT64_KEYS and isinstance(value, str):
        return int(value)
    return value


def model_config_json(model: ModelVersion) -> dict[str, Any]:
    """The same configuration as Triton's HTTP API returns it."""
    doc = json_format.MessageToDict(model_config_proto(model), preserving_proto_field_name=True)
    return _numbers(doc)
