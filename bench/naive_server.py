"""The naive peer: FastAPI + ONNX Runtime the way a typical tutorial writes it.

A pydantic request model, one ``session.run`` per request, and a JSON response built with
``.tolist()``. Tutorials write the endpoint either as a plain ``def`` (FastAPI runs it in its
thread pool) or as ``async def`` (it runs on the event loop and blocks it while the model runs);
``NAIVE_ASYNC=1`` picks the second, and the bench measures both. Request and response are shaped
like the Open Inference Protocol so the benchmark sends every server the same body.
Run: ``MODEL_PATH=... uvicorn bench.naive_server:app --no-access-log``.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

options = ort.SessionOptions()
options.intra_op_num_threads = int(os.environ.get("ORT_INTRA_OP_THREADS", "1"))
session = ort.InferenceSession(
    os.environ.get("MODEL_PATH", "model.onnx"), options, providers=["CPUExecutionProvider"]
)
input_name = session.get_inputs()[0].name
output_names = [o.name for o in session.get_outputs()]

app = FastAPI()


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferRequest(BaseModel):
    inputs: list[Tensor]


@app.get("/v2/health/ready")
def ready() -> dict:
    return {"ready": True}


def predict(model_name: str, request: InferRequest) -> dict:
    tensor = request.inputs[0]
    x = np.array(tensor.data, dtype=np.float32).reshape(tensor.shape)
    outputs = session.run(output_names, {input_name: x})
    return {
        "model_name": model_name,
        "outputs": [
            {"name": name, "datatype": "FP32", "shape": list(y.shape), "data": y.ravel().tolist()}
            for name, y in zip(output_names, outputs, strict=True)
        ],
    }


if os.environ.get("NAIVE_ASYNC") == "1":

    @app.post("/v2/models/{model_name}/infer")
    async def infer_async(model_name: str, request: InferRequest) -> dict:
        return predict(model_name, request)

else:

    @app.post("/v2/models/{model_name}/infer")
    def infer(model_name: str, request: InferRequest) -> dict:
        return predict(model_name, request)
