"""Schema-driven fuzzing of the HTTP API with schemathesis (its Python API, v4).

The schema comes from the running service (``GET /openapi.json``, where the raw-ASGI infer routes
are documented too). Cases are generated for every operation, both fitting the schema and not
fitting it; half of them have their ``model_name`` replaced by a model that is really loaded, so
inference requests get past the 404 and into the codec, and infer requests sometimes carry an
``Inference-Header-Content-Length`` (the binary extension, which the schema cannot describe).

Properties: no 5xx other than a documented 503, every error is a JSON ``{"error": ...}`` body,
and the server still answers ``/v2/health/live`` afterwards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from service.demo_model import write_demo_repository
from tests.robustness.test_codec_properties import request_docs
from tests.service.conftest import settings_for
from tests.service.helpers import ServerThread, scale_model, serving, string_model, write_model

EXAMPLES = 1000
MODELS = ["recommender", "scale", "strings"]  # the demo model is "recommender"


@st.composite
def scale_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Valid requests for the ``scale`` model (x: FP32 [n, 4]), so some fuzzed calls succeed."""
    rows = draw(st.integers(0, 3))
    data = draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=rows * 4, max_size=rows * 4))
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4], "data": data}]}


infer_bodies = (
    st.none()
    | request_docs.map(lambda doc: ("fuzzed", doc))
    | scale_requests().map(lambda doc: ("scale", doc))
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("fuzz-repo")
    write_demo_repository(root)
    write_model(root / "scale" / "1" / "model.onnx", scale_model(2.0))
    write_model(root / "strings" / "1" / "model.onnx", string_model())
    settings = settings_for(root, repository_api=True, max_request_bytes=100_000, access_log=False)
    with serving(settings) as running:
        yield running


def test_fuzzed_requests_never_get_a_server_error(server: ServerThread) -> None:
    schema = schemathesis.openapi.from_url(f"{server.base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    infer_paths = {op.path for op in operations if op.path.endswith("/infer")}
    assert len(infer_paths) == 2, "the infer routes are missing from the OpenAPI schema"
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )
    seen: Counter[str] = Counter()
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,  # the same cases every run: a red build is a real regression
    )
    @given(
        case=cases,
        model=st.sampled_from([None, *MODELS]),
        header_length=st.none() | st.integers(-3, 400),
        body=infer_bodies,
    )
    def exercise(
        case: schemathesis.Case,
        model: str | None,
        header_length: int | None,
        body: tuple[str, Any] | None,
    ) -> None:
        params = case.path_parameters
        repository = case.path.startswith("/v2/repository")  # leave those: keep models loaded
        if model is not None and "model_name" in params and not repository:
            params["model_name"] = model
        if body is not None and case.path in infer_paths:
            kind, case.body, case.media_type = *body, "application/json"
            if kind == "scale":
                params["model_name"] = "scale"
        if header_length is not None and case.path in infer_paths:
            case.headers = (case.headers or {}) | {
                "Inference-Header-Content-Length": str(header_length)
            }
        response = case.call(base_url=server.base, timeout=10)
        status = response.status_code
        seen[f"{case.method} {case.path} {status}"] += 1
        problem = None
        if status >= 500 and status != 503:
            problem = "server error"
        elif status >= 400:
            try:
                doc = response.json()
            except ValueError:
                doc = None
            if not isinstance(doc, dict) or not isinstance(doc.get("error"), str):
                problem = "error without a JSON 'error' message"
        if problem:
            failures.append(f"{problem}: {case.as_curl_command()} -> {status} {response.text}")
        assert problem is None, failures[-1]

    exercise()
    infer_statuses = {k.rsplit(" ", 1)[1] for k in seen if "/infer" in k}
    assert {"200", "400"} <= infer_statuses, seen  # the codec was reached, and passed
    live = httpx.get(f"{server.base}/v2/health/live", timeout=5)
    assert live.status_code == 200
