"""Triton's gRPC service and model-configuration messages, as ``tritonclient`` ships them compiled.

Why these and not our own copy of the ``.proto`` files: they are the very descriptors that
Triton's clients are built from (package ``inference``, service
``inference.GRPCInferenceService``), maintained with the protocol, and importing them twice is a
no-op, so the server and ``tritonclient`` live in one process without a "duplicate symbol" clash.
KServe's ``grpc_predict_v2.proto`` declares the same package and the same messages for the
Open Inference Protocol subset, field for field, so KServe's client talks to this service too
(tested in a separate process: the two files cannot be loaded into one process).
"""

from __future__ import annotations

from tritonclient.grpc import model_config_pb2, service_pb2

SERVICE_NAME = "inference.GRPCInferenceService"

__all__ = ["SERVICE_NAME", "model_config_pb2", "service_pb2"]
