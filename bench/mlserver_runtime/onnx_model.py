"""A minimal MLServer runtime for ONNX models, the way users write one.

MLServer has no ONNX runtime package any more (``mlserver-onnx`` is not on PyPI), so users
subclass ``MLModel``: ``load()`` opens an ONNX Runtime session, ``predict()`` decodes the inputs
with MLServer's codecs, runs the session and encodes the outputs. Adaptive batching
(``max_batch_size``/``max_batch_time`` in model-settings.json) happens in MLServer before
``predict()``, which then sees one merged request per batch.

This file is imported by MLServer inside its own virtualenv (``bench/.venv-mlserver``), not by
the project: it is on the server's PYTHONPATH only.
"""

from __future__ import annotations

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxModel(MLModel):
    """One ONNX Runtime session; every model input decoded as a NumPy array."""

    async def load(self) -> bool:
        uri = await get_model_uri(self._settings, wellknown_filenames=["model.onnx"])
        options = ort.SessionOptions()
        extra = (self._settings.parameters.extra or {}) if self._settings.parameters else {}
        options.intra_op_num_threads = int(extra.get("intra_op_threads", 1))
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            uri, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._output_names = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {i.name: self.decode(i, default_codec=NumpyCodec) for i in payload.inputs}
        outputs = self._session.run(self._output_names, feeds)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[
                NumpyCodec.encode_output(name, array)
                for name, array in zip(self._output_names, outputs, strict=True)
            ],
        )
