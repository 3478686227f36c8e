"""ONNX models built for the data-path tests of issue 15: each one makes a class of corruption or
failure visible through the HTTP API (strings, row mixing, scalars, every datatype, Gather)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _model(graph: onnx.GraphProto, opsets: list | None = None) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=opsets or OPSET)
    model.ir_version = 9
    return model


def label_encoder() -> onnx.ModelProto:
    """BYTES -> INT64: cat -> 1, dog -> 2, anything else -> -1 (ai.onnx.ml LabelEncoder)."""
    node = helper.make_node(
        "LabelEncoder",
        ["text"],
        ["label"],
        domain="ai.onnx.ml",
        keys_strings=["cat", "dog"],
        values_int64s=[1, 2],
        default_int64=-1,
    )
    graph = helper.make_graph(
        [node],
        "labels",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["n"])],
    )
    return _model(graph, [*OPSET, helper.make_opsetid("ai.onnx.ml", 3)])


def centered() -> onnx.ModelProto:
    """y = x - mean(x, axis=0): the first dimension is dynamic but is not a batch axis."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["m"], axes=[0], keepdims=1),
            helper.make_node("Sub", ["x", "m"], ["y"]),
        ],
        "centered",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
    )
    return _model(graph)


def sequence_cumsum() -> onnx.ModelProto:
    """Sequence-first [seq, batch, features] running sum over the sequence (as an LSTM's
    default layout): concatenating requests along dimension 0 makes one long sequence."""
    graph = helper.make_graph(
        [helper.make_node("CumSum", ["x", "axis"], ["y"])],
        "cumsum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", "batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["seq", "batch", 3])],
        initializer=[numpy_helper.from_array(np.array(0, dtype=np.int64), "axis")],
    )
    return _model(graph)


def scalar_model() -> onnx.ModelProto:
    """A rank-0 input and output: y = x * 2."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "scalar",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        initializer=[numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")],
    )
    return _model(graph)


def identity(elem_type: int) -> onnx.ModelProto:
    """y = x for one datatype, shape [n]."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", elem_type, ["n"])],
        [helper.make_tensor_value_info("y", elem_type, ["n"])],
    )
    return _model(graph)


def negate_bool() -> onnx.ModelProto:
    """y = Not(x) on BOOL."""
    graph = helper.make_graph(
        [helper.make_node("Not", ["x"], ["y"])],
        "not",
        [helper.make_tensor_value_info("x", TensorProto.BOOL, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.BOOL, ["n"])],
    )
    return _model(graph)


def two_input_gather() -> onnx.ModelProto:
    """y = data[indices]: both tensors come from the request, indices may be out of range."""
    graph = helper.make_graph(
        [helper.make_node("Gather", ["data", "indices"], ["y"], axis=0)],
        "gather",
        [
            helper.make_tensor_value_info("data", TensorProto.FLOAT, ["n", 2]),
            helper.make_tensor_value_info("indices", TensorProto.INT64, ["n"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
    )
    return _model(graph)
