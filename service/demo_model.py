"""Generate the bundled demo model: a small two-tower recommender, deterministically.

``python -m service.demo_model models`` writes ``models/recommender/1/model.onnx``. No binary is
committed: the same seed gives the same bytes, so tests and ``make serve`` agree.

Graph: user_features [N, 32] and item_features [N, 32] each go through their own
Dense(64, relu) -> Dense(16) tower; ``logit`` [N, 1] is the dot product of the two embeddings and
``score`` [N, 1] its sigmoid (a click probability).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODEL_NAME = "recommender"
FEATURES = 32
HIDDEN = 64
EMBEDDING = 16
SEED = 20261125
OPSET = 17
IR_VERSION = 9  # loadable by every ONNX Runtime release this project supports


def _dense(
    prefix: str, x: str, rng: np.random.Generator, n_in: int, n_out: int
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]:
    w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
    b = (rng.standard_normal(n_out) * 0.01).astype(np.float32)
    inits = [numpy_helper.from_array(w, f"{prefix}_w"), numpy_helper.from_array(b, f"{prefix}_b")]
    nodes = [
        helper.make_node("MatMul", [x, f"{prefix}_w"], [f"{prefix}_mm"]),
        helper.make_node("Add", [f"{prefix}_mm", f"{prefix}_b"], [f"{prefix}_out"]),
    ]
    return nodes, inits, f"{prefix}_out"


def _tower(name: str, x: str, rng: np.random.Generator) -> tuple[list, list, str]:
    n1, i1, h = _dense(f"{name}_l1", x, rng, FEATURES, HIDDEN)
    relu = helper.make_node("Relu", [h], [f"{name}_relu"])
    n2, i2, out = _dense(f"{name}_l2", f"{name}_relu", rng, HIDDEN, EMBEDDING)
    return [*n1, relu, *n2], [*i1, *i2], out


def build_model(seed: int = SEED) -> onnx.ModelProto:
    """The demo recommender as an ONNX model (same seed, same weights)."""
    rng = np.random.default_rng(seed)
    user_nodes, user_inits, user_emb = _tower("user", "user_features", rng)
    item_nodes, item_inits, item_emb = _tower("item", "item_features", rng)
    nodes = [
        *user_nodes,
        *item_nodes,
        helper.make_node("Mul", [user_emb, item_emb], ["product"]),
        helper.make_node("ReduceSum", ["product", "axes"], ["logit"], keepdims=1),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
    ]
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    graph = helper.make_graph(
        nodes,
        "two_tower_recommender",
        inputs=[
            helper.make_tensor_value_info("user_features", TensorProto.FLOAT, ["batch", FEATURES]),
            helper.make_tensor_value_info("item_features", TensorProto.FLOAT, ["batch", FEATURES]),
        ],
        outputs=[
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch", 1]),
        ],
        initializer=[*user_inits, *item_inits, axes],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="onnx-ecs-serving-demo",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def write_demo_repository(root: Path, version: int = 1) -> Path:
    """Write the demo model into ``root/recommender/<version>/model.onnx``; return its path."""
    path = root / MODEL_NAME / str(version) / "model.onnx"
    data = build_model().SerializeToString()
    if path.exists() and path.read_bytes() == data:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="repository root to write into")
    args = parser.parse_args(argv)
    path = write_demo_repository(args.model_dir)
    print(f"demo model ready: {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
