"""The smoke probe: readiness, then one inference per model, built from the model's own metadata.

Runs where the service can be reached: inside the VPC as a one-off task from the service image
(``python -m ops smoke`` starts it; the load balancer is internal), or from a laptop against a
forwarded port (``python -m ops smoke --direct --url http://127.0.0.1:8000``). Standard library
only, so it runs in the service image as is.

For every model (the folders of the model repository it is given, or ``--model`` names): the
model must be ready; its metadata gives each input's datatype and shape (dynamic dimensions,
-1, become 1); the request carries zeros of that datatype and shape (``false`` for BOOL, empty
strings for BYTES); the answer must be 200 with every output the metadata lists. Each model's
verdict and latency is printed, one line each.

Exit codes (also those of ``python -m ops smoke`` when the probe ran):
0 every model answered; 3 the service never became ready; 4 a model failed to answer (metadata
or inference: HTTP error, malformed answer, missing output); 5 a model is not ready, or no model
to probe; 6 the service could not be reached at all.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

# The probe's container and awslogs stream prefix in the stack's smoke task definition
# (components/smoke_probe.py): its log stream is <prefix>/<container>/<task id>.
CONTAINER_NAME = "smoke"
LOG_STREAM_PREFIX = "smoke"
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NOT_READY = 3
EXIT_INFER_FAILED = 4
EXIT_MODEL_NOT_READY = 5
EXIT_UNREACHABLE = 6


class Unreachable(Exception):
    """No HTTP answer at all (connection refused, DNS, timeout)."""


@dataclass
class Answer:
    status: int
    body: Any


def tls_context(url: str) -> ssl.SSLContext | None:
    """The certificate is always verified; the host name only when it can match: the stack's
    ``url`` is the load balancer's AWS name (``*.elb.amazonaws.com``), which the ALB's ACM
    certificate (for your domain) never covers. Pass your domain as ``--url`` to check it too."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "https":
        return None
    context = ssl.create_default_context()
    host = (parsed.hostname or "").lower()
    if host.endswith((".elb.amazonaws.com", ".elb.amazonaws.com.cn")):
        context.check_hostname = False
    return context


def call(url: str, payload: Any = None, timeout: float = 10.0) -> Answer:
    """GET (or POST JSON) and decode the JSON answer; raises Unreachable without an answer."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise Unreachable(f"{url}: {getattr(err, 'reason', err)}") from err
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw[:200].decode(errors="replace")
    return Answer(status, body)


def zeros_for(tensor: dict[str, Any]) -> dict[str, Any]:
    """One request input of zeros for a metadata input (dynamic dims as 1)."""
    shape = [1 if int(d) < 0 else int(d) for d in tensor.get("shape", [])]
    count = math.prod(shape)
    datatype = tensor["datatype"]
    zero: Any = False if datatype == "BOOL" else "" if datatype == "BYTES" else 0
    return {"name": tensor["name"], "datatype": datatype, "shape": shape, "data": [zero] * count}


def discover_models(model_dir: Path) -> list[str]:
    """Model names in a Triton-layout repository (folders not starting with '.')."""
    return sorted(p.name for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


@dataclass
class ModelResult:
    model: str
    exit_code: int
    message: str
    latency_ms: float | None = None

    def line(self) -> str:
        verdict = "ok  " if self.exit_code == EXIT_OK else "FAIL"
        latency = f"{self.latency_ms:8.1f} ms" if self.latency_ms is not None else " " * 11
        return f"{verdict} {self.model:<24} {latency}  {self.message}"


def probe_model(base: str, model: str, timeout: float) -> ModelResult:
    """Ready? metadata -> zeros -> infer -> every listed output present."""
    ready = call(f"{base}/v2/models/{model}/ready", timeout=timeout)
    if ready.status != 200:
        return ModelResult(model, EXIT_MODEL_NOT_READY, f"not ready (HTTP {ready.status})")
    meta = call(f"{base}/v2/models/{model}", timeout=timeout)
    if meta.status != 200 or not isinstance(meta.body, dict) or "inputs" not in meta.body:
        return ModelResult(model, EXIT_INFER_FAILED, f"metadata: HTTP {meta.status} {meta.body}")
    try:
        inputs = [zeros_for(t) for t in meta.body["inputs"]]
    except (KeyError, TypeError, ValueError) as exc:
        return ModelResult(model, EXIT_INFER_FAILED, f"metadata not understood: {exc!r}")
    request = {"id": "smoke", "inputs": inputs}
    start = time.perf_counter()
    answer = call(f"{base}/v2/models/{model}/infer", request, timeout=timeout)
    latency = (time.perf_counter() - start) * 1000
    if answer.status != 200 or not isinstance(answer.body, dict):
        error = answer.body.get("error") if isinstance(answer.body, dict) else answer.body
        return ModelResult(
            model, EXIT_INFER_FAILED, f"infer: HTTP {answer.status}: {error}", latency
        )
    got = {o.get("name"): o for o in answer.body.get("outputs", [])}
    wanted = [o["name"] for o in meta.body.get("outputs", [])]
    missing = [name for name in wanted if name not in got]
    if missing or not got:
        return ModelResult(model, EXIT_INFER_FAILED, f"infer: outputs missing {missing}", latency)
    shapes = ", ".join(f"{n}{got[n].get('shape')} {got[n].get('datatype')}" for n in wanted)
    version = answer.body.get("model_version", "?")
    return ModelResult(model, EXIT_OK, f"version {version}: {shapes}", latency)


def wait_ready(
    base: str,
    timeout: float,
    interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Answer:
    """Poll /v2/health/ready until 200 or ``timeout``; the last answer."""
    start = clock()
    while True:
        answer = call(f"{base}/v2/health/ready", timeout=min(10.0, max(timeout, 1.0)))
        if answer.status == 200 or clock() - start >= timeout:
            return answer
        sleep(interval)


def run_probe(
    base: str, models: Sequence[str], *, ready_timeout: float, timeout: float, out: TextIO
) -> int:
    """Print one line per model; the exit code is the worst (first) failure's."""
    base = base.rstrip("/")
    try:
        ready = wait_ready(base, ready_timeout)
        if ready.status != 200:
            print(
                f"FAIL service at {base} not ready after {ready_timeout:g}s "
                f"(HTTP {ready.status} on /v2/health/ready)",
                file=out,
            )
            return EXIT_NOT_READY
        print(f"ok   service at {base} is ready", file=out)
        if not models:
            print("FAIL no model to probe (empty model repository?)", file=out)
            return EXIT_MODEL_NOT_READY
        results = [probe_model(base, m, timeout) for m in models]
    except Unreachable as exc:
        print(f"FAIL service unreachable: {exc}", file=out)
        return EXIT_UNREACHABLE
    for result in results:
        print(result.line(), file=out)
    failed = [r for r in results if r.exit_code != EXIT_OK]
    print(f"{len(results) - len(failed)}/{len(results)} models answered", file=out)
    return failed[0].exit_code if failed else EXIT_OK


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="service base URL (default: $SMOKE_URL)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="model to probe (default: every model in --model-dir)",
    )
    parser.add_argument(
        "--model-dir", type=Path, help="model repository to list models from (default: $MODEL_DIR)"
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=120.0, help="seconds to wait for readiness"
    )
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds per request")


def probe_main(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run the probe from parsed flags (shared by ``--direct`` and the in-VPC task)."""
    url = args.url or os.environ.get("SMOKE_URL")
    if not url:
        print("error: no --url (or SMOKE_URL) to probe", file=out)
        return EXIT_USAGE
    models = list(args.model)
    if not models:
        model_dir = args.model_dir or (
            Path(os.environ["MODEL_DIR"]) if "MODEL_DIR" in os.environ else None
        )
        if model_dir is None or not model_dir.is_dir():
            print(f"error: no --model given and no model repository at {model_dir}", file=out)
            return EXIT_USAGE
        models = discover_models(model_dir)
    return run_probe(
        url, models, ready_timeout=args.ready_timeout, timeout=args.request_timeout, out=out
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ops.smoke_probe``: the in-VPC task's entry point."""
    parser = argparse.ArgumentParser(prog="python -m ops.smoke_probe", description=__doc__)
    configure(parser)
    return probe_main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
