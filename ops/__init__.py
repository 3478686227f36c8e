"""Operator tools run from a laptop or CI against a deployed stack (``python -m ops ...``)."""
