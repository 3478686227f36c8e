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

from bench import payloads, report, servers
from bench.models import LAYERS, NAME, write_mlp
from bench.wrk import INSTALL_HINT, run_wrk, write_script, wrk_path

BENCH = Path(__file__).resolve().parent
SERVER_START_S = {"service": 4.0, "naive": 3.0, "mlserver": 8.0}  # rough, for the time estimate
CHECK_S = 2.0


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
    ]


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
        self.raw: list[dict[str, Any]] = []
        self.checks: dict[str, float] = {}
        self.progress = Progress(0, 0)

    def bodies_for(self, kind: str) -> set[str]:
        return {s.body for s in self.scenarios if kind in s.servers}

    def start(
        self,
        stack: ExitStack,
        kind: str,
        make: Callable[[], servers.Server],
        note: str = "",
        batch_time: float | None = None,
    ) -> Contender:
        """Start a server (stopped when ``stack`` closes) and check its answers."""
        label = kind + (f" ({note})" if note else "")
        self.progress(
            f"start {label} on CPU {self.args.server_cpu}, check its answers",
            SERVER_START_S[kind] + CHECK_S,
        )
        target = Contender(kind, stack.enter_context(make()), note, batch_time)
        diff = max(
            payloads.check_answer(label, target.server.port, self.bodies[b])
            for b in self.bodies_for(kind)
        )
        diff = max(diff, payloads.check_concurrent(label, target.server.port, self.session))
        self.checks[kind] = max(diff, self.checks.get(kind, 0.0))
        print(f"      answers match ONNX Runtime (max |diff| {diff:.2g})", flush=True)
        return target

    def load(self, target: Contender, scenario: Scenario, round_: int) -> dict[str, Any]:
        """Warm-up, then the measured window; the service's batching counters around it."""
        args, server = self.args, target.server
        self.progress(
            f"{target.label} · {scenario.title} · {args.warmup:g} s warm-up + "
            f"{args.duration:g} s measured",
            args.warmup + args.duration + 1,
        )
        url = f"http://127.0.0.1:{server.port}{payloads.INFER_PATH}"
        script = self.scripts[scenario.body]
        run_wrk(url, script, scenario.connections, args.warmup, args.client_cpu)
        counters = target.kind == "service"
        before = service_counters(server) if counters else {}
        cpu_before, busy_before = server.cpu_seconds(), servers.cpu_busy_seconds(args.server_cpu)
        result = run_wrk(url, script, scenario.connections, args.duration, args.client_cpu)
        cpu_s = server.cpu_seconds() - cpu_before
        busy_s = servers.cpu_busy_seconds(args.server_cpu) - busy_before
        after = service_counters(server) if counters else {}
        server.assert_alive()
        rows = self.bodies[scenario.body].rows
        row: dict[str, Any] = {
            "server": target.kind,
            "note": target.note,
            "max_batch_time_s": target.batch_time,
            "scenario": scenario.key,
            "round": round_,
            "rows": rows,
            "connections": scenario.connections,
            **result.as_dict(),
            "samples_s": result.requests_s * rows,
            # CPU the server used in the window: per request (its cost, mostly immune to other
            # work on the machine) and as a share of its CPU (below ~0.95: it was not alone)
            "cpu_us_per_request": 1e6 * cpu_s / max(1, result.requests),
            "cpu_share": cpu_s / result.seconds,
            # the rest of the server CPU's busy time: other processes, interrupts, the host
            "others_share": max(0.0, busy_s - cpu_s) / result.seconds,
        }
        if counters:
            row["batching"] = batching_stats(before, after, result.seconds)
        self.raw.append(row)
        print(
            f"      {result.requests_s:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
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
                for target in contenders:
                    if target.kind not in scenario.servers:
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
    starts = 3 + variants
    rows = 0
    for scenario in bench.scenarios:
        rows += sum(
            (2 if k == "naive" else 1) for k in kinds if k in scenario.servers and k != "mlserver"
        )
        if "mlserver" in kinds and "mlserver" in scenario.servers:
            rows += variants if scenario is bench.scenarios[0] else 1
    rows *= args.repeat
    total = 4 * args.inprocess_seconds + 4 + METRICS_COST_S
    total += 3 * (SERVER_START_S["service"] + CHECK_S) + variants * (
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
            contenders = [
                bench.start(
                    stack,
                    "service",
                    lambda: servers.service(tmp / "models", tmp / "service.log", cpu),
                ),
            ]
            for async_endpoint, note in ((False, "def endpoint"), (True, "async def endpoint")):
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
        },
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
    print("\nwrote " + ", ".join(str(p) for p in written))
