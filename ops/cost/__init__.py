"""``python -m ops cost``: a stack's monthly bill before ``pulumi up`` (docs/cost.md).

Modules: ``stack_file`` (read ``Pulumi.<stack>.yaml`` through components/stack_config.py),
``prices`` (Price List API, cache, dated snapshot), ``estimate`` (pure arithmetic), ``quotas``
(the preview's quota check, from the command line), ``cli`` (arguments and report).
"""
