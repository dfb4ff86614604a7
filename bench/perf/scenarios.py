"""The measurements, each against one running system: open-loop rate points
(through ``bench/overhead.py``'s load generator, interleaved with direct
requests), the step-up search for the highest rate held, and a closed-loop
concurrency sweep. The load always runs in its own process on the load core."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import overhead
from bench.perf.systems import REPO, Running

HELD_P99_MS = 10.0
"""A rate is held while p99 added latency stays under this, with no errors and the rate achieved."""


@dataclass
class Bench:
    """Where the upstream is and how to run the load."""

    upstream_port: int
    upstream_pid: int
    router_core: str
    load_core: str
    workdir: Path
    timeout: float = 10.0


def settle(system: Running, timeout: float = 60.0) -> None:
    """Wait until ``system`` answers one request within a second again: an overloaded point
    can leave a backlog behind that the next point must not inherit."""
    body = overhead._request_body(system.model, stream=False)
    headers = {**overhead.JSON_HEADERS, **system.headers}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.monotonic()
        with contextlib.suppress(OSError):
            request = urllib.request.Request(system.url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
            if time.monotonic() - started < 1.0:
                return
        time.sleep(0.5)


def rate_point(bench: Bench, system: Running, rate: float, duration: float, warmup: float,
               stream: bool) -> dict[str, Any]:
    """One open-loop run at ``rate`` req/s on ``system``, with direct requests interleaved (about 100/s)."""
    settle(system)
    direct_url = f"http://127.0.0.1:{bench.upstream_port}/v1/chat/completions"
    spec = overhead.LoadSpec(
        routed_url=system.url, direct_url=direct_url, stream=stream, rate=rate, duration=duration, warmup=warmup,
        router_pid=system.pid, upstream_pid=bench.upstream_pid,
        router_core=int(bench.router_core) if bench.router_core.isdigit() else None, timeout=bench.timeout,
        routed_model=system.model, routed_headers=system.headers, expect_decision=system.expect_decision,
        direct_every=max(1, round(rate / 100)), first_on_content=True)
    out = bench.workdir / f"load-{system.name}-{'stream' if stream else 'plain'}-{rate:g}.json"
    command = overhead._pinned(bench.load_core, [sys.executable, overhead.__file__, "_load",
                                                 "--spec", json.dumps(asdict(spec)), "--out", str(out)])
    completed = subprocess.run(command, check=False, capture_output=True, text=True)
    if completed.returncode != 0 or not out.exists():
        reason = (completed.stderr.strip().splitlines() or [f"exit {completed.returncode}"])[-1]
        return {"rate": rate, "stream": stream, "failed": reason[:300]}
    result = json.loads(out.read_text())
    return {"rate": rate, "stream": stream, **condense(result, system.name == "direct")}


def condense(result: dict[str, Any], is_direct: bool) -> dict[str, Any]:
    """The numbers the report needs from one ``overhead.run_load`` result."""
    routed = result["routed"]
    cpu = result["upstream_cpu_ms_per_request"] if is_direct else result["router_cpu_ms_per_request"]
    errors = sum(routed["errors"].values())
    condensed = {
        "added_ms": result["added_ms"], "latency_ms": routed["latency_ms"],
        "direct_latency_ms": result["direct"]["latency_ms"],
        "scheduled": routed["scheduled"], "ok": routed["ok"], "errors": routed["errors"], "error_count": errors,
        "achieved_rate": routed["achieved_rate"], "cpu_ms_per_request": cpu,
        "rss_mb": result["router_rss_mb"]["end"], "core_other_pct": result.get("router_core_other_pct"),
        "load_core_pct": result.get("load_core_pct"),
        "decision": result.get("decision", {}),
    }
    if "added_last_byte_ms" in result:
        condensed["added_last_byte_ms"] = result["added_last_byte_ms"]
    return condensed


def held(point: dict[str, Any], duration: float) -> bool:
    """Whether a plain rate point was held: no errors, the rate achieved, p99 added under the bound."""
    if "failed" in point or point["error_count"]:
        return False
    if point["ok"] < 0.97 * point["rate"] * duration:
        return False
    return point["added_ms"]["p99"] < HELD_P99_MS


def highest_rate(points: list[dict[str, Any]], duration: float) -> float | None:
    """The highest rate held such that every lower measured rate was held too (``None``: not even the lowest)."""
    best = None
    for point in sorted(points, key=lambda p: p["rate"]):
        if not held(point, duration):
            break
        best = point["rate"]
    return best


def next_rate(points: list[dict[str, Any]], duration: float, ladder: list[float], resolution: float) -> float | None:
    """The next rate to try: up the ladder while held (down it while even the lowest tried fails), then
    bisect between the last held and the first failed rate until they are ``resolution`` (a fraction)
    apart; ``None`` when done."""
    tried = {p["rate"] for p in points}
    good = highest_rate(points, duration)
    failed = [p["rate"] for p in points if not held(p, duration) and (good is None or p["rate"] > good)]
    if not failed:
        higher = [rate for rate in ladder if (good is None or rate > good) and rate not in tried]
        return higher[0] if higher else None
    high = min(failed)
    if good is None:
        lower = [rate for rate in ladder if rate < high and rate not in tried]
        return lower[-1] if lower else None
    if (high - good) / high <= resolution:
        return None
    middle = round((good + high) / 2, -1) if high - good > 20 else (good + high) / 2
    return None if middle in tried else float(middle)


# ---------------------------------------------------------------- closed loop


@dataclass
class ClosedSpec:
    url: str
    model: str
    headers: dict[str, str]
    concurrency: int
    duration: float
    warmup: float
    timeout: float = 10.0


async def run_closed(spec: ClosedSpec) -> dict[str, Any]:
    """``concurrency`` clients, each sending its next request when the last one answered."""
    body = overhead._request_body(spec.model, stream=False)
    headers = {**overhead.JSON_HEADERS, **spec.headers}
    samples: list[overhead.Sample] = []
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=spec.timeout),
                                     auto_decompress=False) as session:
        start = time.monotonic()
        measure_from, stop_at = start + spec.warmup, start + spec.warmup + spec.duration

        async def client() -> None:
            while (now := time.monotonic()) < stop_at:
                sample = overhead.Sample("routed", now)
                await overhead._one(session, spec.url, body, False, sample, headers)
                if sample.scheduled >= measure_from:
                    samples.append(sample)

        await asyncio.gather(*(client() for _ in range(spec.concurrency)))
    ok = [s for s in samples if not s.error]
    latency = sorted((s.done - s.scheduled) * 1000 for s in ok)
    return {"concurrency": spec.concurrency, "throughput": round(len(ok) / spec.duration, 1),
            "latency_ms": overhead._stats(latency), "errors": len(samples) - len(ok)}


def closed_point(bench: Bench, system: Running, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    spec = ClosedSpec(system.url, system.model, system.headers, concurrency, duration, warmup, bench.timeout)
    out = bench.workdir / f"closed-{system.name}-{concurrency}.json"
    command = overhead._pinned(bench.load_core, [sys.executable, "-m", "bench.perf", "_closed",
                                                 "--spec", json.dumps(asdict(spec)), "--out", str(out)])
    completed = subprocess.run(command, check=False, capture_output=True, text=True, cwd=REPO)
    if completed.returncode != 0 or not out.exists():
        reason = (completed.stderr.strip().splitlines() or [f"exit {completed.returncode}"])[-1]
        return {"concurrency": concurrency, "failed": reason[:300]}
    return json.loads(out.read_text())


def closed_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.perf _closed")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(run_closed(ClosedSpec(**json.loads(args.spec))))
    args.out.write_text(json.dumps(result))
    return 0
