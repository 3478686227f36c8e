"""ONNX Runtime inference service speaking the Open Inference Protocol (KServe v2)."""

__version__ = "0.1.0"
