"""``python -m bench``: one run that measures this service against its peers on one machine.

Order: generate the MLP into a temp dir; measure the in-process ONNX Runtime limit; start every
server (this service, the naive FastAPI server, MLServer with adaptive batching once per
``max_batch_time`` tried), each pinned to the same CPU, and check its answers against ONNX
Runtime; then run the scenarios in turn, each on every server back to back (idle servers cost
nothing), so that other work on the machine hits all servers alike; measure the in-process limit
again; print the table and the target verdicts and write bench/results.json, the results
section of bench/README.md and bench/results.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench import grpc_load, payloads, report, servers
from bench.models import INPUT, LAYERS, NAME, OUTPUT, write_mlp
from bench.wrk import INSTALL_HINT, WrkResult, combine, run_wrk, write_script, wrk_path

BENCH = Path(__file__).resolve().parent
SERVER_START_S = {"service": 4.0, "naive": 3.0, "mlserver": 8.0}  # rough, for the time estimate
CHECK_S = 2.0


GRPC_BODY = "grpc1"  # a serialized ModelInferRequest, sent by bench.grpc_load (no wrk for gRPC)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    body: str  # key of payloads.make_bodies()
    connections: int
    servers: tuple[str, ...]
    peer_scenario: str | None = None  # compare with the peers' rows of this scenario instead


def scenarios(connections: int) -> list[Scenario]:
    everyone = ("service", "naive", "mlserver")
    return [
        Scenario("json1-c64", f"batch-1 JSON, {connections} conn", "json1", connections, everyone),
        Scenario(
            "binary1-c64",
            f"batch-1 binary, {connections} conn",
            "binary1",
            connections,
            ("service",),
            peer_scenario="json1-c64",
        ),
        Scenario("json8-c64", f"batch-8 JSON, {connections} conn", "json8", connections, everyone),
        Scenario("json1-c1", "batch-1 JSON, 1 conn", "json1", 1, everyone),
        Scenario(
            "grpc1-c64",
            f"batch-1 gRPC (raw tensors), {connections} streams",
            GRPC_BODY,
            connections,
            ("service",),
            peer_scenario="json1-c64",
        ),
    ]


@dataclass(frozen=True)
class ServiceVariant:
    """This service with some settings changed from its defaults, measured in the same run
    (interleaved with the defaults, round by round) to show what those settings cost. The
    report compares each variant with the defaults in the variant's scenarios."""

    note: str  # shown after "this service", e.g. "ACCESS_LOG=false"
    env: dict[str, str]
    scenarios: tuple[str, ...] = ("json1-c64",)


# A/B rows: the defaults against one change each. Add a row here to measure another setting.
SERVICE_VARIANTS = [
    ServiceVariant("ACCESS_LOG=false", {"ACCESS_LOG": "false"}, ("json1-c64", "json1-c1")),
]


def parse_variant(text: str) -> ServiceVariant:
    """``--variant "KEY=VAL[,KEY=VAL...]"`` (headline scenario only)."""
    env: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE[,KEY=VALUE...], got {text!r}")
        env[key.strip().upper()] = value.strip()
    if not env:
        raise argparse.ArgumentTypeError("--variant needs at least one KEY=VALUE")
    return ServiceVariant(",".join(f"{k}={v}" for k, v in env.items()), env)


class Progress:
    """Prints which server and scenario runs, and about how long the whole run has left."""

    def __init__(self, total_s: float, steps: int) -> None:
        self.left_s = total_s
        self.steps = steps
        self.step = 0

    def __call__(self, what: str, cost_s: float) -> None:
        self.step += 1
        left = max(0.0, self.left_s)
        print(
            f"[{self.step:>2}/{self.steps}] {what} (about {int(left // 60)}m{int(left % 60):02d}s "
            "left)",
            flush=True,
        )
        self.left_s -= cost_s


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per row")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per row")
    parser.add_argument("--inprocess-seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument(
        "--mlserver-batch-times",
        default="0.001,0.002,0.005",
        help="MLServer max_batch_time values (s) to try on the headline; the best is used",
    )
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument(
        "--skip-naive", action="store_true", help="no naive FastAPI server (e.g. for A/B runs)"
    )
    parser.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        default=[],
        metavar="KEY=VAL[,KEY=VAL]",
        help="also measure this service with these environment overrides, next to its defaults "
        "(headline scenario); repeatable. Built-in variants: "
        + "; ".join(v.note for v in SERVICE_VARIANTS),
    )
    parser.add_argument("--no-variants", action="store_true", help="skip the built-in A/B variants")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds over all rows; the median round is kept"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 s warm-up, 3 s windows: to try it out"
    )
    parser.add_argument(
        "--out", type=Path, default=BENCH, help="where results.json/README.md/results.png go"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; write no files")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.duration, args.inprocess_seconds = 1.0, 3.0, 1.5
    args.batch_times = [float(x) for x in args.mlserver_batch_times.split(",") if x.strip()]
    args.variants = [*([] if args.no_variants else SERVICE_VARIANTS), *args.variant]
    return args


def preflight(args: argparse.Namespace) -> None:
    if wrk_path() is None:
        sys.exit(INSTALL_HINT)
    if shutil.which("taskset") is None:
        sys.exit("taskset is missing (util-linux): `sudo apt-get install util-linux`")
    cpus = os.sched_getaffinity(0)
    if args.server_cpu == args.client_cpu or not {args.server_cpu, args.client_cpu} <= cpus:
        sys.exit(
            f"need two distinct usable CPUs for server ({args.server_cpu}) and wrk "
            f"({args.client_cpu}); this process may use {sorted(cpus)}"
        )


_METRIC = re.compile(r"^(inference_\w+?)_(sum|count)\{[^}]*\}\s+([0-9.eE+-]+)$", re.M)


def service_counters(server: servers.Server) -> dict[str, float]:
    status, text = server.get("/metrics")
    if status != 200:
        return {}
    return {f"{m[1]}_{m[2]}": float(m[3]) for m in _METRIC.finditer(text.decode())}


def batching_stats(before: dict[str, float], after: dict[str, float], seconds: float) -> dict:
    """Mean rows per model run, queue wait and run time over the measured window."""

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    runs = delta("inference_batch_size_count")
    if runs <= 0:
        return {}
    waits = delta("inference_queue_duration_seconds_count") or 1.0
    return {
        "batches_s": runs / seconds,
        "rows_avg": delta("inference_batch_size_sum") / runs,
        "queue_ms_avg": 1e3 * delta("inference_queue_duration_seconds_sum") / waits,
        "exec_ms_avg": 1e3 * delta("inference_execution_duration_seconds_sum") / runs,
    }


@dataclass
class Contender:
    """A running server under test: ``kind`` is service/naive/mlserver, ``note`` its variant."""

    kind: str
    server: servers.Server
    note: str = ""
    batch_time: float | None = None
    only: tuple[str, ...] | None = None  # scenario keys of an A/B variant; None: all of kind's

    def runs(self, scenario: Scenario) -> bool:
        return self.kind in scenario.servers and (self.only is None or scenario.key in self.only)

    @property
    def label(self) -> str:
        return self.kind + (f" ({self.note})" if self.note else "")


class Bench:
    """The state of one run: temp files, bodies, scripts and collected results."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.model = write_mlp(tmp / "models")
        self.session = payloads.reference_session(self.model)
        self.bodies = payloads.make_bodies(self.session)
        self.scripts = {
            key: write_script(tmp, key, body.write(tmp), body.headers)
            for key, body in self.bodies.items()
        }
        self.scenarios = scenarios(args.connections)
        one = payloads.random_input(1, seed=1)
        self.grpc_path = tmp / f"{GRPC_BODY}.body"
        self.grpc_path.write_bytes(grpc_load.infer_request(NAME, INPUT, one))
        self.grpc_expected = self.session.run([OUTPUT], {INPUT: one})[0]
        self.raw: list[dict[str, Any]] = []
        self.checks: dict[str, float] = {}
        self.progress = Progress(0, 0)

    def bodies_for(self, kind: str) -> set[str]:
        return {s.body for s in self.scenarios if kind in s.servers and s.body in self.bodies}

    def start(
        self,
        stack: ExitStack,
        kind: str,
        make: Callable[[], servers.Server],
        note: str = "",
        batch_time: float | None = None,
        only: tuple[str, ...] | None = None,
    ) -> Contender:
        """Start a server (stopped when ``stack`` closes) and check its answers."""
        label = kind + (f" ({note})" if note else "")
        self.progress(
            f"start {label} on CPU {self.args.server_cpu}, check its answers",
            SERVER_START_S[kind] + CHECK_S,
        )
        target = Contender(kind, stack.enter_context(make()), note, batch_time, only)
        diff = max(
            payloads.check_answer(label, target.server.port, self.bodies[b])
            for b in self.bodies_for(kind)
        )
        diff = max(diff, payloads.check_concurrent(label, target.server.port, self.session))
        if target.server.grpc_port:
            body = self.grpc_path.read_bytes()
            port = target.server.grpc_port
            grpc_diff = grpc_load.check_answer(
                label, port, body, self.grpc_expected, payloads.TOLERANCE
            )
            diff = max(diff, grpc_diff)
        self.checks[kind] = max(diff, self.checks.get(kind, 0.0))
        print(f"      answers match ONNX Runtime (max |diff| {diff:.2g})", flush=True)
        return target

    def drive(self, server: servers.Server, scenario: Scenario, seconds: float) -> WrkResult:
        """Closed-loop load on the client CPU: wrk over HTTP, bench.grpc_load over gRPC."""
        cpu = self.args.client_cpu
        if scenario.body == GRPC_BODY:
            return grpc_load.run_grpc_load(
                server.grpc_port, self.grpc_path, scenario.connections, seconds, cpu
            )
        url = f"http://127.0.0.1:{server.port}{payloads.INFER_PATH}"
        return run_wrk(url, self.scripts[scenario.body], scenario.connections, seconds, cpu)

    def load(self, target: Contender, scenario: Scenario, round_: int) -> dict[str, Any]:
        """Warm-up, then the measured window; the service's batching counters around it."""
        return self.load_interleaved([target], scenario, round_)[0]

    def load_interleaved(
        self, targets: list[Contender], scenario: Scenario, round_: int
    ) -> list[dict[str, Any]]:
        """Warm up each target, then measure them in alternating slices of the window (A B, B A,
        A B...; one slice when alone), so that a burst of other work on the machine hits all of
        them alike: the A/B variants of this service are measured so. Each target's row sums
        its slices (requests, seconds, CPU); p50 is the median of the slices' p50, p99 the
        highest slice p99."""
        args = self.args
        slices = 1 if len(targets) == 1 else max(1, min(5, round(args.duration / 2)))
        slice_s = max(1, round(args.duration / slices))
        for target in targets:
            self.progress(
                f"{target.label} · {scenario.title} · {args.warmup:g} s warm-up + "
                f"{slices * slice_s:g} s measured"
                + (f" in {slices} slices alternating with the others" if slices > 1 else ""),
                args.warmup + slices * slice_s + 1,
            )
            self.drive(target.server, scenario, args.warmup)
        parts: dict[int, list[tuple[WrkResult, float, float]]] = {id(t): [] for t in targets}
        before = {id(t): self._counters(t) for t in targets}
        for n in range(slices):
            for target in targets if n % 2 == 0 else targets[::-1]:
                server = target.server
                cpu_before = server.cpu_seconds()
                busy_before = servers.cpu_busy_seconds(args.server_cpu)
                result = self.drive(server, scenario, slice_s)
                cpu_s = server.cpu_seconds() - cpu_before
                busy_s = servers.cpu_busy_seconds(args.server_cpu) - busy_before
                parts[id(target)].append((result, cpu_s, busy_s))
        rows = []
        for target in targets:
            target.server.assert_alive()
            after = self._counters(target)
            results = [p[0] for p in parts[id(target)]]
            result = combine(results)
            cpu_s = sum(p[1] for p in parts[id(target)])
            busy_s = sum(p[2] for p in parts[id(target)])
            rows.append(self._row(target, scenario, round_, result, cpu_s, busy_s,
                                  before[id(target)], after, slices))  # fmt: skip
        return rows

    def _counters(self, target: Contender) -> dict[str, float]:
        return service_counters(target.server) if target.kind == "service" else {}

    def _row(
        self,
        target: Contender,
        scenario: Scenario,
        round_: int,
        result: WrkResult,
        cpu_s: float,
        busy_s: float,
        before: dict[str, float],
        after: dict[str, float],
        slices: int,
    ) -> dict[str, Any]:
        args = self.args
        rows = self.bodies[scenario.body].rows if scenario.body in self.bodies else 1
        row: dict[str, Any] = {
            "server": target.kind,
            "note": target.note,
            "max_batch_time_s": target.batch_time,
            "scenario": scenario.key,
            "round": round_,
            "rows": rows,
            "connections": scenario.connections,
            "slices": slices,
            **result.as_dict(),
            "samples_s": result.requests_s * rows,
            # CPU the server used in the window: per request (its cost, mostly immune to other
            # work on the machine) and as a share of its CPU (below ~0.95: it was not alone)
            "cpu_us_per_request": 1e6 * cpu_s / max(1, result.requests),
            "cpu_share": cpu_s / result.seconds,
            # the rest of the server CPU's busy time: other processes, interrupts, the host
            "others_share": max(0.0, busy_s - cpu_s) / result.seconds,
        }
        if target.kind == "service":
            row["batching"] = batching_stats(before, after, result.seconds)
        self.raw.append(row)
        print(
            f"      {target.label}: {result.requests_s:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
            f"p99 {result.p99_ms:.2f} ms, {result.errors} errors; server CPU "
            f"{row['cpu_us_per_request']:.0f} µs/request; CPU {args.server_cpu} "
            f"{100 * row['cpu_share']:.0f}% this server, {100 * row['others_share']:.0f}% others",
            flush=True,
        )
        return row

    def measure(self, contenders: list[Contender]) -> float | None:
        """Every round runs the scenarios in turn, each on every server back to back, so load
        from elsewhere on the machine hits all servers alike. MLServer runs every batch-time
        variant on the headline; the best of the first round serves the other scenarios."""
        best: Contender | None = None
        variants = [t for t in contenders if t.kind == "mlserver"]
        for round_ in range(self.args.repeat):
            for scenario in self.scenarios:
                # this service and its A/B variants together, in alternating slices
                group = [t for t in contenders if t.kind == "service" and t.runs(scenario)]
                if group:
                    self.load_interleaved(group, scenario, round_)
                for target in contenders:
                    if target.kind == "service" or not target.runs(scenario):
                        continue
                    headline = scenario is self.scenarios[0]
                    if target.kind == "mlserver" and not headline and target is not best:
                        continue
                    self.load(target, scenario, round_)
                if scenario is self.scenarios[0] and variants and best is None:
                    headline = [r for r in self.raw if r["server"] == "mlserver"]
                    top = max(headline, key=lambda r: r["requests_s"])
                    best = next(t for t in variants if t.batch_time == top["max_batch_time_s"])
        return None if best is None else best.batch_time


def median_runs(raw: list[dict[str, Any]], batch_time: float | None) -> list[dict[str, Any]]:
    """One row per (server variant, scenario): the round with the median req/s (and its
    latencies); of MLServer only the chosen ``max_batch_time``."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in raw:
        if row["server"] == "mlserver" and row["max_batch_time_s"] != batch_time:
            continue
        groups.setdefault((row["server"], row["note"], row["scenario"]), []).append(row)
    runs = []
    for rows in groups.values():
        ordered = sorted(rows, key=lambda r: r["requests_s"])
        runs.append({**ordered[(len(ordered) - 1) // 2], "rounds": len(ordered)})
    return runs


def mlserver_sweep(raw: list[dict[str, Any]], headline: str) -> list[dict[str, Any]]:
    by_time: dict[float, list[dict[str, Any]]] = {}
    for row in raw:
        if row["server"] == "mlserver" and row["scenario"] == headline:
            by_time.setdefault(row["max_batch_time_s"], []).append(row)
    sweep = []
    for batch_time, rows in sorted(by_time.items()):
        mid = sorted(rows, key=lambda r: r["requests_s"])[(len(rows) - 1) // 2]
        sweep.append(
            {
                "max_batch_time_s": batch_time,
                "requests_s": mid["requests_s"],
                "p99_ms": mid["p99_ms"],
            }
        )
    return sweep


def plan(args: argparse.Namespace, bench: Bench, with_mlserver: bool) -> tuple[float, int]:
    """Rough total seconds and number of progress steps, for the "left" estimate."""
    per_row = args.warmup + args.duration + 1
    kinds = ["service", "naive", *(["mlserver"] if with_mlserver else [])]
    variants = len(args.batch_times) if with_mlserver else 0
    starts = 3 + len(args.variants) + variants
    rows = 0
    for scenario in bench.scenarios:
        rows += sum(
            (2 if k == "naive" else 1) for k in kinds if k in scenario.servers and k != "mlserver"
        )
        rows += sum(scenario.key in v.scenarios for v in args.variants)
        if "mlserver" in kinds and "mlserver" in scenario.servers:
            rows += variants if scenario is bench.scenarios[0] else 1
    rows *= args.repeat
    total = 4 * args.inprocess_seconds + 4 + METRICS_COST_S
    total += (3 + len(args.variants)) * (SERVER_START_S["service"] + CHECK_S) + variants * (
        SERVER_START_S["mlserver"] + CHECK_S
    )
    total += rows * per_row
    return total, 3 + starts + rows


def versions(mlserver_ok: bool) -> dict[str, str]:
    found: dict[str, str] = {"python": platform.python_version()}
    for dist in ("onnxruntime-gpu", "onnxruntime", "numpy", "fastapi", "starlette", "uvicorn"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    if mlserver_ok:
        found["mlserver"] = f"{servers.MLSERVER_VERSION} (own venv, onnxruntime {ort_version()})"
    found["wrk"] = (
        subprocess.run([wrk_path() or "wrk", "-v"], capture_output=True, text=True, check=False)
        .stdout.split(" [")[0]
        .removeprefix("wrk ")
    )
    return found


def ort_version() -> str:
    for dist in ("onnxruntime-gpu", "onnxruntime"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise RuntimeError("onnxruntime is not installed in this environment")


def machine(load_before: str) -> dict[str, Any]:
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": pages / 2**30,
        "kernel": platform.release(),
        "load_before": load_before,
        "load_after": load_average(),
    }


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextmanager
def temp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="onnx-bench-") as tmp:
        yield Path(tmp)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every started server is stopped on the way out."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except (payloads.CheckFailed, servers.ServerFailed) as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr, flush=True)
        return 1


def _main(argv: list[str] | None) -> int:
    args = parse_args(argv)
    preflight(args)
    signal.signal(signal.SIGTERM, _terminate)
    load_before = load_average()
    print(f"load average: {load_before} (numbers are noisier when other work runs)", flush=True)
    with temp_dir() as tmp:
        bench = Bench(args, tmp)
        unavailable = None
        if args.skip_mlserver:
            unavailable = "skipped (--skip-mlserver)"
        else:
            print("preparing MLServer in bench/.venv-mlserver (first run installs it)", flush=True)
            unavailable = servers.ensure_mlserver(ort_version(), tmp / "mlserver-install.log")
            if unavailable:
                print(f"MLServer cannot be installed, continuing without it: {unavailable}")
        bench.progress = Progress(*plan(args, bench, unavailable is None))
        cpu, model = args.server_cpu, bench.model
        limits = [inprocess_limit(bench, "before the servers start")]
        with ExitStack() as stack:
            # this service with its defaults, then each A/B variant right after it, so every
            # round measures them back to back
            contenders = [
                bench.start(
                    stack,
                    "service",
                    lambda: servers.service(tmp / "models", tmp / "service.log", cpu),
                ),
            ]
            for n, variant in enumerate(args.variants, 1):
                make = partial(
                    servers.service,
                    tmp / "models",
                    tmp / f"service-variant-{n}.log",
                    cpu,
                    variant.env,
                    f"service ({variant.note})",
                )
                only = tuple(k for k in variant.scenarios if k in {s.key for s in bench.scenarios})
                contenders.append(bench.start(stack, "service", make, variant.note, only=only))
            naive_variants = (
                () if args.skip_naive else ((False, "def endpoint"), (True, "async def endpoint"))
            )
            for async_endpoint, note in naive_variants:
                make = partial(servers.naive, model, tmp / f"naive-{async_endpoint}.log", cpu)
                contenders.append(bench.start(stack, "naive", partial(make, async_endpoint), note))
            if unavailable is None:
                for t in args.batch_times:
                    make = partial(
                        servers.mlserver,
                        model,
                        tmp / f"mlserver-{t}",
                        tmp / f"mlserver-{t}.log",
                        cpu,
                        t,
                    )
                    note = f"max_batch_time {t} s"
                    contenders.append(bench.start(stack, "mlserver", make, note, t))
            best_time = bench.measure(contenders)
            print("stopping the servers", flush=True)
        limits.append(inprocess_limit(bench, "after the servers stopped"))
        emf_cost = metrics_path_cost(bench)
        results = collect(args, bench, limits, best_time, unavailable, load_before, emf_cost)
    report.print_report(results)
    if not args.no_write:
        write_outputs(results, args.out)
    return 0


def inprocess_limit(bench: Bench, when: str) -> dict[str, dict[str, float]]:
    args = bench.args
    bench.progress(
        f"in-process ONNX Runtime limit, batch 1 and 32 ({when})", 2 * args.inprocess_seconds
    )
    argv = ["taskset", "-c", str(args.server_cpu), sys.executable, "-m", "bench.inprocess"]
    argv += [
        str(bench.model),
        "--seconds",
        str(args.inprocess_seconds),
        "--batch",
        "1",
        "--batch",
        "32",
    ]
    done = subprocess.run(
        argv,
        cwd=servers.REPO,
        capture_output=True,
        text=True,
        timeout=2 * args.inprocess_seconds + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"in-process measurement failed:\n{done.stderr}")
    limit = json.loads(done.stdout)
    print(
        f"      batch 1: {limit['1']['inferences_s']:,.0f} inferences/s "
        f"({limit['1']['cpu_us_per_inference']:.0f} µs CPU each); batch 32: "
        f"{limit['32']['samples_s']:,.0f} samples/s",
        flush=True,
    )
    return limit


METRICS_COST_S = 40  # bench.metrics_cost with its defaults, on a loaded machine


def metrics_path_cost(bench: Bench) -> dict[str, Any]:
    """The CloudWatch metrics path on vs off (bench.metrics_cost), pinned to the server CPU."""
    bench.progress("CloudWatch metrics path (EMF) on vs off, in process", METRICS_COST_S)
    argv = ["taskset", "-c", str(bench.args.server_cpu), sys.executable, "-m"]
    argv += ["bench.metrics_cost", "--json"]
    done = subprocess.run(
        argv, cwd=servers.REPO, capture_output=True, text=True, timeout=10 * METRICS_COST_S
    )
    if done.returncode != 0:
        raise RuntimeError(f"metrics path measurement failed:\n{done.stderr}")
    cost = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"      EMF on {cost['emf_on_us']} µs, off {cost['emf_off_us']} µs CPU per request: "
        f"{cost['cost_percent']:+} %",
        flush=True,
    )
    return cost


def collect(
    args: argparse.Namespace,
    bench: Bench,
    limits: list[dict[str, dict[str, float]]],
    best_time: float | None,
    unavailable: str | None,
    load_before: str,
    metrics_cost: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything of the run in one JSON-able dict; the limit is the best of its measurements."""
    limit = {
        batch: max((m[batch] for m in limits), key=lambda v: v["inferences_s"])
        for batch in limits[0]
    }
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(load_before),
        "versions": versions(unavailable is None),
        "settings": {
            "model": "→".join(str(n) for n in LAYERS),
            "model_name": NAME,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "inprocess_s": args.inprocess_seconds,
            "connections": args.connections,
            "repeat": args.repeat,
            "server_cpu": args.server_cpu,
            "client_cpu": args.client_cpu,
            "mlserver_max_batch_time_s": best_time,
            "mlserver_max_batch_size": 32,
            "command": "python -m bench " + " ".join(sys.argv[1:]),
            "service_env": "defaults (only MODEL_DIR set)",
        },
        "service_variants": [asdict(v) for v in args.variants],
        "inprocess": limit,
        "inprocess_measurements": limits,
        "scenarios": [asdict(s) for s in bench.scenarios],
        "runs": median_runs(bench.raw, best_time),
        "raw_runs": bench.raw,
        "mlserver_sweep": mlserver_sweep(bench.raw, bench.scenarios[0].key),
        "mlserver_unavailable": unavailable,
        "checks": bench.checks,
        "tolerance": payloads.TOLERANCE,
        "metrics_cost": metrics_cost,
    }
    results["targets"] = report.evaluate_targets(results)
    return results


def write_outputs(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    chart = report.write_chart(results, out / "results.png")
    report.write_readme(out / "README.md", report.readme_section(results, chart))
    written = [out / "results.json", out / "README.md", *([out / chart] if chart else [])]
    if chart and (out / report.AB_CHART).is_file():
        written.append(out / report.AB_CHART)
    print("\nwrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    sys.exit(main())
