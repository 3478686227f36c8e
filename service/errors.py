"""Errors the data plane raises; each maps to one HTTP status and a ``{"error": "..."}`` body."""

from __future__ import annotations


class InferenceError(Exception):
    """Base class: a client-visible error with an HTTP status."""

    status_code = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidInput(InferenceError):
    """The request is malformed or does not match the model (400)."""

    status_code = 400


class ModelNotFound(InferenceError):
    """No such model or version in the repository (404)."""

    status_code = 404


class PayloadTooLarge(InferenceError):
    """The body exceeds MAX_REQUEST_BYTES (413)."""

    status_code = 413


class ModelNotReady(InferenceError):
    """The model exists but cannot serve yet, or failed to load (503)."""

    status_code = 503


class ServerBusy(InferenceError):
    """The model's queue is full; the client should retry later (503 + Retry-After)."""

    status_code = 503

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class RequestTimeout(InferenceError):
    """The client did not send the whole request in time (408)."""

    status_code = 408


class UnsupportedMediaType(InferenceError):
    """The body uses a Content-Encoding the service does not decode (415)."""

    status_code = 415
