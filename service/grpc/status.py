"""Data-plane errors as gRPC status codes, the way Triton maps them.

The message is the one the HTTP API puts in ``{"error": ...}``; only the code differs.
"""

from __future__ import annotations

import grpc

from service.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    ServerBusy,
)

_CODES: tuple[tuple[type[InferenceError], grpc.StatusCode], ...] = (
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (PayloadTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ServerBusy, grpc.StatusCode.UNAVAILABLE),
    (ModelNotReady, grpc.StatusCode.UNAVAILABLE),
)

# An HTTP status for every gRPC code this service answers with, so metrics and access-log
# records of both transports share one ``status`` vocabulary (4xx client, 5xx server).
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INTERNAL: 500,
}


def grpc_code(exc: InferenceError) -> grpc.StatusCode:
    """The gRPC status code of a data-plane error (INTERNAL for anything unexpected)."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    if 400 <= exc.status_code < 500:
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL
