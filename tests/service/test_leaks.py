"""Issue 15, the smaller leaks: what a client can learn or provoke with odd but cheap requests.

Model lists in 404s, absolute paths in 503s, 405 for HEAD, ambiguous version numbers (``01``, a
full-width digit, a folder ``07`` beside ``007``), the index's ``ready`` filter, text/plain
framing errors."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import settings_for
from tests.service.helpers import ServerThread, client, scale_model, serving, write_model

X = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("leaks")
    write_model(root / "secret-model-a" / "1" / "model.onnx", scale_model(2.0))
    write_model(root / "secret-model-b" / "7" / "model.onnx", scale_model(7.0))
    write_model(root / "secret-model-b" / "07" / "model.onnx", scale_model(0.7))
    write_model(root / "secret-model-b" / "007" / "model.onnx", scale_model(0.07))
    write_model(root / "zeros" / "07" / "model.onnx", scale_model(0.7))
    write_model(root / "zeros" / "007" / "model.onnx", scale_model(0.07))
    broken = root / "broken" / "1" / "model.onnx"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"this is not an ONNX model")
    with serving(settings_for(root, repository_api=True)) as running:
        running.root = root  # type: ignore[attr-defined]
        yield running


def infer(http, path: str):
    return http.post(path, content=json.dumps({"inputs": [X]}).encode())


def test_unknown_model_404_does_not_list_the_models(server: ServerThread) -> None:
    with client(server) as http:
        responses = [infer(http, "/v2/models/nope/infer"), http.get("/v2/models/nope")]
    for response in responses:
        assert response.status_code == 404
        assert response.json() == {"error": "unknown model 'nope'"}


def test_not_ready_503_has_no_absolute_path(server: ServerThread) -> None:
    root = str(server.root)  # type: ignore[attr-defined]
    with client(server) as http:
        responses = [infer(http, "/v2/models/broken/infer"), http.get("/v2/models/broken")]
        index = http.post("/v2/repository/index").json()
    for response in responses:
        assert response.status_code == 503
        error = response.json()["error"]
        assert "not ready" in error and "INVALID_PROTOBUF" in error
        assert root not in error and "/tmp" not in error, error
        assert "broken/1/model.onnx" in error  # still says which file, relative to the repository
    assert all(root not in entry["reason"] for entry in index)


def test_head_is_answered_on_get_routes(server: ServerThread) -> None:
    with client(server) as http:
        for path in (
            "/health",
            "/v2/health/ready",
            "/v2/health/live",
            "/v2",
            "/v2/models/secret-model-a",
        ):
            head, get = http.head(path), http.get(path)
            assert head.status_code == get.status_code == 200, path
            assert head.content == b""
            assert head.headers["content-length"] == get.headers["content-length"]
        missing = http.head("/v2/models/nope")
        infer_head = http.head("/v2/models/secret-model-a/infer")
    assert missing.status_code == 404
    assert infer_head.status_code == 405 and infer_head.headers["allow"] == "POST"


@pytest.mark.parametrize("version", ["01", "\uff11", "1.0", "+1", " 1", "\u0661", "\u00b2"])
def test_only_canonical_version_numbers_resolve(server: ServerThread, version: str) -> None:
    with client(server) as http:
        good = infer(http, "/v2/models/secret-model-a/versions/1/infer")
        odd = infer(http, f"/v2/models/secret-model-a/versions/{version}/infer")
        metadata = http.get(f"/v2/models/secret-model-a/versions/{version}")
    assert good.status_code == 200
    assert odd.status_code == 404, version
    assert metadata.status_code == 404
    assert "without leading zeros" in odd.json()["error"]


def test_version_folders_with_leading_zeros_are_ignored_not_merged(
    server: ServerThread,
) -> None:
    """Folders ``7``, ``07`` and ``007`` all said "version 7": the last one scanned won."""
    with client(server) as http:
        metadata = http.get("/v2/models/secret-model-b").json()
        response = infer(http, "/v2/models/secret-model-b/versions/7/infer")
    assert metadata["versions"] == ["7"]
    assert response.json()["outputs"][0]["data"] == [7.0, 14.0, 21.0, 28.0]
    with client(server) as http:  # only 07 and 007: no version at all, rather than either
        assert infer(http, "/v2/models/zeros/versions/7/infer").status_code == 404


def test_non_canonical_version_folders_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_model(tmp_path / "m" / "01" / "model.onnx", scale_model(1.0))
    write_model(tmp_path / "m" / "2" / "model.onnx", scale_model(2.0))
    caplog.set_level(logging.WARNING, logger="service.repository")
    from service.repository import scan

    assert list(scan(tmp_path)["m"]) == [2]
    assert any("not a version number" in r.getMessage() for r in caplog.records)


def test_repository_index_honours_the_ready_filter(server: ServerThread) -> None:
    with client(server) as http:
        everything = http.post("/v2/repository/index").json()
        ready = http.post("/v2/repository/index", json={"ready": True}).json()
        explicit_all = http.post("/v2/repository/index", json={"ready": False}).json()
        bad = http.post("/v2/repository/index", json={"ready": "yes"})
    assert {e["name"] for e in everything} == {"broken", "secret-model-a", "secret-model-b"}
    assert explicit_all == everything
    assert {e["name"] for e in ready} == {"secret-model-a", "secret-model-b"}
    assert all(e["state"] == "READY" for e in ready)
    assert bad.status_code == 400 and "ready" in bad.json()["error"]


def test_http_framing_errors_are_json(server: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400")
    assert b"content-type: application/json" in head.lower()
    assert "invalid http request" in json.loads(body)["error"].lower()
