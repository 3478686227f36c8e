"""All runtime settings of the inference service, read from the environment in one place.

Every field maps to an upper-case environment variable of the same name (``MODEL_DIR``,
``PORT``, ...). The defaults are what a container on ECS wants; ``make serve`` overrides only
``MODEL_DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.metric_names import NAMESPACE

ProviderChoice = Literal["auto", "cuda", "cpu"]


class Settings(BaseSettings):
    """Service configuration. See the README's "Service settings" table for each variable."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    model_dir: Path = Field(
        Path("/models"), description="Model repository root: <model>/<version>/model.onnx."
    )
    host: str = Field("0.0.0.0", description="Address to bind.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to bind.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Minimum level of the JSON logs written to stdout."
    )
    execution_provider: ProviderChoice = Field(
        "auto",
        description="auto: CUDA when a GPU is really present, else CPU; cuda: require CUDA; "
        "cpu: force CPU.",
    )
    ort_intra_op_threads: int = Field(
        0, ge=0, description="ONNX Runtime intra-op threads per session (0: ORT decides)."
    )
    ort_inter_op_threads: int = Field(
        1, ge=0, description="ONNX Runtime inter-op threads per session (0: ORT decides)."
    )
    max_request_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="Largest accepted request body; larger gets 413."
    )
    warmup: bool = Field(True, description="Run each model once with zeros before ready.")
    graceful_shutdown_s: float = Field(
        25.0, ge=0, description="Seconds to finish in-flight requests after SIGTERM."
    )
    access_log: bool = Field(True, description="Write one JSON access-log record per request.")
    strict_readiness: bool = Field(
        False,
        description="Ready only when every model version loaded (default: at least one did, so "
        "one broken model does not take the others out of the load balancer).",
    )
    model_poll_interval_s: float = Field(
        30.0, ge=0, description="Seconds between repository scans for new/removed versions; 0 off."
    )
    repository_api: bool = Field(
        False, description="Enable POST /v2/repository/index and models/{m}/load|unload."
    )
    max_batch_size: int = Field(
        32, ge=0, description="Default rows per combined model run (0 or 1: no batching)."
    )
    max_queue_delay_us: int = Field(
        0, ge=0, description="Default wait for a fuller batch while traffic flows (never idle)."
    )
    max_queue_size: int = Field(
        1024, ge=1, description="Default queued requests per model version before 503."
    )
    instance_count: int = Field(
        1, ge=1, description="Default parallel runs per model version (Triton instance groups)."
    )
    emf_metrics: bool = Field(
        True,
        description="Write CloudWatch Embedded Metric Format records to stdout every "
        "EMF_INTERVAL_S (service/emf.py); the log router sends them to CloudWatch.",
    )
    emf_namespace: str = Field(
        NAMESPACE,
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9.\-_/#:]+$",
        description="CloudWatch namespace of the EMF metrics (not AWS/...).",
    )
    emf_service_name: str = Field(
        "onnx-serving",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Value of the ServiceName dimension (the stack sets its service's name).",
    )
    emf_interval_s: float = Field(
        60.0,
        ge=1,
        le=60,
        description="Seconds between EMF flushes (one record per model); divides a minute.",
    )

    keep_alive_timeout_s: float = Field(
        75.0,
        gt=0,
        description="Seconds an idle connection stays open; keep it above the load balancer's "
        "idle timeout (60 s by default) so the load balancer, not the service, closes it "
        "(the stack sets it to idleTimeoutSeconds + 5).",
    )
    request_header_timeout_s: float = Field(
        20.0, gt=0, description="Seconds a client has to send a request's headers; then 408."
    )
    request_body_timeout_s: float = Field(
        60.0, gt=0, description="Seconds a client has to send a request's body; then 408."
    )
    grpc_port: int = Field(
        8001,
        ge=0,
        le=65535,
        description="TCP port of the Open Inference Protocol over gRPC (Triton: 8001); 0: off.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("emf_namespace")
    @classmethod
    def _not_aws(cls, value: str) -> str:
        if value.startswith("AWS/"):
            raise ValueError("namespaces starting with AWS/ are reserved for AWS services")
        return value

    @field_validator("emf_interval_s")
    @classmethod
    def _divides_a_minute(cls, value: float) -> float:
        # The stack's alarms and target tracking evaluate 1-minute periods; a minute without a
        # datapoint is INSUFFICIENT_DATA, and "Application Auto Scaling cannot scale" then
        # (Application Auto Scaling User Guide, "Target tracking scaling policies"). Flushing on
        # a divisor of 60 s gives every minute the same number of datapoints per task.
        if abs(60 / value - round(60 / value)) > 1e-9:
            raise ValueError(
                f"{value:g} s does not divide a minute: use 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 "
                "or 60, so that every CloudWatch minute gets the same number of datapoints"
            )
        return value

    @field_validator("execution_provider", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        if self.grpc_port and self.grpc_port == self.port:
            raise ValueError(
                f"GRPC_PORT and PORT are both {self.port}: gRPC needs a port of its own "
                "(GRPC_PORT=0 turns gRPC off)"
            )
        return self
