"""A small, faithful emulation of the Fluent Bit features log_router/ uses, for tests.

No Fluent Bit binary can be installed here (not in Debian bookworm, not on PyPI), so the routing
config is checked by running it through this emulation instead. What it reproduces, from the
Fluent Bit sources (1.9 and later, the versions aws-for-fluent-bit ships):

- the classic config format: ``[SECTION]`` headers, indented ``key value`` properties, ``#``
  comments, ``${VAR}`` environment substitution (an unset variable is an error here);
- tag routing: ``Match`` globs where ``*`` is the only wildcard, ``Match_Regex`` searched with
  Ruby (Onigmo) semantics, where ``^``/``$`` also match at line breaks;
- ``parser`` filter with a ``json`` parser: the ``Key_Name`` value must decode to ONE JSON
  object, else the record passes through unchanged; ``Reserve_Data`` keeps the other keys
  (parsed keys win on a clash, as a record-accessor lookup finds the first); ``Preserve_Key``;
  ``Time_Key``/``Time_Format`` (``%L`` fraction, ``%z`` offset; with Time_Strict, a time that
  does not fit keeps the ingestion time and the record) and ``Time_Keep``;
- ``grep`` legacy rule evaluation (in order: a Regex miss drops, an Exclude hit drops, a Regex
  hit keeps) on STRING values only: a missing key or a number never matches;
- ``lua``: the real script runs in LuaJIT 2.1 (``lupa``), with Fluent Bit's return codes
  (-1 drop, 0 untouched, 1 record and time, 2 record only); nil values vanish and integral
  numbers come back as integers, as when Fluent Bit re-encodes a Lua table;
- ``rewrite_tag``: first matching rule wins (string values only), the copy is re-emitted with
  the new tag (``$TAG``, ``$TAG[n]``, ``$key``, ``$0``-``$9``) into the start of the pipeline,
  the original is kept when the rule says so;
- outputs: each record goes to every output whose match fits its tag; ``s3_key_format`` is
  rendered with ``$TAG``, ``$TAG[n]``, ``$UUID`` and strftime of the record time (UTC); option
  names are checked against those the plugin documents (a misspelt one stops Fluent Bit).

What it does NOT do: network I/O (cloudwatch_logs and s3 only record what they would send),
buffering, retries, chunking, FireLens's generated config (tests build records as FireLens
delivers them, with the ECS metadata keys already added).
"""

from __future__ import annotations

import calendar
import copy
import fnmatch
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Record = dict[str, Any]


class ConfigError(ValueError):
    """The config would not load in Fluent Bit (or uses something this emulation lacks)."""


# -- classic format ---------------------------------------------------------------------------
@dataclass
class Section:
    """One ``[NAME]`` section with its properties in file order (keys may repeat)."""

    name: str
    props: list[tuple[str, str]] = field(default_factory=list)

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.props if k.lower() == key.lower()]

    def get(self, key: str, default: str | None = None) -> str | None:
        values = self.all(key)
        if len(values) > 1:
            raise ConfigError(f"[{self.name}] sets {key!r} {len(values)} times")
        return values[0] if values else default

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if value.lower() in ("on", "true", "yes", "1"):
            return True
        if value.lower() in ("off", "false", "no", "0"):
            return False
        raise ConfigError(f"[{self.name}] {key}: not a boolean: {value!r}")


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def env_references(text: str) -> set[str]:
    """Names of the ``${VAR}`` references in a config text (comments skipped)."""
    names: set[str] = set()
    for line in text.splitlines():
        if not line.strip().startswith("#"):
            names.update(_ENV_REF.findall(line))
    return names


def parse_classic(text: str, env: Mapping[str, str] | None = None) -> list[Section]:
    """Parse the classic format. ``@INCLUDE``/``@SET`` are rejected: our files use neither."""

    def expand(value: str, lineno: int) -> str:
        if env is None:
            return value

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in env:
                raise ConfigError(f"line {lineno}: ${{{m.group(1)}}} is not set")
            return env[m.group(1)]

        return _ENV_REF.sub(sub, value)

    sections: list[Section] = []
    indent: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if "\t" in raw:
            raise ConfigError(f"line {lineno}: tab character (indent with spaces)")
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("@"):
            raise ConfigError(f"line {lineno}: {stripped.split()[0]} is not supported here")
        if not line[0].isspace():
            m = re.fullmatch(r"\[([A-Za-z_]+)\]", stripped)
            if not m:
                raise ConfigError(f"line {lineno}: expected a [SECTION] header: {stripped!r}")
            sections.append(Section(m.group(1).upper()))
            continue
        if not sections:
            raise ConfigError(f"line {lineno}: property outside a section")
        this_indent = line[: len(line) - len(line.lstrip())]
        indent = indent or this_indent
        if this_indent != indent:
            raise ConfigError(f"line {lineno}: inconsistent indentation")
        parts = stripped.split(None, 1)
        if len(parts) != 2:
            raise ConfigError(f"line {lineno}: property without a value: {stripped!r}")
        sections[-1].props.append((parts[0], expand(parts[1].strip(), lineno)))
    return sections


# -- regexes, matching, record accessor ----------------------------------------------------------
def onig(pattern: str) -> re.Pattern[str]:
    """Compile a Fluent Bit (Onigmo, Ruby syntax) regex; only a portable subset is accepted."""
    if "(?" in pattern or "\\h" in pattern or "\\A" in pattern or "\\z" in pattern:
        raise ConfigError(f"regex uses syntax this emulation does not translate: {pattern!r}")
    return re.compile(pattern, re.MULTILINE)


def tag_matches(section: Section, tag: str) -> bool:
    """Fluent Bit routing: ``Match`` glob (``*`` only) or ``Match_Regex`` search."""
    glob, regex = section.get("Match"), section.get("Match_Regex")
    if (glob is None) == (regex is None):
        raise ConfigError(f"[{section.name}] needs exactly one of Match / Match_Regex")
    if regex is not None:
        return onig(regex).search(tag) is not None
    assert glob is not None
    if any(c in glob for c in "?[]"):
        raise ConfigError(f"Match {glob!r}: only * is a wildcard in Fluent Bit")
    return fnmatch.fnmatchcase(tag, glob)


def _accessor_key(accessor: str) -> str:
    if not re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", accessor):
        raise ConfigError(f"record accessor {accessor!r}: only top-level $key is emulated")
    return accessor[1:]


def regex_match(record: Record, accessor: str, regex: re.Pattern[str]) -> re.Match[str] | None:
    """``flb_ra_regex_match``: a missing key or a non-string value never matches."""
    value = record.get(_accessor_key(accessor))
    if not isinstance(value, str):
        return None
    return regex.search(value)


# -- parsers -------------------------------------------------------------------------------------
_TIME_PARTS = {
    "Y": r"(?P<Y>\d{1,4})",
    "m": r"(?P<m>\d{1,2})",
    "d": r"(?P<d>\d{1,2})",
    "H": r"(?P<H>\d{1,2})",
    "M": r"(?P<M>\d{1,2})",
    "S": r"(?P<S>\d{1,2})",
    "L": r"(?P<L>\d{1,9})",
    "z": r"(?P<z>Z|UTC?|GMT|[+-]\d\d(?::?\d\d)?)",
}


def _time_regex(fmt: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%":
            spec = fmt[i + 1 : i + 2]
            if spec == "%":
                out.append("%")
            elif spec in _TIME_PARTS:
                out.append(_TIME_PARTS[spec])
            else:
                raise ConfigError(f"Time_Format %{spec} is not emulated")
            i += 2
        else:
            out.append(r"\s*" if c.isspace() else re.escape(c))
            i += 1
    # flb_strptime stops where the format ends: trailing characters are ignored.
    return re.compile("".join(out))


def parse_time(value: str, fmt: str) -> float | None:
    """Seconds since the epoch, or None where Fluent Bit (Time_Strict on) rejects the time."""
    m = _time_regex(fmt).match(value)
    if not m:
        return None
    g = m.groupdict()
    offset = 0
    tz = g.get("z")
    if tz and tz[0] in "+-":
        digits = tz[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) > 2 else 0)
        offset = -offset if tz[0] == "-" else offset
    try:
        base = calendar.timegm(
            (int(g["Y"]), int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]), int(g["S"]))
        )
    except (KeyError, ValueError, TypeError):
        return None
    frac = float("0." + g["L"]) if g.get("L") else 0.0
    return base - offset + frac


@dataclass
class JsonParser:
    """A ``[PARSER]`` of ``Format json``."""

    name: str
    time_key: str | None
    time_format: str | None
    time_keep: bool

    @classmethod
    def from_section(cls, s: Section) -> JsonParser:
        if (s.get("Format") or "").lower() != "json":
            raise ConfigError(f"parser {s.get('Name')}: only Format json is emulated")
        for key, _ in s.props:
            if key.lower() not in ("name", "format", "time_key", "time_format", "time_keep"):
                raise ConfigError(f"parser {s.get('Name')}: {key} is not emulated")
        return cls(
            name=s.get("Name") or "",
            time_key=s.get("Time_Key"),
            time_format=s.get("Time_Format"),
            time_keep=s.flag("Time_Keep"),
        )

    def parse(self, text: str) -> tuple[Record, float | None] | None:
        """(record, time or None) or None when the text is not one JSON object."""
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        if not self.time_format:
            return value, None
        raw = value.get(self.time_key or "time")
        ts = parse_time(raw, self.time_format) if isinstance(raw, str) else None
        if ts is not None and not self.time_keep:
            value.pop(self.time_key or "time")
        return value, ts


# -- the pipeline --------------------------------------------------------------------------------
@dataclass
class Event:
    tag: str
    time: float
    record: Record


@dataclass
class Delivery:
    """What one output would have sent."""

    output: str
    event: Event
    s3_key: str | None = None


FilterFn = Callable[[Event], list[Event]]


class Pipeline:
    """Loads a custom.conf (as FireLens would include it) and routes events through it.

    ``files`` maps container paths (as the config names them) to files on this machine, the way
    the Dockerfile lays them out.
    """

    def __init__(self, config: Path, files: Mapping[str, Path], env: Mapping[str, str]) -> None:
        self.files = dict(files)
        self.sections = parse_classic(config.read_text(), env)
        self.parsers: dict[str, JsonParser] = {}
        self.filters: list[tuple[Section, FilterFn]] = []
        self.outputs: list[Section] = []
        self.delivered: list[Delivery] = []
        self.uuid = "00000000-uuid"
        self._depth = 0
        for s in self.sections:
            if s.name == "SERVICE":
                for path in s.all("Parsers_File"):
                    self._load_parsers(self._local(path))
            elif s.name == "FILTER":
                self.filters.append((s, self._make_filter(s)))
            elif s.name == "OUTPUT":
                _check_output_options(s)
                self.outputs.append(s)
            else:
                raise ConfigError(f"[{s.name}] does not belong in a FireLens custom config")

    # -- loading
    def _local(self, container_path: str) -> Path:
        if container_path not in self.files:
            raise ConfigError(f"{container_path} is not in the image (see the Dockerfile)")
        return self.files[container_path]

    def _load_parsers(self, path: Path) -> None:
        for s in parse_classic(path.read_text()):
            if s.name != "PARSER":
                raise ConfigError(f"{path}: unexpected [{s.name}]")
            parser = JsonParser.from_section(s)
            self.parsers[parser.name] = parser

    def _make_filter(self, s: Section) -> FilterFn:
        kind = (s.get("Name") or "").lower()
        make = {
            "parser": self._parser_filter,
            "grep": self._grep_filter,
            "lua": self._lua_filter,
            "rewrite_tag": self._rewrite_tag_filter,
        }.get(kind)
        if make is None:
            raise ConfigError(f"filter {kind!r} is not emulated")
        return make(s)

    def _parser_filter(self, s: Section) -> FilterFn:
        key = s.get("Key_Name")
        names = s.all("Parser")
        if not key or not names:
            raise ConfigError("parser filter needs Key_Name and Parser")
        missing = [n for n in names if n not in self.parsers]
        if missing:
            raise ConfigError(f"parser filter: unknown parser(s) {missing}")
        parsers = [self.parsers[n] for n in names]
        reserve, preserve = s.flag("Reserve_Data"), s.flag("Preserve_Key")

        def run(ev: Event) -> list[Event]:
            value = ev.record.get(key)
            if not isinstance(value, str):
                return [ev]
            for parser in parsers:
                parsed = parser.parse(value)
                if parsed is None:
                    continue
                out, ts = parsed
                if reserve:
                    for k, v in ev.record.items():
                        if (k != key or preserve) and k not in out:
                            out[k] = v
                return [Event(ev.tag, ts if ts is not None else ev.time, out)]
            return [ev]

        return run

    def _grep_filter(self, s: Section) -> FilterFn:
        rules: list[tuple[str, str, re.Pattern[str]]] = []
        for k, v in s.props:
            if k.lower() in ("name", "match", "match_regex"):
                continue
            if k.lower() not in ("regex", "exclude"):
                raise ConfigError(f"grep: {k} is not emulated")
            accessor, _, pattern = v.partition(" ")
            if not accessor.startswith("$"):
                accessor = "$" + accessor
            rules.append((k.lower(), accessor, onig(pattern.strip())))

        def run(ev: Event) -> list[Event]:
            for kind, accessor, regex in rules:
                hit = regex_match(ev.record, accessor, regex) is not None
                if not hit and kind == "regex":
                    return []
                if hit:
                    return [] if kind == "exclude" else [ev]
            return [ev]

        return run

    def _lua_filter(self, s: Section) -> FilterFn:
        from lupa.luajit21 import LuaRuntime  # Fluent Bit embeds LuaJIT 2.1

        for k, _ in s.props:
            if k.lower() not in ("name", "match", "match_regex", "script", "call"):
                raise ConfigError(f"lua: {k} is not emulated")
        script, call = s.get("script"), s.get("call")
        if not script or not call:
            raise ConfigError("lua filter needs script and call")
        lua = LuaRuntime(unpack_returned_tuples=True)
        lua.execute(self._local(script).read_text())
        fn = lua.globals()[call]
        if fn is None:
            raise ConfigError(f"lua: {call} is not defined in {script}")

        def to_lua(value: Any) -> Any:
            if isinstance(value, dict):
                return lua.table_from({k: to_lua(v) for k, v in value.items() if v is not None})
            if isinstance(value, list):
                return lua.table_from([to_lua(v) for v in value])
            return value

        def from_lua(value: Any) -> Any:
            if lua.eval("type")(value) == "table":
                items = dict(value.items())
                if items and all(isinstance(k, int) for k in items):
                    return [from_lua(items[i]) for i in sorted(items)]
                return {str(k): from_lua(v) for k, v in items.items()}
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return value

        def run(ev: Event) -> list[Event]:
            code, ts, rec = fn(ev.tag, ev.time, to_lua(ev.record))
            if code == -1:
                return []
            if code == 0:
                return [ev]
            if code not in (1, 2):
                raise ConfigError(f"lua: unexpected return code {code}")
            out = from_lua(rec)
            if isinstance(out, list):
                raise ConfigError("lua: returning several records is not emulated")
            return [Event(ev.tag, float(ts) if code == 1 else ev.time, out)]

        return run

    def _rewrite_tag_filter(self, s: Section) -> FilterFn:
        rules: list[tuple[str, re.Pattern[str], str, bool]] = []
        for k, v in s.props:
            if k.lower() in ("name", "match", "match_regex", "emitter_name"):
                continue
            if k.lower() != "rule":
                raise ConfigError(f"rewrite_tag: {k} is not emulated")
            parts = v.split()
            if len(parts) != 4:
                raise ConfigError(f"rewrite_tag Rule needs 4 fields: {v!r}")
            accessor, pattern, new_tag, keep = parts
            if keep.lower() not in ("true", "false", "on", "off"):
                raise ConfigError(f"rewrite_tag Rule KEEP must be true/false: {keep!r}")
            rules.append((accessor, onig(pattern), new_tag, keep.lower() in ("true", "on")))
        if not rules:
            raise ConfigError("rewrite_tag without rules")

        def run(ev: Event) -> list[Event]:
            for accessor, regex, template, keep in rules:
                m = regex_match(ev.record, accessor, regex)
                if m is None:
                    continue
                new_tag = self._translate_tag(template, ev, m)
                # The emitter is an input: the copy starts the pipeline again with its new tag.
                self.emit(new_tag, copy.deepcopy(ev.record), ev.time)
                return [ev] if keep else []
            return [ev]

        return run

    @staticmethod
    def _translate_tag(template: str, ev: Event, m: re.Match[str]) -> str:
        parts = ev.tag.split(".")

        def sub(t: re.Match[str]) -> str:
            token = t.group(0)
            if token.startswith("$TAG["):
                return parts[int(token[5:-1])]
            if token == "$TAG":
                return ev.tag
            if token[1:].isdigit():
                return m.group(int(token[1:])) or ""
            value = ev.record.get(token[1:])
            return value if isinstance(value, str) else ""

        return re.sub(r"\$TAG\[\d+\]|\$TAG|\$\d|\$[A-Za-z_][A-Za-z0-9_]*", sub, template)

    # -- running
    def emit(self, tag: str, record: Record, at: float | None = None) -> None:
        """Ingest one record (as an input would) and run it through filters and outputs."""
        self._depth += 1
        try:
            if self._depth > 8:
                raise ConfigError(f"rewrite_tag loop: {tag!r} keeps being re-emitted")
            self._run(tag, record, at)
        finally:
            self._depth -= 1

    def _run(self, tag: str, record: Record, at: float | None) -> None:
        events = [Event(tag, time.time() if at is None else at, copy.deepcopy(record))]
        for section, run in self.filters:
            next_events: list[Event] = []
            for ev in events:
                next_events.extend(run(ev) if tag_matches(section, ev.tag) else [ev])
            events = next_events
        for ev in events:
            for out in self.outputs:
                if tag_matches(out, ev.tag):
                    self.delivered.append(Delivery(self._output_id(out), ev, self._s3_key(out, ev)))

    @staticmethod
    def _output_id(s: Section) -> str:
        return s.get("Alias") or (s.get("Name") or "").lower()

    def _s3_key(self, out: Section, ev: Event) -> str | None:
        if (out.get("Name") or "").lower() != "s3":
            return None
        fmt = out.get("s3_key_format") or "/fluent-bit-logs/$TAG/%Y/%m/%d/%H/%M/%S"
        delimiters = out.get("s3_key_format_tag_delimiters") or "."
        parts = re.split("[" + re.escape(delimiters) + "]", ev.tag)
        key = re.sub(r"\$TAG\[(\d+)\]", lambda t: parts[int(t.group(1))], fmt)
        key = key.replace("$TAG", ev.tag).replace("$UUID", self.uuid)
        return time.strftime(key, time.gmtime(ev.time))

    def routes(self) -> dict[str, list[Delivery]]:
        """Deliveries grouped by output (``cloudwatch_logs``, ``s3``)."""
        grouped: dict[str, list[Delivery]] = {}
        for d in self.delivered:
            grouped.setdefault(d.output, []).append(d)
        return grouped


_GENERIC_OUTPUT = {
    "name", "match", "match_regex", "alias", "retry_limit", "workers", "log_level",
    "storage.total_limit_size",
}  # fmt: skip
# Options of the AWS outputs as documented for Fluent Bit 1.9 (aws-for-fluent-bit 2.x).
OUTPUT_OPTIONS = {
    "cloudwatch_logs": _GENERIC_OUTPUT | {
        "region", "log_group_name", "log_group_template", "log_stream_name", "log_stream_prefix",
        "log_stream_template", "log_key", "log_format", "role_arn", "auto_create_group",
        "log_retention_days", "endpoint", "sts_endpoint", "metric_namespace",
        "metric_dimensions", "auto_retry_requests", "external_id",
    },
    "s3": _GENERIC_OUTPUT | {
        "region", "bucket", "json_date_key", "json_date_format", "total_file_size",
        "upload_chunk_size", "upload_timeout", "store_dir", "store_dir_limit_size",
        "s3_key_format", "s3_key_format_tag_delimiters", "static_file_path", "use_put_object",
        "role_arn", "endpoint", "sts_endpoint", "canned_acl", "compression", "content_type",
        "send_content_md5", "auto_retry_requests", "log_key", "preserve_data_ordering",
        "storage_class", "external_id",
    },
    "null": _GENERIC_OUTPUT,
}  # fmt: skip


def _check_output_options(s: Section) -> None:
    """A misspelt option is a startup error in Fluent Bit; catch it here too."""
    plugin = (s.get("Name") or "").lower()
    if plugin not in OUTPUT_OPTIONS:
        raise ConfigError(f"output {plugin!r} is not emulated")
    unknown = sorted({k.lower() for k, _ in s.props} - OUTPUT_OPTIONS[plugin])
    if unknown:
        raise ConfigError(f"output {plugin}: unknown option(s) {unknown}")
    if plugin == "s3" and (s.get("compression") or "gzip") != "gzip":
        raise ConfigError("s3 compression: only gzip is available in every build")
    # The one documented value: "json/emf enables CloudWatch to extract custom metrics embedded
    # in a JSON payload" (Fluent Bit manual, outputs/cloudwatch, log_format).
    if plugin == "cloudwatch_logs" and s.get("log_format") not in (None, "json/emf"):
        raise ConfigError(f"cloudwatch_logs log_format {s.get('log_format')!r}: only json/emf")


def dockerfile_copies(dockerfile: Path) -> dict[str, Path]:
    """Container path -> local file for each ``COPY src dest`` of a simple Dockerfile."""
    copies: dict[str, Path] = {}
    for line in dockerfile.read_text().splitlines():
        parts = line.split()
        if parts and parts[0].upper() == "COPY":
            if len(parts) != 3 or parts[1].startswith("--"):
                raise ConfigError(f"unsupported COPY line: {line!r}")
            copies[parts[2]] = dockerfile.parent / parts[1]
    return copies


def firelens_record(line: str, container: str = "app", source: str = "stdout") -> Record:
    """A record as FireLens hands it to the custom config: raw line in ``log`` + metadata."""
    return {
        "source": source,
        "log": line,
        "container_id": "0123456789abcdef" * 4,
        "container_name": f"/ecs-onnx-serving-3-{container}-a1b2c3d4e5f6",
        "ecs_cluster": "onnx-serving",
        "ecs_task_arn": "arn:aws:ecs:us-east-1:123456789012:task/onnx-serving/"
        "0123456789abcdef0123456789abcdef",
        "ecs_task_definition": "onnx-serving:3",
    }


def lines(text: str) -> Iterable[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


__all__ = [
    "ConfigError",
    "Delivery",
    "JsonParser",
    "Pipeline",
    "Section",
    "dockerfile_copies",
    "env_references",
    "firelens_record",
    "lines",
    "parse_classic",
    "parse_time",
]
