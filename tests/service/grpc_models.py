"""Models for the gRPC tests: the bench MLP, a scikit-learn classifier converted with skl2onnx,
and an identity over UINT64/INT64 for exact round trips; and tritonclient inputs for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from tritonclient.grpc import InferInput

from bench.models import build_mlp
from tests.service.helpers import string_model, write_model

MIB = 1024 * 1024
UINT64_EXTREMES = [0, 2**63 - 1, 2**63 + 1, 2**64 - 1]
INT64_EXTREMES = [0, 2**63 - 1, -(2**63), -1]


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data.astype(np.float32), data.target


def sklearn_classifier() -> tuple[onnx.ModelProto, object]:
    """Logistic regression on iris, converted without ZipMap (plain tensors out)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    clf = LogisticRegression(max_iter=500).fit(x, y)
    model = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    return model, clf


def integer_identity() -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["u"], ["u_out"]),
            helper.make_node("Identity", ["i"], ["i_out"]),
        ],
        "ints",
        [
            helper.make_tensor_value_info("u", TensorProto.UINT64, ["n"]),
            helper.make_tensor_value_info("i", TensorProto.INT64, ["n"]),
        ],
        [
            helper.make_tensor_value_info("u_out", TensorProto.UINT64, ["n"]),
            helper.make_tensor_value_info("i_out", TensorProto.INT64, ["n"]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def write_grpc_repository(root: Path) -> object:
    """The repository the gRPC tests serve; returns the fitted scikit-learn classifier."""
    write_model(root / "mlp" / "1" / "model.onnx", build_mlp())
    classifier, clf = sklearn_classifier()
    write_model(root / "classifier" / "1" / "model.onnx", classifier)
    write_model(root / "ints" / "1" / "model.onnx", integer_identity())
    write_model(root / "strings" / "1" / "model.onnx", string_model())
    return clf


def triton_input(name: str, array: np.ndarray, datatype: str) -> InferInput:
    """One input for tritonclient's gRPC client, with ``array`` as its data."""
    tensor = InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor
