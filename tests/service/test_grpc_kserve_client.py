"""KServe's own gRPC client (kserve.InferenceGRPCClient) against this service.

KServe cannot share a process with tritonclient (both protos declare package ``inference``:
"duplicate symbol") nor install beside the project's pins (kserve 0.21 needs protobuf>=6.33.5,
pulumi-policy pins protobuf 5.29). So the test builds a throwaway virtualenv with KServe once
(``.venv-kserve`` in the repository, git-ignored, reused by later runs; the first run downloads
KServe from PyPI) and runs ``kserve_grpc_client.py`` there, against a server in this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bench.models import build_mlp
from tests.service.conftest import settings_for
from tests.service.grpc_models import INT64_EXTREMES, UINT64_EXTREMES, iris, write_grpc_repository
from tests.service.helpers import ServerThread, free_port, serving

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-kserve"
KSERVE = "kserve==0.21.0"
SCRIPT = Path(__file__).with_name("kserve_grpc_client.py")


def _kserve_python() -> Path:
    python = VENV / "bin" / "python"
    probe = [
        str(python),
        "-c",
        f"import importlib.metadata as m; assert m.version('kserve') == '{KSERVE.split('==')[1]}'",
    ]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", KSERVE], check=True, timeout=900)
    return python


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, object]]:
    root = tmp_path_factory.mktemp("kserve-repo")
    clf = write_grpc_repository(root)
    with serving(settings_for(root, grpc_port=free_port())) as server:
        yield server, clf


@pytest.mark.timeout(1200)
def test_kserve_grpc_client(served: tuple[ServerThread, object], tmp_path: Path) -> None:
    server, clf = served
    python = _kserve_python()
    x, _ = iris()
    rng = np.random.default_rng(3)
    inputs = {
        "mlp1": rng.standard_normal((1, 256)).astype(np.float32),
        "mlp4": rng.standard_normal((4, 256)).astype(np.float32),
        "iris1": x[[0]],
        "iris4": x[[0, 60, 120, 149]],
        "u": np.array(UINT64_EXTREMES, dtype=np.uint64),
        "i": np.array(INT64_EXTREMES, dtype=np.int64),
    }
    np.savez(tmp_path / "in.npz", **inputs)
    run = subprocess.run(
        [
            str(python),
            str(SCRIPT),
            str(server.settings.grpc_port),
            str(tmp_path / "in.npz"),
            str(tmp_path / "out.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    outputs = dict(np.load(tmp_path / "out.npz"))
    assert summary["live"] and summary["ready"] and summary["mlp_ready"]
    session = ort.InferenceSession(build_mlp().SerializeToString())
    for kind in ("typed", "raw"):
        for rows in (1, 4):
            assert summary[f"id_{kind}{rows}"] == f"{kind}{rows}"
            expected = session.run(None, {"input": inputs[f"mlp{rows}"]})[0]
            np.testing.assert_allclose(outputs[f"mlp{rows}_{kind}"], expected, rtol=1e-5, atol=1e-5)
            batch = inputs[f"iris{rows}"]
            np.testing.assert_array_equal(outputs[f"label{rows}_{kind}"], clf.predict(batch))  # type: ignore[attr-defined]
            np.testing.assert_allclose(
                outputs[f"proba{rows}_{kind}"],
                clf.predict_proba(batch),
                rtol=1e-4,
                atol=1e-5,  # type: ignore[attr-defined]
            )
        assert summary[f"u_{kind}"] == UINT64_EXTREMES
        assert summary[f"i_{kind}"] == INT64_EXTREMES
    code, message = summary["unknown_model"]
    assert code == "NOT_FOUND"
    assert message.startswith("unknown model 'nope'")
