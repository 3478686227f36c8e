"""``python -m ops <command>``: the operator CLI. Commands live in their own modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ops import deployment_cli, run_task, smoke
from ops.cost import cli as cost


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a sub-command; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m ops", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_task.add_parser(commands)
    deployment_cli.add_parser(commands)
    smoke.add_parser(commands)
    cost.add_parser(commands)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
