"""bench/: the A/B comparison of this service's defaults with a variant (per-round ratios, the
access-log target) and the merging of alternating wrk slices. Pure functions on made-up
numbers; the measurements themselves are `make bench`'s."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from bench import report
from bench.run import SERVICE_VARIANTS, parse_variant
from bench.wrk import WrkResult, combine


def row(note: str, round_: int, req_s: float, cpu_us: float, scenario: str = "json1-c64") -> dict:
    return {
        "server": "service", "note": note, "scenario": scenario, "round": round_,
        "requests_s": req_s, "cpu_us_per_request": cpu_us, "p50_ms": 1.0, "p99_ms": 2.0,
        "errors": 0, "samples_s": req_s, "max_batch_time_s": None,
    }  # fmt: skip


def results(pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """Rounds of (defaults req/s, ACCESS_LOG=false req/s); the kept rows are round 0's."""
    raw = []
    for n, (on, off) in enumerate(pairs):
        raw += [row("", n, on, 1e6 / on), row("ACCESS_LOG=false", n, off, 1e6 / off)]
    return {
        "scenarios": [{"key": "json1-c64", "title": "batch-1 JSON, 64 conn"}],
        "runs": raw[:2],
        "inprocess": {"1": {"inferences_s": 2000.0, "samples_s": 2000.0}},
        "checks": {"service": 0.0},
        "tolerance": 1e-5,
        "raw_runs": raw,
        "service_variants": [
            {"note": "ACCESS_LOG=false", "env": {"ACCESS_LOG": "false"}, "scenarios": ["json1-c64"]}
        ],
    }


def access_target(res: dict[str, Any]) -> dict[str, Any]:
    (target,) = [t for t in report.evaluate_targets(res) if "access log" in t["target"]]
    return target


def test_the_ratio_is_the_median_of_the_per_round_ratios() -> None:
    res = results([(900, 1000), (950, 1000), (500, 1000)])  # one round hit by other work
    (comparison,) = report.variant_comparisons(res)
    assert comparison["ratios"] == pytest.approx([0.9, 0.95, 0.5])
    assert comparison["ratio"] == pytest.approx(0.9)
    assert access_target(res)["met"] is True


def test_the_access_log_target_fails_below_0_9() -> None:
    res = results([(800, 1000), (850, 1000), (990, 1000)])
    assert access_target(res)["met"] is False
    assert "0.80x, 0.85x, 0.99x" in access_target(res)["detail"]


def test_a_comparison_row_and_chart_caption_in_the_readme_section() -> None:
    table = report.comparisons_markdown(results([(950, 1000)]))
    assert "`ACCESS_LOG=false`" in table and "0.95x" in table


def test_this_services_headline_row_is_its_defaults_not_its_fastest_variant() -> None:
    res = results([(900, 1000)])
    assert report.run_of(res, "service", "json1-c64")["note"] == ""


def test_the_access_log_variant_is_built_in_and_others_are_one_flag_away() -> None:
    assert any(v.env == {"ACCESS_LOG": "false"} for v in SERVICE_VARIANTS)
    variant = parse_variant("metrics=false, log_level=warning")
    assert variant.env == {"METRICS": "false", "LOG_LEVEL": "warning"}
    assert variant.scenarios == ("json1-c64",)
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        parse_variant("ACCESS_LOG")


def test_alternating_slices_merge_into_one_window() -> None:
    a = WrkResult(1000, 2.0, 500.0, 1.0, 2.0, 9.0, 0, 0)
    b = WrkResult(3000, 2.0, 1500.0, 3.0, 4.0, 5.0, 1, 2)
    c = WrkResult(2000, 2.0, 1000.0, 2.0, 3.0, 7.0, 0, 0)
    merged = combine([a, b, c])
    assert merged.requests == 6000 and merged.seconds == 6.0
    assert merged.requests_s == pytest.approx(1000.0)
    assert merged.p50_ms == 2.0 and merged.p99_ms == 9.0 and merged.errors == 3
