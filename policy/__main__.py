"""Entry point the Pulumi engine runs for ``--policy-pack policy``: serve the guardrails.

The engine runs this file with this folder first on ``sys.path``, hence the top-level import.
Nothing here but wiring; rules live in ``guardrails/``.
"""

from guardrails.pack import PACK_NAME, build_policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=PACK_NAME,
    policies=build_policies(),
    enforcement_level=EnforcementLevel.ADVISORY,
)
