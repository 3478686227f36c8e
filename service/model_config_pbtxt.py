"""Triton's ``config.pbtxt``, read as Triton reads it: protobuf text format against Triton's own
``model_config.proto`` schema (the compiled ``inference.ModelConfig`` that tritonclient ships),
parsed by ``google.protobuf.text_format``. A field the schema does not know is a parse error that
names the line and the field, as on Triton.

What it means here, as on Triton: ``max_batch_size`` 0 (or absent: proto3 cannot tell them apart)
turns batching off; with ``max_batch_size`` > 0 the first dimension is the batch and ``dims`` of
declared inputs/outputs leave it out; requests are combined only when ``dynamic_batching`` is
present (its ``max_queue_delay_microseconds`` and ``default_queue_policy.max_queue_size``); the
``count`` of every ``instance_group`` adds up to the parallel runs per version;
``version_policy`` picks the versions served. Declared inputs and outputs must match the ONNX
model (name, type, dims) or the version fails to load, as on Triton.

Fields of the schema this service does not act on (``optimization``, ``sequence_batching``,
``preferred_batch_size``, ``gpus``, ...) are reported: logged as a warning when the model loads
and listed in the effective configuration's ``parameters`` under ``ignored_config_fields``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from pydantic import ValidationError

from service.grpc.protos import model_config_pb2
from service.model_config import BatchingConfig
from service.signature import TensorSpec
from service.version_policy import LATEST_ONE, VersionPolicy, policy

PBTXT_FILENAME = "config.pbtxt"
PLATFORMS = ("", "onnxruntime_onnx")
BACKENDS = ("", "onnxruntime")

_TOP = {
    "name",
    "platform",
    "backend",
    "version_policy",
    "max_batch_size",
    "input",
    "output",
    "dynamic_batching",
    "instance_group",
    "default_model_filename",
}
_DYNAMIC = {"max_queue_delay_microseconds", "default_queue_policy"}
_QUEUE_POLICY = {"max_queue_size"}
_GROUP = {"name", "kind", "count"}
_IO = {"name", "data_type", "dims"}


def parse_pbtxt(path: Path) -> Any:
    """The ``inference.ModelConfig`` in ``path``; ValueError names the file, line and field."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name} cannot be read: {exc}") from None
    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise ValueError(f"{path.name} is not a valid Triton model configuration: {exc}") from None


def _set_fields(message: Any) -> list[str]:
    return [field.name for field, _ in message.ListFields()]


def ignored_fields(config: Any) -> list[str]:
    """Fields set in the file that this service does not act on, as dotted paths."""
    ignored = [f for f in _set_fields(config) if f not in _TOP]
    if config.HasField("dynamic_batching"):
        dynamic = config.dynamic_batching
        ignored += [f"dynamic_batching.{f}" for f in _set_fields(dynamic) if f not in _DYNAMIC]
        if dynamic.HasField("default_queue_policy"):
            ignored += [
                f"dynamic_batching.default_queue_policy.{f}"
                for f in _set_fields(dynamic.default_queue_policy)
                if f not in _QUEUE_POLICY
            ]
    for group in config.instance_group:
        ignored += [f"instance_group.{f}" for f in _set_fields(group) if f not in _GROUP]
    for kind in ("input", "output"):
        for tensor in getattr(config, kind):
            ignored += [f"{kind}.{f}" for f in _set_fields(tensor) if f not in _IO]
    return sorted(set(ignored))


def version_policy_of(config: Any) -> VersionPolicy:
    if not config.HasField("version_policy"):
        return LATEST_ONE  # Triton's default
    which = config.version_policy.WhichOneof("policy_choice")
    if which == "latest":
        return policy("latest", config.version_policy.latest.num_versions)
    if which == "specific":
        return policy("specific", versions=list(config.version_policy.specific.versions))
    return policy("all")


def batching_of(config: Any, defaults: BatchingConfig, model_name: str) -> BatchingConfig:
    """The batcher settings the file means (see the module docstring)."""
    declared = config.max_batch_size
    dynamic = config.HasField("dynamic_batching")
    # "explicit": the file decided batching (Triton: 0 or absent means no batching).
    values: dict[str, Any] = {"max_batch_size": declared if dynamic else min(declared, 1)}
    values["explicit"] = True
    if dynamic:
        values["max_queue_delay_us"] = config.dynamic_batching.max_queue_delay_microseconds
        queue = config.dynamic_batching.default_queue_policy.max_queue_size
        if queue > 0:  # 0 is Triton's "unbounded": keep the service's bound instead
            values["max_queue_size"] = queue
    if config.instance_group:
        values["instance_count"] = sum(max(group.count, 1) for group in config.instance_group)
    try:
        return BatchingConfig(**(defaults.model_dump() | values))
    except ValidationError as exc:
        raise ValueError(f"{PBTXT_FILENAME} of model '{model_name}': {exc}") from None


def check_identity(config: Any, model_name: str) -> None:
    """Refuse what would make this a different model than Triton would load."""
    where = f"{PBTXT_FILENAME} of model '{model_name}'"
    if config.name and config.name != model_name:
        raise ValueError(f"{where}: name is '{config.name}' but the model folder is '{model_name}'")
    if config.platform not in PLATFORMS:
        raise ValueError(
            f"{where}: platform '{config.platform}' is not served; use onnxruntime_onnx"
        )
    if config.backend not in BACKENDS:
        raise ValueError(f"{where}: backend '{config.backend}' is not served; use onnxruntime")
    if config.default_model_filename not in ("", "model.onnx"):
        raise ValueError(
            f"{where}: default_model_filename '{config.default_model_filename}' is not "
            "supported; the model file must be model.onnx"
        )


def v2_datatype(data_type: int) -> str:
    """``TYPE_FP32`` -> ``FP32``; ``TYPE_STRING`` -> ``BYTES``."""
    name = model_config_pb2.DataType.Name(data_type).removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


def config_data_type(datatype: str) -> int:
    """``FP32`` -> ``TYPE_FP32``; ``BYTES`` -> ``TYPE_STRING``."""
    return model_config_pb2.DataType.Value(
        "TYPE_" + ("STRING" if datatype == "BYTES" else datatype)
    )


def check_declared_io(
    config: Any,
    model_name: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
) -> None:
    """Declared inputs/outputs must exist in the ONNX model with its type and dims."""
    batched = config.max_batch_size > 0
    for kind, declared, specs in (
        ("input", config.input, inputs),
        ("output", config.output, outputs),
    ):
        by_name = {s.name: s for s in specs}
        for tensor in declared:
            where = f"{PBTXT_FILENAME} of model '{model_name}': {kind} '{tensor.name}'"
            spec = by_name.get(tensor.name)
            if spec is None:
                raise ValueError(f"{where} is not in the model; the model has {sorted(by_name)}")
            if tensor.data_type and v2_datatype(tensor.data_type) != spec.datatype:
                raise ValueError(
                    f"{where} is declared {model_config_pb2.DataType.Name(tensor.data_type)} "
                    f"but the model has {spec.datatype}"
                )
            shape = list(spec.shape[1:] if batched else spec.shape)
            dims = list(tensor.dims)
            if batched and (not spec.shape or spec.shape[0] != -1):
                raise ValueError(
                    f"{where}: max_batch_size > 0 needs a dynamic first dimension, the model has "
                    f"{list(spec.shape)}"
                )
            if len(dims) != len(shape) or any(
                d != s and d != -1 and s != -1 for d, s in zip(dims, shape, strict=True)
            ):
                raise ValueError(
                    f"{where} has dims {dims} but the model has {shape}"
                    + (" (without the batch dimension)" if batched else "")
                )
