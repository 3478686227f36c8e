"""The benchmark model: a 256 -> 1024 -> 1024 -> 128 FP32 MLP, generated deterministically."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAME = "mlp"
LAYERS = (256, 1024, 1024, 128)
INPUT = "input"
OUTPUT = "output"


def build_mlp(seed: int = 7) -> onnx.ModelProto:
    """Dense layers with ReLU between them; dynamic batch dimension."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], INPUT
    for i, (n_in, n_out) in enumerate(itertools.pairwise(LAYERS)):
        w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(LAYERS) - 2
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [OUTPUT if last else f"g{i}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"g{i}"], [f"r{i}"]))
            x = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", LAYERS[0]])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", LAYERS[-1]])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def write_mlp(root: Path) -> Path:
    path = root / NAME / "1" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build_mlp().SerializeToString())
    return path
