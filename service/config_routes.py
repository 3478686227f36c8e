"""Triton's model configuration extension over HTTP: ``GET /v2/models/{m}[/versions/{v}]/config``
returns the effective configuration (see ``effective_config.py``) as JSON."""

from __future__ import annotations

import orjson
from fastapi import FastAPI
from fastapi.responses import Response

from service.dataplane import DataPlane
from service.effective_config import model_config_json


def add_config_routes(app: FastAPI, plane: DataPlane) -> None:
    def respond(name: str, version: str | None) -> Response:
        model = plane.registry.get(name, version)
        return Response(orjson.dumps(model_config_json(model)), media_type="application/json")

    @app.get("/v2/models/{model_name}/config", summary="Model configuration (highest version)")
    async def model_config(model_name: str) -> Response:
        return respond(model_name, None)

    @app.get(
        "/v2/models/{model_name}/versions/{version}/config",
        summary="Model version configuration",
    )
    async def model_version_config(model_name: str, version: str) -> Response:
        return respond(model_name, version)
