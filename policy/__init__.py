"""The Pulumi policy pack (run with ``pulumi preview --policy-pack policy``)."""
