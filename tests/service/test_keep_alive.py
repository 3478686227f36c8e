"""Live: an idle keep-alive connection to the service outlasts the stack's load balancer idle
timeout, so the load balancer, not the service, closes idle connections.

ELB User Guide for Application Load Balancers, "Edit attributes for your Application Load
Balancer" > "Connection idle timeout"
(https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout):
"We also recommend that you configure the idle timeout of your application to be larger than
the idle timeout configured for the load balancer. Otherwise, if the application closes the TCP
connection to the load balancer ungracefully, the load balancer might send a request to the
application before it receives the packet indicating that the connection is closed. If this is
the case, then the load balancer sends an HTTP 502 Bad Gateway error to the client."

Both numbers come from the dev stack as deployed under Pulumi mocks (the ALB's ``idleTimeout``
and the container's ``KEEP_ALIVE_TIMEOUT_S``): nothing here repeats them. The idle wait is the
real one (60 s by default).
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.demo_model import write_demo_repository
from tests.service.helpers import free_port, wait_healthy
from tests.test_stack_dev import DEV, _mock_fixes, run_stack  # noqa: F401

REQUEST = b"GET /health HTTP/1.1\r\nHost: alb\r\nConnection: keep-alive\r\n\r\n"


@contextmanager
def service(models: Path, keep_alive: str) -> Iterator[int]:
    port = free_port()
    env = os.environ | {
        "KEEP_ALIVE_TIMEOUT_S": keep_alive, "MODEL_POLL_INTERVAL_S": "0",
        "EXECUTION_PROVIDER": "cpu", "ACCESS_LOG": "false",
    }  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port),
         "--model-dir", str(models)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def exchange(conn: socket.socket) -> bytes:
    """Send one request on the open connection; return the response head ('' if closed)."""
    conn.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head


def closed_by_peer(conn: socket.socket) -> bool:
    readable, _, _ = select.select([conn], [], [], 0)
    return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""


def idle_then_reuse(port: int, idle_s: float) -> tuple[bool, bytes]:
    """(closed by the service while idle, answer to a second request on the same connection)"""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        assert exchange(conn).startswith(b"HTTP/1.1 200")
        time.sleep(idle_s)
        if closed_by_peer(conn):
            return True, b""
        return False, exchange(conn)


def test_idle_connection_outlasts_the_load_balancer_idle_timeout(tmp_path: Path) -> None:
    mocks, _ = run_stack(DEV)
    idle_timeout = int(mocks.one("aws:lb/loadBalancer:LoadBalancer").inputs["idleTimeout"])
    task = mocks.one("aws:ecs/taskDefinition:TaskDefinition", "onnx-test-taskdef")
    app = next(c for c in json.loads(task.inputs["containerDefinitions"]) if c["name"] == "app")
    keep_alive = next(e["value"] for e in app["environment"] if e["name"] == "KEEP_ALIVE_TIMEOUT_S")
    assert float(keep_alive) > idle_timeout

    write_demo_repository(tmp_path)
    with service(tmp_path, keep_alive) as port:
        closed, answer = idle_then_reuse(port, idle_timeout + 1)
    assert not closed, f"the service closed an idle connection before the ALB's {idle_timeout} s"
    assert answer.startswith(b"HTTP/1.1 200")


def test_the_check_sees_a_service_that_closes_first(tmp_path: Path) -> None:
    """Control: with a keep-alive shorter than the idle wait, the same check fails."""
    write_demo_repository(tmp_path)
    with service(tmp_path, "1") as port:
        closed, _ = idle_then_reuse(port, 2.5)
    assert closed


def test_keep_alive_follows_the_configured_idle_timeout() -> None:
    """Raise idleTimeoutSeconds for long inferences and the service's keep-alive follows."""
    mocks, _ = run_stack(DEV, {"idleTimeoutSeconds": 300})
    assert mocks.one("aws:lb/loadBalancer:LoadBalancer").inputs["idleTimeout"] == 300
    task = mocks.one("aws:ecs/taskDefinition:TaskDefinition", "onnx-test-taskdef")
    app = next(c for c in json.loads(task.inputs["containerDefinitions"]) if c["name"] == "app")
    env = {e["name"]: e["value"] for e in app["environment"]}
    assert int(env["KEEP_ALIVE_TIMEOUT_S"]) > 300
