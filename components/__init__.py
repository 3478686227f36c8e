"""Reusable Pulumi component resources for serving ONNX models on AWS ECS."""
