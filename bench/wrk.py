"""The load generator: ``wrk`` on its own CPU, POSTing one fixed body, and its output parsed.

wrk keeps ``connections`` requests in flight at all times (closed loop), reports latency
percentiles with ``--latency``, and counts responses outside 2xx/3xx ("Non-2xx or 3xx
responses") and socket errors; both count as errors here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

INSTALL_HINT = (
    "wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`"
)

_LUA = """-- POST one fixed body (read from a file, so binary bodies work too)
wrk.method = "POST"
local f = assert(io.open({path}, "rb"))
wrk.body = f:read("*a")
f:close()
{headers}
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    requests_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "errors": self.errors}


def wrk_path() -> str | None:
    return shutil.which("wrk")


def write_script(folder: Path, name: str, body_path: Path, headers: dict[str, str]) -> Path:
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script = folder / f"{name}.lua"
    script.write_text(_LUA.format(path=_lua_string(str(body_path)), headers=lines))
    return script


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(
    url: str, script: Path, connections: int, seconds: float, cpu: int, timeout_s: float = 10.0
) -> WrkResult:
    """One wrk run of ``seconds`` on CPU ``cpu`` with one thread (the server has one CPU too)."""
    argv = [
        "taskset",
        "-c",
        str(cpu),
        wrk_path() or "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s:g}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + timeout_s + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse(done.stdout)


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"cannot read wrk duration {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse(output: str) -> WrkResult:
    """Read wrk's text report (the format of wrk 4.x)."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if total is None or rate is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    percentiles = {
        int(m[1]): _duration_ms(m[2]) for m in re.finditer(r"^\s+(\d+)%\s+(\S+)\s*$", output, re.M)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests=int(total[1]),
        seconds=_duration_ms(total[2] + total[3]) / 1e3,
        requests_s=float(rate[1]),
        p50_ms=percentiles.get(50, float("nan")),
        p90_ms=percentiles.get(90, float("nan")),
        p99_ms=percentiles.get(99, float("nan")),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(g) for g in sockets.groups()) if sockets else 0,
    )


def combine(results: list[WrkResult]) -> WrkResult:
    """Several windows on one server as one: counts and seconds summed, p50/p90 the median of
    the windows', p99 the highest (the slowest window decides the tail)."""
    if len(results) == 1:
        return results[0]

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[(len(ordered) - 1) // 2]

    requests = sum(r.requests for r in results)
    seconds = sum(r.seconds for r in results)
    return WrkResult(
        requests=requests,
        seconds=seconds,
        requests_s=requests / seconds if seconds else 0.0,
        p50_ms=median([r.p50_ms for r in results]),
        p90_ms=median([r.p90_ms for r in results]),
        p99_ms=max(r.p99_ms for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
    )
