"""``python -m bench.perf``: every system, every scenario, one report; ``--soak`` for the soak."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import overhead
from bench.perf import report
from bench.perf.scenarios import Bench, closed_main, closed_point, highest_rate, next_rate, rate_point
from bench.perf.systems import ALL_SYSTEMS, REPO, SystemUnavailable, router_config, start_system

LADDER = [10.0, 25.0, 50.0, 100.0, 200.0, 300.0, 500.0, 700.0, 1000.0, 1400.0, 2000.0]
SWEEP = [1, 4, 16, 64]


def log(message: str) -> None:
    print(f"[bench.perf {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__)
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                        help=f"comma-separated, from: {', '.join(ALL_SYSTEMS)}")
    parser.add_argument("--quick", action="store_true",
                        help="short points (3 s + 1 s warm-up), rates 100 and 500, a 3-step sweep")
    parser.add_argument("--duration", type=float, help="measured seconds per point (default 10; --quick 3)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per point (default 2; --quick 1)")
    parser.add_argument("--rates", help="comma-separated plain rates always measured (default 100,500,1000)")
    parser.add_argument("--no-search", action="store_true", help="skip the step-up search for the highest rate")
    parser.add_argument("--max-rate", type=float, default=LADDER[-1], help="highest rate the search tries")
    parser.add_argument("--no-sweep", action="store_true", help="skip the closed-loop concurrency sweep")
    parser.add_argument("--stream-rate", type=float, default=100.0, help="req/s of the streaming point")
    parser.add_argument("--stream-chunks", type=int, default=16, help="content chunks per upstream stream")
    parser.add_argument("--token-ms", type=float, default=5.0, help="upstream gap between stream chunks, ms")
    parser.add_argument("--upstream-latency-ms", type=float, default=0.0, help="upstream wait before answering")
    parser.add_argument("--router-core", default="0", help="CPU of the system under test (taskset -c)")
    parser.add_argument("--load-core", default="1", help="CPU of the upstream and the load generator")
    parser.add_argument("--out", type=Path, help="output folder (default bench/results/perf-<timestamp>)")
    parser.add_argument("--render", type=Path, metavar="DIR",
                        help="only rewrite DIR/report.md and the plots from DIR/results.json")
    parser.add_argument("--soak", action="store_true", help="the soak instead: ours-rules at a steady rate")
    parser.add_argument("--minutes", type=float, default=30.0, help="soak length")
    parser.add_argument("--soak-rate", type=float, default=200.0, help="soak req/s")
    parser.add_argument("--reload-every", type=float, default=60.0, help="soak: seconds between config reloads")
    parser.add_argument("--sample-every", type=float, default=10.0, help="soak: seconds between RSS samples")
    args = parser.parse_args(argv)
    args.systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = [name for name in args.systems if name not in ALL_SYSTEMS]
    if unknown or not args.systems:
        parser.error(f"unknown systems {unknown}; known: {', '.join(ALL_SYSTEMS)}")
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    default_rates = "100,500" if args.quick else "100,500,1000"
    args.rates = sorted(float(rate) for rate in (args.rates or default_rates).split(","))
    args.sweep = SWEEP[:3] if args.quick else SWEEP
    args.ladder = [rate for rate in LADDER if rate <= args.max_rate]
    if shutil.which("taskset") is None and (args.router_core or args.load_core):
        parser.error("taskset not found: install util-linux or pass --router-core '' --load-core ''")
    return args


def start_upstream(args: argparse.Namespace, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = overhead._free_port()
    out = workdir / "upstream.log"
    process = subprocess.Popen(
        overhead._pinned(args.load_core, [sys.executable, overhead.__file__, "_upstream", "--port", str(port),
                                          "--chunks", str(args.stream_chunks), "--chunk-delay-ms",
                                          str(args.token_ms), "--latency-ms", str(args.upstream_latency_ms)]),
        stdout=out.open("wb"), stderr=subprocess.STDOUT)
    overhead._wait_http(f"http://127.0.0.1:{port}/v1/models", process, out, "upstream")
    return process, port


def measure_system(args: argparse.Namespace, bench: Bench, name: str) -> dict[str, Any]:
    """Start one system, run every scenario on it, stop it."""
    try:
        system = start_system(name, bench.upstream_port, bench.upstream_pid, args.router_core, bench.workdir, log)
    except SystemUnavailable as exc:
        log(f"{name}: unavailable: {exc}")
        return {"unavailable": str(exc)}
    try:
        log(f"{name}: {system.version}")
        plain: list[dict[str, Any]] = []
        for rate in args.rates:
            plain.append(rate_point(bench, system, rate, args.duration, args.warmup, stream=False))
            log(f"{name}: plain {rate:g}/s: {_brief(plain[-1])}")
            if "failed" in plain[-1] and rate == args.rates[0]:
                return {"version": system.version, "plain": plain, "unavailable": plain[-1]["failed"]}
        while not args.no_search and (rate := next_rate(plain, args.duration, args.ladder, 0.15)) is not None:
            plain.append(rate_point(bench, system, rate, args.duration, args.warmup, stream=False))
            log(f"{name}: search {rate:g}/s: {_brief(plain[-1])}")
        stream = rate_point(bench, system, args.stream_rate, args.duration, args.warmup, stream=True)
        log(f"{name}: stream {args.stream_rate:g}/s: {_brief(stream)}")
        sweep = [] if args.no_sweep else [closed_point(bench, system, n, args.duration, args.warmup)
                                          for n in args.sweep]
        if sweep:
            log(f"{name}: sweep " + ", ".join(f"{p['concurrency']}: {p.get('throughput', 'failed')}/s"
                                              for p in sweep))
        result: dict[str, Any] = {"version": system.version, "plain": sorted(plain, key=lambda p: p["rate"]),
                                  "stream": stream, "sweep": sweep}
        if not args.no_search:
            result["highest_rate"] = highest_rate(plain, args.duration)
        return result
    finally:
        system.stop()


def _brief(point: dict[str, Any]) -> str:
    if "failed" in point:
        return f"failed: {point['failed']}"
    return (f"added p50/p99 {point['added_ms']['p50']:+.2f}/{point['added_ms']['p99']:+.2f} ms, "
            f"{point['ok']}/{point['scheduled']} ok, CPU {point['cpu_ms_per_request']} ms/req")


def machine() -> dict[str, str]:
    return {"cpu": overhead._cpu_name(), "python": platform.python_version(), "platform": platform.platform()}


def output_dir(args: argparse.Namespace, kind: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or REPO / "bench" / "results" / f"{kind}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_suite(args: argparse.Namespace) -> int:
    out = output_dir(args, "perf")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="llm-router-perf-") as tmp:
        workdir = Path(tmp)
        upstream, port = start_upstream(args, workdir)
        bench = Bench(port, upstream.pid, args.router_core, args.load_core, workdir)
        try:
            systems = {name: measure_system(args, bench, name) for name in args.systems}
        finally:
            upstream.send_signal(signal.SIGINT)
            upstream.wait(timeout=20)
    settings = {key: value for key, value in vars(args).items() if key not in ("out",)}
    results = {"started": started, "settings": settings, "machine": machine(), "systems": systems}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    text = report.markdown(results)
    (out / "report.md").write_text(text)
    report.plots(results, out)
    print(text)
    print(f"written: {out}")
    return 0


def render(out: Path) -> int:
    results = json.loads((out / "results.json").read_text())
    text = report.markdown(results)
    (out / "report.md").write_text(text)
    report.plots(results, out)
    print(text)
    return 0


# ----------------------------------------------------------------------- soak


def run_soak(args: argparse.Namespace) -> int:
    """ours-rules at a steady rate for ``--minutes``; the config rewritten and SIGHUP sent every
    ``--reload-every`` s; its RSS sampled every ``--sample-every`` s; errors counted."""
    out = output_dir(args, "soak")
    with tempfile.TemporaryDirectory(prefix="llm-router-soak-") as tmp:
        workdir = Path(tmp)
        upstream, port = start_upstream(args, workdir)
        system = start_system("ours-rules", port, upstream.pid, args.router_core, workdir, log)
        assert system.config_path is not None and system.log is not None
        seconds = args.minutes * 60
        spec = overhead.LoadSpec(
            routed_url=system.url, direct_url=f"http://127.0.0.1:{port}/v1/chat/completions", stream=False,
            rate=args.soak_rate, duration=seconds, warmup=0.0, router_pid=system.pid, upstream_pid=upstream.pid,
            routed_model=system.model, expect_decision=system.expect_decision,
            direct_every=max(1, round(args.soak_rate)))
        load_out = workdir / "soak-load.json"
        load = subprocess.Popen(overhead._pinned(args.load_core, [
            sys.executable, overhead.__file__, "_load", "--spec", json.dumps(asdict(spec)), "--out", str(load_out)]))
        samples: list[dict[str, float]] = []
        reload_times: list[float] = []
        start = time.monotonic()
        next_sample, next_reload = start, start + args.reload_every
        try:
            while load.poll() is None:
                now = time.monotonic()
                if now >= next_sample:
                    rss = overhead._proc_rss_mb(system.pid)
                    samples.append({"t_s": round(now - start, 1), "rss_mb": round(rss, 2)})
                    next_sample += args.sample_every
                if now >= next_reload and now - start < seconds:
                    # A real change each time (a keyword), through the file watch and SIGHUP.
                    system.config_path.write_text(router_config(port, rules_keywords_extra=f"soak{len(reload_times)}"))
                    os.kill(system.pid, signal.SIGHUP)
                    reload_times.append(round(now - start, 1))
                    next_reload += args.reload_every
                time.sleep(0.2)
            result = json.loads(load_out.read_text()) if load_out.exists() else None
        finally:
            if load.poll() is None:
                load.kill()
            system.stop()
            upstream.send_signal(signal.SIGINT)
            upstream.wait(timeout=20)
        applied = system.log.read_text(errors="replace").count("serving config revision") - 1
    if result is None:
        raise SystemExit("the soak's load generator wrote no result")
    soak = {"minutes": args.minutes, "rate": args.soak_rate, "reload_every_s": args.reload_every,
            "requests": result["routed"]["scheduled"], "errors": sum(result["routed"]["errors"].values()),
            "error_kinds": result["routed"]["errors"], "added_ms": result["added_ms"],
            "reloads_sent": len(reload_times), "reloads_applied": applied, "reload_times_s": reload_times,
            "samples": samples, "machine": machine()}
    (out / "soak.json").write_text(json.dumps(soak, indent=2))
    text = report.soak_markdown(soak)
    (out / "report.md").write_text(text)
    report.soak_plot(soak, out)
    print(text)
    print(f"written: {out}")
    return 0 if soak["errors"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_closed"]:
        return closed_main(argv[1:])
    args = parse_args(argv)
    if args.render:
        return render(args.render)
    if args.load_core:
        cores = {int(cpu) for cpu in args.load_core.split(",") if cpu.isdigit()}
        os.sched_setaffinity(0, cores or os.sched_getaffinity(0))
    return run_soak(args) if args.soak else run_suite(args)
