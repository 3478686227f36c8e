"""The GPU metrics agent never holds a GPU instance out of the ECS cluster.

Amazon ECS Developer Guide, "Installing the Amazon ECS container agent": "The systemd units for
both ECS and Docker services have a directive to wait for cloud-init to finish before starting
both services. The cloud-init process is not considered finished until your Amazon EC2 user data
has finished running." So whatever the user data runs in the foreground delays the instance's
registration -- a package install by its duration, or by many minutes when the repository is
slow or unreachable (aws/amazon-ecs-agent#1707 shows the same ordering). The agent is installed
by a transient systemd unit started with ``systemd-run --no-block`` instead.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

from components.gpu import cloudwatch_agent as agent
from components.gpu.user_data import user_data_script

INSTALL_COMMANDS = re.compile(r"^\s*[^#\s].*\b(dnf|yum|rpm)\b", re.M)


def _outside_heredocs(script: str) -> str:
    """The lines bash runs itself, without the bodies of quoted here-documents."""
    kept, end = [], None
    for line in script.splitlines():
        if end is not None:
            if line == end:
                end = None
            continue
        kept.append(line)
        found = re.search(r"<<'(\w+)'", line)
        if found:
            end = found[1]
    return "\n".join(kept)


def test_no_package_install_runs_in_the_user_data_itself() -> None:
    script = user_data_script("onnx-prod-gpu") + agent.agent_script()
    foreground = _outside_heredocs(script)
    assert not INSTALL_COMMANDS.search(foreground), INSTALL_COMMANDS.search(foreground)
    assert f"systemd-run --no-block --unit={agent.INSTALL_UNIT} {agent.INSTALLER}" in foreground


def test_the_user_data_hands_a_valid_installer_to_systemd_and_returns(tmp_path: Path) -> None:
    """Run the agent part of the user data for real (installer path moved into tmp_path, a
    ``systemd-run`` stand-in that records its arguments, a ``dnf`` that would hang): it returns
    at once, having written an installer that is valid bash and carries the agent config."""
    installer = tmp_path / "install-gpu-metrics-agent"
    script = agent.agent_script().replace(agent.INSTALLER, str(installer))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for name, body in {
        "systemd-run": f'echo "systemd-run $*" >> {calls}',
        "dnf": f"echo dnf >> {calls}; sleep 60",
    }.items():
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\n{body}\n")
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True,
        timeout=20,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == [
        f"systemd-run --no-block --unit={agent.INSTALL_UNIT} {installer}"
    ]
    assert os.access(installer, os.X_OK)
    text = installer.read_text()
    assert subprocess.run(["bash", "-n", str(installer)]).returncode == 0
    assert "dnf install -y amazon-cloudwatch-agent" in text
    config = text.split("<<'CWAGENT'", 1)[1].split("\n", 1)[1].split("\nCWAGENT", 1)[0]
    assert json.loads(config) == agent.agent_config()
    assert text.rstrip().endswith(f"-c file:{agent.CONFIG_PATH}")
