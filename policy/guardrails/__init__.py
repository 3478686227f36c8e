"""Guardrails for onnx-ecs-serving stacks, as plain rule functions plus their Pulumi wiring.

``registry.RULES`` lists every rule; ``evaluate`` runs them without the engine (tests);
``pack`` turns them into pulumi_policy policies (the pack's ``__main__``).
"""
