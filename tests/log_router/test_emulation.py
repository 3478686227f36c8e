"""The emulation in fluentbit.py behaves as Fluent Bit does on the points the routing relies on.

Small configs written here pin down the semantics (taken from the Fluent Bit sources) that make
custom.conf correct, so a wrong emulation cannot hide a wrong config.
"""

from __future__ import annotations

import calendar
from pathlib import Path

import pytest
from lupa.luajit21 import LuaRuntime

from tests.log_router.fluentbit import ConfigError, Pipeline, parse_classic, parse_time

ROUTER_DIR = Path(__file__).resolve().parents[2] / "log_router"
PARSERS = """\
[PARSER]
    Name        app_json
    Format      json
    Time_Key    time
    Time_Format %Y-%m-%dT%H:%M:%S.%L%z
    Time_Keep   On
"""


def pipeline(tmp_path: Path, conf: str) -> Pipeline:
    (tmp_path / "custom.conf").write_text(conf)
    (tmp_path / "parsers.conf").write_text(PARSERS)
    files = {"/p.conf": tmp_path / "parsers.conf"}
    return Pipeline(tmp_path / "custom.conf", files, env={})


def outputs_of(p: Pipeline) -> list[tuple[str, str]]:
    return [(d.output, d.event.tag) for d in p.delivered]


def test_rewrite_tag_on_a_numeric_status_never_matches(tmp_path: Path) -> None:
    """Why status_class.lua exists: regexes see string values only."""
    p = pipeline(
        tmp_path,
        "[FILTER]\n    Name rewrite_tag\n    Match app\n    Rule $status ^5\\d\\d$ err true\n"
        "[OUTPUT]\n    Name null\n    Match *\n",
    )
    p.emit("app", {"status": 503}, at=0)
    assert outputs_of(p) == [("null", "app")]
    p.delivered.clear()
    p.emit("app", {"status": "503"}, at=0)
    assert sorted(outputs_of(p)) == [("null", "app"), ("null", "err")]


def test_grep_exclude_keeps_records_without_the_key_or_with_a_number(tmp_path: Path) -> None:
    p = pipeline(
        tmp_path,
        "[FILTER]\n    Name grep\n    Match *\n    Exclude path ^/health$\n"
        "[OUTPUT]\n    Name null\n    Match *\n",
    )
    for record in ({"message": "no path"}, {"path": 7}, {"path": "/health"}, {"path": "/v2"}):
        p.emit("app", record, at=0)
    kept = [d.event.record for d in p.delivered]
    assert kept == [{"message": "no path"}, {"path": 7}, {"path": "/v2"}]


def test_grep_regex_rules_keep_only_matches(tmp_path: Path) -> None:
    p = pipeline(
        tmp_path,
        "[FILTER]\n    Name grep\n    Match *\n    Regex level ^ERROR$\n"
        "[OUTPUT]\n    Name null\n    Match *\n",
    )
    p.emit("app", {"level": "INFO"}, at=0)
    p.emit("app", {"message": "no level"}, at=0)
    p.emit("app", {"level": "ERROR"}, at=0)
    assert [d.event.record for d in p.delivered] == [{"level": "ERROR"}]


PARSE = (
    "[SERVICE]\n    Parsers_File /p.conf\n"
    "[FILTER]\n    Name parser\n    Match *\n    Key_Name log\n    Parser app_json\n"
    "    Reserve_Data On\n[OUTPUT]\n    Name null\n    Match *\n"
)


def test_parser_failure_keeps_the_record_unchanged(tmp_path: Path) -> None:
    p = pipeline(tmp_path, PARSE)
    for line in ("plain text", '["a", "list"]', '{"a": 1} {"b": 2}', '{"cut": '):
        p.emit("app", {"log": line, "source": "stderr"}, at=5.0)
    assert [d.event.record for d in p.delivered] == [
        {"log": line, "source": "stderr"}
        for line in ("plain text", '["a", "list"]', '{"a": 1} {"b": 2}', '{"cut": ')
    ]
    assert all(d.event.time == 5.0 for d in p.delivered)


def test_parser_keeps_other_keys_and_parsed_keys_win(tmp_path: Path) -> None:
    p = pipeline(tmp_path, PARSE)
    p.emit("app", {"log": '{"source": "app", "level": "INFO"}', "source": "stdout"}, at=0)
    assert p.delivered[0].event.record == {"source": "app", "level": "INFO"}


def test_a_time_without_fraction_keeps_the_ingestion_time_but_parses(tmp_path: Path) -> None:
    """datetime.isoformat() drops '.000000': %L then fails (Time_Strict), the record stays."""
    p = pipeline(tmp_path, PARSE)
    p.emit("app", {"log": '{"time": "2026-11-25T19:34:33+00:00", "level": "ERROR"}'}, at=7.0)
    (d,) = p.delivered
    assert d.event.time == 7.0
    assert d.event.record["level"] == "ERROR"


def test_parse_time_reads_fraction_and_offset() -> None:
    fmt = "%Y-%m-%dT%H:%M:%S.%L%z"
    base = calendar.timegm((2026, 11, 25, 19, 34, 33))
    assert parse_time("2026-11-25T19:34:33.977888+00:00", fmt) == pytest.approx(base + 0.977888)
    assert parse_time("2026-11-25T21:34:33.5+02:00", fmt) == pytest.approx(base + 0.5)
    assert parse_time("2026-11-25T19:34:33.5Z", fmt) == pytest.approx(base + 0.5)
    assert parse_time("25/Nov/2026:19:34:33 +0000", fmt) is None


def test_a_glob_matching_its_own_rewritten_tag_loops(tmp_path: Path) -> None:
    """Why custom.conf selects app tags with Match_Regex: error.<tag> would match the glob."""
    p = pipeline(
        tmp_path,
        "[FILTER]\n    Name rewrite_tag\n    Match *-firelens-*\n"
        "    Rule $level ^ERROR$ error.$TAG true\n[OUTPUT]\n    Name null\n    Match *\n",
    )
    with pytest.raises(ConfigError, match="loop"):
        p.emit("app-firelens-1", {"level": "ERROR"}, at=0)


def test_classic_format_rejections() -> None:
    with pytest.raises(ConfigError, match="tab"):
        parse_classic("[FILTER]\n\tName grep\n")
    with pytest.raises(ConfigError, match="SECTION"):
        parse_classic("pipeline:\n  inputs:\n")  # YAML cannot be @INCLUDEd by FireLens
    with pytest.raises(ConfigError, match="indentation"):
        parse_classic("[FILTER]\n    Name grep\n  Match *\n")
    with pytest.raises(ConfigError, match="not set"):
        parse_classic("[OUTPUT]\n    bucket ${NOPE}\n", env={})


@pytest.fixture(scope="module")
def status_class() -> object:
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.execute((ROUTER_DIR / "status_class.lua").read_text())
    return lua.globals().add_status_class, lua


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [(503, 2, "5xx"), (200, 2, "2xx"), ("502", 2, "5xx"), (499, 2, "4xx"), (None, 0, None),
     (True, 0, None), ("n/a", 0, None), (99, 0, None), (600, 0, None)],
)  # fmt: skip
def test_status_class_script(
    status_class: tuple, status: object, code: int, expected: object
) -> None:
    fn, lua = status_class
    record = lua.table_from({} if status is None else {"status": status})
    got_code, _, out = fn("app-firelens-1", 1.5, record)
    assert got_code == code
    assert out["status_class"] == expected


def test_unknown_output_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="log_group_nmae"):
        pipeline(
            tmp_path,
            "[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    log_group_nmae errors\n",
        )
