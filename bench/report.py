"""Turn one benchmark run into a table, target verdicts, results.json, README section and chart.

Everything here reads the ``results`` dict that ``bench.run`` builds (and writes as
bench/results.json), so the README and the chart can be regenerated from the JSON alone:
``python -m bench.report bench/results.json``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

Results = dict[str, Any]

START = "<!-- results:start (written by `python -m bench`; edits inside are overwritten) -->"
END = "<!-- results:end -->"
SERVER_TITLES = {"service": "this service", "naive": "naive FastAPI", "mlserver": "MLServer"}
PEERS = ("naive", "mlserver")


def runs_of(results: Results, server: str, scenario: str) -> list[dict[str, Any]]:
    """Every variant of one server in one scenario (the naive server has two)."""
    return [r for r in results["runs"] if r["server"] == server and r["scenario"] == scenario]


def run_of(results: Results, server: str, scenario: str) -> dict[str, Any] | None:
    """This service with its defaults; of a peer, the variant with the most req/s (a peer is
    compared at its best)."""
    runs = runs_of(results, server, scenario)
    if server == "service":
        runs = [r for r in runs if not r.get("note")]
    return max(runs, key=lambda r: r["requests_s"]) if runs else None


def variant_comparisons(results: Results) -> list[dict[str, Any]]:
    """This service's defaults against each A/B variant, per scenario the variant ran: req/s and
    CPU per request of the kept (median) rows, and the ratio defaults ÷ variant of every round
    (the two were measured back to back in it) with its median, which is what is judged."""
    out = []
    raw = results.get("raw_runs", [])
    for variant in results.get("service_variants", []):
        for key in variant["scenarios"]:
            mine = [r for r in runs_of(results, "service", key) if r["note"] == variant["note"]]
            base = run_of(results, "service", key)
            if not mine or base is None:
                continue
            per_round, per_round_cpu = [], []
            for round_ in sorted({r["round"] for r in raw}):
                a = [
                    r
                    for r in raw
                    if r["server"] == "service" and r["scenario"] == key and r["round"] == round_
                ]
                d = [r for r in a if not r["note"]]
                v = [r for r in a if r["note"] == variant["note"]]
                if d and v and v[0]["requests_s"]:
                    per_round.append(d[0]["requests_s"] / v[0]["requests_s"])
                    if d[0].get("cpu_us_per_request"):
                        per_round_cpu.append(
                            v[0].get("cpu_us_per_request", 0) / d[0]["cpu_us_per_request"]
                        )
            out.append(
                {
                    "variant": variant["note"],
                    "env": variant["env"],
                    "scenario": key,
                    "title": next(
                        (s["title"] for s in results["scenarios"] if s["key"] == key), key
                    ),
                    "defaults": base,
                    "run": mine[0],
                    "ratios": per_round,
                    "ratio": _median(per_round),
                    # the same comparison per CPU-second (variant ÷ defaults CPU per request),
                    # which other work on the machine moves much less than req/s
                    "cpu_ratios": per_round_cpu,
                    "cpu_ratio": _median(per_round_cpu),
                }
            )
    return out


def _median(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2] if ordered else None


def comparisons_markdown(results: Results) -> str:
    rows = []
    for c in variant_comparisons(results):
        d, v = c["defaults"], c["run"]
        rows.append(
            [
                c["title"],
                f"`{c['variant']}`",
                _fmt(d["requests_s"]),
                _fmt(v["requests_s"]),
                _fmt(d.get("cpu_us_per_request")),
                _fmt(v.get("cpu_us_per_request")),
                _fmt(d["p50_ms"], 2) + " / " + _fmt(v["p50_ms"], 2),
                "-" if c["ratio"] is None else f"{c['ratio']:.2f}x",
                ", ".join(f"{r:.2f}" for r in c["ratios"]),
                "-" if c.get("cpu_ratio") is None else f"{c['cpu_ratio']:.2f}x",
            ]
        )
    if not rows:
        return ""
    header = [
        "scenario",
        "variant",
        "defaults req/s",
        "variant req/s",
        "defaults CPU µs/req",
        "variant CPU µs/req",
        "p50 ms defaults / variant",
        "req/s defaults ÷ variant (median)",
        "per round",
        "per CPU-second (median)",
    ]
    return markdown_table(header, rows)


def title(run: dict[str, Any]) -> str:
    return SERVER_TITLES[run["server"]] + (f" ({run['note']})" if run.get("note") else "")


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return "-"
    return f"{a / b:.2f}x"


def _shares(run: dict[str, Any]) -> str:
    if "cpu_share" not in run:
        return "-"
    return f"{100 * run['cpu_share']:.0f}% / {100 * run.get('others_share', float('nan')):.0f}%"


def table_rows(results: Results) -> list[list[str]]:
    """One row per scenario and server variant: throughput, latency, errors and the ratios
    (to each peer's best variant in the same scenario)."""
    limit = results["inprocess"]
    b1, b32 = limit["1"]["samples_s"], limit["32"]["samples_s"]
    rows = []
    for scenario in results["scenarios"]:
        peer_scenario = scenario.get("peer_scenario") or scenario["key"]
        for run in [
            r for server in ("service", *PEERS) for r in runs_of(results, server, scenario["key"])
        ]:
            server = run["server"]
            ratios = []
            for peer in PEERS:
                other = run_of(results, peer, peer_scenario)
                same = peer == server
                skip = same or other is None
                ratios.append("-" if skip else _ratio(run["requests_s"], other["requests_s"]))
            rows.append(
                [
                    scenario["title"],
                    title(run),
                    _fmt(run["requests_s"]),
                    _fmt(run["samples_s"]),
                    _fmt(run["p50_ms"], 2),
                    _fmt(run["p99_ms"], 2),
                    str(run["errors"]),
                    _fmt(run.get("cpu_us_per_request")),
                    _shares(run),
                    *ratios,
                    _ratio(run["samples_s"], b1),
                    _ratio(run["samples_s"], b32),
                ]
            )
    return rows


HEADER = [
    "scenario",
    "server",
    "req/s",
    "samples/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "CPU µs/req",
    "CPU: server / others",
    "÷ naive",
    "÷ MLServer",
    "÷ in-proc b1",
    "÷ in-proc b32",
]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    numeric = [i for i in range(len(header)) if i >= 2]
    align = ["---:" if i in numeric else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for n, row in enumerate([header, *rows]):
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def evaluate_targets(results: Results) -> list[dict[str, Any]]:
    """The issue's targets, each with met = True/False/None (None: could not be measured)."""
    targets: list[dict[str, Any]] = []
    service = run_of(results, "service", "json1-c64")
    ml = run_of(results, "mlserver", "json1-c64")
    if service and ml:
        ratio = service["requests_s"] / ml["requests_s"]
        targets.append(
            {
                "target": "batch-1 JSON, 64 conn: ≥ 3x MLServer (adaptive batching) req/s",
                "met": ratio >= 3.0,
                "detail": f"{service['requests_s']:,.0f} vs {ml['requests_s']:,.0f} req/s "
                f"= {ratio:.2f}x" + _per_cpu(service, ml),
            }
        )
        targets.append(
            {
                "target": "batch-1 JSON, 64 conn: p99 ≤ MLServer's p99",
                "met": service["p99_ms"] <= ml["p99_ms"],
                "detail": f"{service['p99_ms']:.2f} ms vs {ml['p99_ms']:.2f} ms",
            }
        )
    else:
        reason = results.get("mlserver_unavailable") or "not measured"
        targets.append(
            {"target": "batch-1 JSON, 64 conn vs MLServer", "met": None, "detail": reason}
        )
    if service:
        limit = results["inprocess"]["1"]
        ratio = service["requests_s"] / limit["inferences_s"]
        detail = (
            f"{service['requests_s']:,.0f} vs {limit['inferences_s']:,.0f} inferences/s "
            f"= {ratio:.2f}x"
        )
        if "cpu_us_per_request" in service and "cpu_us_per_inference" in limit:
            detail += (
                f"; per CPU-second (unaffected by sharing the CPU with other processes): "
                f"{limit['cpu_us_per_inference'] / service['cpu_us_per_request']:.2f}x "
                f"({service['cpu_us_per_request']:.0f} µs per request vs "
                f"{limit['cpu_us_per_inference']:.0f} µs per in-process inference)"
            )
        targets.append(
            {
                "target": "(aim) batch-1 JSON, 64 conn: ≥ 1.0x in-process batch-1 limit",
                "met": ratio >= 1.0,
                "detail": detail,
            }
        )
    for c in variant_comparisons(results):
        if c["env"].get("ACCESS_LOG", "").lower() == "false" and c["scenario"] == "json1-c64":
            ratio = c["ratio"]
            targets.append(
                {
                    "target": "batch-1 JSON, 64 conn: access log on (the default) ≥ 0.9x the "
                    "req/s of ACCESS_LOG=false (median of the per-round ratios)",
                    "met": ratio is not None and ratio >= 0.9,
                    "detail": f"{c['defaults']['requests_s']:,.0f} vs "
                    f"{c['run']['requests_s']:,.0f} req/s (kept rows); per round "
                    + ", ".join(f"{r:.2f}x" for r in c["ratios"])
                    + f"; CPU per request {c['defaults'].get('cpu_us_per_request', 0):.0f} vs "
                    f"{c['run'].get('cpu_us_per_request', 0):.0f} µs"
                    + (
                        ""
                        if c["cpu_ratio"] is None
                        else f" (per CPU-second {c['cpu_ratio']:.2f}x, median of the rounds)"
                    ),
                }
            )
    idle = run_of(results, "service", "json1-c1")
    naive_runs = runs_of(results, "naive", "json1-c1")
    naive_idle = min(naive_runs, key=lambda r: r["p50_ms"]) if naive_runs else None
    if idle and naive_idle:
        ratio = idle["p50_ms"] / naive_idle["p50_ms"]
        targets.append(
            {
                "target": "1 connection: p50 ≤ 1.2x the naive server's p50 (its faster variant, "
                f"{naive_idle.get('note') or 'the only one'})",
                "met": ratio <= 1.2,
                "detail": f"{idle['p50_ms']:.3f} ms vs {naive_idle['p50_ms']:.3f} ms "
                f"= {ratio:.2f}x",
            }
        )
    errors = sum(run["errors"] for run in results["runs"] if run["server"] == "service")
    targets.append(
        {
            "target": "zero errors (this service, every scenario)",
            "met": errors == 0,
            "detail": f"{errors} errors (non-2xx + socket errors)",
        }
    )
    targets.append(metrics_path_target(results.get("metrics_cost")))
    diff = results["checks"].get("service")
    targets.append(
        {
            "target": f"outputs equal unbatched ONNX Runtime within {results['tolerance']:g}",
            "met": diff is not None and diff <= results["tolerance"],
            "detail": "not checked"
            if diff is None
            else f"max |diff| {diff:.2g} over every body + 256 concurrent distinct requests",
        }
    )
    return targets


METRICS_PATH_BUDGET_PERCENT = 5.0  # issue 12: the CloudWatch metrics path, at most 5 %


def metrics_path_target(cost: dict[str, Any] | None) -> dict[str, Any]:
    """The CloudWatch metrics path (EMF, on by default) against its budget (bench.metrics_cost):
    the CPU the EMF code adds to a request -- the infer route on vs off around a data plane that
    answers at once, plus the batch hook -- over the CPU a real request costs with EMF off. CPU
    per request is the inverse of the throughput a CPU-bound task reaches; the end-to-end A/B
    (EMF on vs off through ONNX Runtime) is reported beside it, but moves by several percent
    between runs on a shared machine."""
    target = f"metrics path (EMF on vs off): ≤ {METRICS_PATH_BUDGET_PERCENT:g} % of throughput"
    if not cost:
        return {"target": target, "met": None, "detail": "not measured"}
    return {
        "target": target,
        "met": cost["isolated_cost_percent"] <= METRICS_PATH_BUDGET_PERCENT,
        "detail": f"{cost['isolated_cost_percent']:.1f} % of the CPU a request costs "
        f"({cost['isolated_cost_us']:.1f} µs: route {cost['route_overhead_us']:.1f} + batch "
        f"hook {cost['batch_hook_us']:.1f}, at least the hooks' {cost['hooks_us']:.1f}, of "
        f"{cost['emf_off_us']:.1f} µs); end to end, on vs off: {cost['cost_percent']:+.1f} % "
        f"(median of {cost['rounds']} interleaved rounds, within the machine's noise)",
    }


def _per_cpu(service: dict[str, Any], peer: dict[str, Any]) -> str:
    """The same comparison per CPU-second, which other work on the machine hardly moves."""
    if "cpu_us_per_request" not in service or "cpu_us_per_request" not in peer:
        return ""
    return (
        f"; per CPU-second {peer['cpu_us_per_request'] / service['cpu_us_per_request']:.2f}x "
        f"({service['cpu_us_per_request']:.0f} vs {peer['cpu_us_per_request']:.0f} µs per request)"
    )


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "not measured"}[met]


def targets_markdown(targets: list[dict[str, Any]]) -> str:
    return "\n".join(f"- **{_verdict(t['met'])}**: {t['target']} — {t['detail']}" for t in targets)


def service_batches_markdown(results: Results) -> str:
    lines = []
    for run in results["runs"]:
        stats = run.get("batching")
        if run["server"] != "service" or not stats:
            continue
        which = run["scenario"] + (f" ({run['note']})" if run.get("note") else "")
        lines.append(
            f"- {which}: {stats['batches_s']:,.0f} model runs/s, "
            f"{stats['rows_avg']:.1f} rows per run on average, "
            f"queue wait {stats['queue_ms_avg']:.2f} ms, run {stats['exec_ms_avg']:.2f} ms (means)"
        )
    return "\n".join(lines)


def readme_section(results: Results, chart: str | None) -> str:
    machine, versions, settings = results["machine"], results["versions"], results["settings"]
    limit = results["inprocess"]
    parts = [
        START,
        f"### Latest results — {results['date']}",
        "",
        f"Machine: {machine['cpu_model']}, nproc {machine['nproc']}, "
        f"{machine['memory_gib']:.0f} GiB, Linux {machine['kernel']}. "
        f"Load average before / after: {machine['load_before']} / {machine['load_after']} "
        "(other work on the machine makes numbers noisier).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        f"Servers pinned to CPU {settings['server_cpu']}, wrk (1 thread) to CPU "
        f"{settings['client_cpu']}; warm-up {settings['warmup_s']:g} s, measured "
        f"{settings['duration_s']:g} s per row. Model: MLP {settings['model']} FP32.",
        "",
        "This service runs with the defaults a user deploys (only `MODEL_DIR` is set: access "
        "log on, `LOG_LEVEL` INFO, Prometheus metrics on, `ORT_INTRA_OP_THREADS` 0, dynamic "
        "batching as shipped); rows marked with a setting are the same service with that one "
        "change, measured in the same rounds.",
        "",
        f"In-process ONNX Runtime limit (1 intra-op thread, CPU {settings['server_cpu']}, best of "
        f"a measurement before and after the servers): batch 1: "
        f"{limit['1']['inferences_s']:,.0f} inferences/s "
        f"({limit['1'].get('cpu_us_per_inference', float('nan')):.0f} µs CPU each); batch 32: "
        f"{limit['32']['inferences_s']:,.0f} inferences/s = {limit['32']['samples_s']:,.0f} "
        "samples/s.",
        "",
        markdown_table(HEADER, table_rows(results)),
        "",
        "Ratios divide this row's req/s by the peer's in the same scenario (binary rows: by the "
        "peer's batch-1 JSON row), and samples/s by the in-process limit. *CPU µs/req* is the "
        "CPU time the server process used per request during the window (what a request costs, "
        "whatever else runs). *CPU: server / others* splits the busy time of the server's CPU "
        "during the window between the server and everything else (other processes, "
        "interrupts): a high *others* share means the row was measured on a busy machine; below "
        "100% in total the server was waiting for requests (1 connection).",
        "",
    ]
    if chart:
        parts += [f"![benchmark chart]({chart})", ""]
    spread = spread_markdown(results)
    if spread:
        parts += [spread, ""]
    sweep = results.get("mlserver_sweep") or []
    if sweep:
        best = results["settings"].get("mlserver_max_batch_time_s")
        parts.append(
            "MLServer `max_batch_time` sweep (batch-1 JSON, 64 conn; the best req/s is used "
            f"above: {best} s): "
            + ", ".join(
                f"{s['max_batch_time_s']} s → {s['requests_s']:,.0f} req/s, p99 "
                f"{s['p99_ms']:.1f} ms"
                for s in sweep
            )
            + "."
        )
        parts.append("")
    if results.get("mlserver_unavailable"):
        parts += [f"MLServer not measured: {results['mlserver_unavailable']}", ""]
    binary, json_ = (
        run_of(results, "service", "binary1-c64"),
        run_of(results, "service", "json1-c64"),
    )
    if binary and json_:
        parts += [
            f"This service, binary tensors vs JSON (batch 1, {settings['connections']} conn): "
            f"{binary['requests_s'] / json_['requests_s']:.2f}x the req/s; CPU per request "
            f"{binary.get('cpu_us_per_request', float('nan')):.0f} µs vs "
            f"{json_.get('cpu_us_per_request', float('nan')):.0f} µs.",
            "",
        ]
    comparisons = comparisons_markdown(results)
    if comparisons:
        parts += [
            "This service with its defaults against one setting changed (A/B, same run: each "
            "round measures the two back to back; the ratio is taken per round and its median "
            "kept). *Per CPU-second* divides the variant's CPU per request by the defaults': "
            "the same ratio as req/s on an idle machine, and much less moved by other work "
            "sharing the CPU:",
            "",
            comparisons,
            "",
        ]
        if chart:
            parts += ["![A/B chart](results-ab.png)", ""]
    batches = service_batches_markdown(results)
    if batches:
        title = "This service's batching during the measured windows (from `/metrics`):"
        parts += [title, "", batches, ""]
    parts += ["Targets:", "", targets_markdown(results["targets"]), "", END]
    return "\n".join(parts)


def spread_markdown(results: Results) -> str:
    """How much the headline moved between rounds (kept rows are the medians)."""
    rounds = results["settings"].get("repeat", 1)
    headline = results["scenarios"][0]
    if rounds < 2:
        return ""
    cells = []
    for run in runs_of(results, "service", headline["key"]) + [
        r for peer in PEERS for r in runs_of(results, peer, headline["key"])
    ]:
        same = [
            r["requests_s"]
            for r in results.get("raw_runs", [])
            if r["server"] == run["server"]
            and r["note"] == run["note"]
            and r["scenario"] == run["scenario"]
        ]
        if same:
            cells.append(f"{title(run)} {min(same):,.0f} to {max(same):,.0f}")
    return (
        f"Spread over the {rounds} rounds ({headline['title']}, req/s): " + "; ".join(cells) + ". "
        "Servers measured back to back move together, so compare ratios within a round."
    )


def write_readme(path: Path, section: str) -> None:
    """Replace the results section of the README (append it when the markers are missing)."""
    text = path.read_text() if path.is_file() else "# Benchmark\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def write_chart(results: Results, path: Path) -> str | None:
    """Throughput and latency bars; returns None (and says why) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (no chart: matplotlib is not installed; `.venv/bin/pip install matplotlib`)")
        return None
    series: list[tuple[str, str]] = []  # (server, note) in table order
    for run in results["runs"]:
        if (run["server"], run.get("note", "")) not in series:
            series.append((run["server"], run.get("note", "")))
    series.sort(key=lambda sn: ("service", *PEERS).index(sn[0]))
    palette = ["#1f77b4", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#9467bd"]
    colors = {sn: palette[i % len(palette)] for i, sn in enumerate(series)}

    def find(sn: tuple[str, str], key: str) -> dict[str, Any] | None:
        runs = [r for r in runs_of(results, sn[0], key) if r.get("note", "") == sn[1]]
        return runs[0] if runs else None

    loaded = [s for s in results["scenarios"] if s["connections"] > 1]
    idle = [s for s in results["scenarios"] if s["connections"] == 1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / len(series)
    for i, sn in enumerate(series):
        xs, ys = [], []
        for n, scenario in enumerate(loaded):
            run = find(sn, scenario["key"])
            if run:
                xs.append(n + (i - (len(series) - 1) / 2) * width)
                ys.append(run["samples_s"])
        label = title({"server": sn[0], "note": sn[1]})
        bars = left.bar(xs, ys, width, label=label, color=colors[sn])
        left.bar_label(bars, labels=[f"{y:,.0f}" for y in ys], fontsize=6)
    limit = results["inprocess"]
    left.axhline(limit["1"]["samples_s"], color="grey", ls="--", lw=1, label="in-process batch 1")
    left.axhline(limit["32"]["samples_s"], color="black", ls=":", lw=1, label="in-process batch 32")
    left.set_xticks(range(len(loaded)), [s["title"] for s in loaded], fontsize=8)
    left.set_ylabel("samples/s (rows inferred per second)")
    left.set_title("Throughput, one CPU per server")
    left.legend(fontsize=7)
    labels, p50s, p99s, cols = [], [], [], []
    for scenario in [*loaded[:1], *idle]:
        for sn in series:
            run = find(sn, scenario["key"])
            if run:
                labels.append(f"{title(run)}\n{scenario['title']}")
                p50s.append(run["p50_ms"])
                p99s.append(run["p99_ms"])
                cols.append(colors[sn])
    ys = range(len(labels))
    right.barh([y + 0.2 for y in ys], p99s, 0.4, color=cols, alpha=0.45, label="p99")
    right.barh([y - 0.2 for y in ys], p50s, 0.4, color=cols, label="p50")
    right.set_yticks(list(ys), labels, fontsize=7)
    right.set_xscale("log")
    right.set_xlabel("latency, ms (log scale)")
    right.set_title("Latency (dark p50, light p99)")
    right.invert_yaxis()
    fig.suptitle(f"MLP {results['settings']['model']} FP32 — {results['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    write_ab_chart(results, path.with_name(AB_CHART), plt)
    return path.name


AB_CHART = "results-ab.png"


def write_ab_chart(results: Results, path: Path, plt: Any) -> bool:
    """The A/B comparisons: req/s of the defaults and of each variant, and the per-round ratios
    defaults ÷ variant (the 0.9 line is the access-log target)."""
    comparisons = variant_comparisons(results)
    if not comparisons:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [f"{c['title']}\n{c['variant']}" for c in comparisons]
    xs = range(len(comparisons))
    base = [c["defaults"]["requests_s"] for c in comparisons]
    other = [c["run"]["requests_s"] for c in comparisons]
    bars = left.bar([x - 0.2 for x in xs], base, 0.4, label="defaults", color="#1f77b4")
    left.bar_label(bars, labels=[f"{y:,.0f}" for y in base], fontsize=7)
    bars = left.bar([x + 0.2 for x in xs], other, 0.4, label="variant", color="#aec7e8")
    left.bar_label(bars, labels=[f"{y:,.0f}" for y in other], fontsize=7)
    left.set_xticks(list(xs), labels, fontsize=8)
    left.set_ylabel("req/s (kept round)")
    left.set_title("This service: defaults vs one setting changed")
    left.legend(fontsize=7)
    for x, c in zip(xs, comparisons, strict=True):
        right.scatter([x] * len(c["ratios"]), c["ratios"], color="grey", s=14, zorder=3)
        if c["ratio"] is not None:
            right.bar(x, c["ratio"], 0.5, color="#1f77b4", alpha=0.6)
            right.annotate(f"{c['ratio']:.2f}x", (x, c["ratio"]), ha="center", va="bottom")
    right.axhline(1.0, color="black", lw=0.8)
    right.axhline(0.9, color="red", ls="--", lw=1, label="0.9x (access-log target)")
    right.set_xticks(list(xs), labels, fontsize=8)
    right.set_ylabel("defaults ÷ variant, req/s")
    right.set_title("Per round (dots) and median (bar)")
    right.legend(fontsize=7)
    fig.suptitle(f"A/B in one run — {results['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def print_report(results: Results) -> None:
    print()
    print(text_table(HEADER, table_rows(results)))
    print()
    for target in results["targets"]:
        print(f"  [{_verdict(target['met'])}] {target['target']}: {target['detail']}")


def main(argv: list[str] | None = None) -> None:
    """Re-evaluate the targets and re-render README section and chart from a results.json."""
    path = Path((argv or sys.argv[1:] or ["bench/results.json"])[0])
    results = json.loads(path.read_text())
    results["targets"] = evaluate_targets(results)
    path.write_text(json.dumps(results, indent=2) + "\n")
    chart = write_chart(results, path.parent / "results.png")
    write_readme(path.parent / "README.md", readme_section(results, chart))
    print_report(results)


if __name__ == "__main__":
    main()
