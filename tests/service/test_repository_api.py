"""The repository extension: index, load, unload; off unless REPOSITORY_API=true."""

from __future__ import annotations

from pathlib import Path

from tests.service.conftest import settings_for
from tests.service.helpers import client, scale_model, serving, write_model


def test_repository_api_is_off_by_default(tmp_path: Path) -> None:
    write_model(tmp_path / "m" / "1" / "model.onnx", scale_model(2))
    with serving(settings_for(tmp_path)) as server, client(server) as http:
        response = http.post("/v2/repository/index")
        assert response.status_code == 404
        assert "REPOSITORY_API=true" in response.json()["error"]
        assert "model_repository" not in http.get("/v2").json()["extensions"]


def test_index_unload_and_load(tmp_path: Path) -> None:
    write_model(tmp_path / "m" / "1" / "model.onnx", scale_model(2))
    write_model(tmp_path / "n" / "1" / "model.onnx", scale_model(3))
    settings = settings_for(tmp_path, repository_api=True, model_poll_interval_s=0.05)
    with serving(settings) as server, client(server) as http:
        assert "model_repository" in http.get("/v2").json()["extensions"]
        index = http.post("/v2/repository/index").json()
        assert {(e["name"], e["version"], e["state"]) for e in index} == {
            ("m", "1", "READY"),
            ("n", "1", "READY"),
        }
        assert http.post("/v2/repository/models/m/unload").status_code == 200
        assert http.get("/v2/models/m/ready").status_code == 404
        import time

        time.sleep(0.5)  # ten polls: the poller must not bring an unloaded model back
        assert http.get("/v2/models/m/ready").status_code == 404
        assert http.post("/v2/repository/models/m/load").status_code == 200
        assert http.get("/v2/models/m/ready").status_code == 200
        missing = http.post("/v2/repository/models/zzz/load")
        assert missing.status_code == 404 and "not in the repository" in missing.json()["error"]
        assert http.post("/v2/repository/models/zzz/unload").status_code == 404
