"""The results as a Markdown table (with the targets' verdicts) and PNG plots."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.perf.scenarios import HELD_P99_MS

TARGET_RATE = 500.0
TARGET_P50_MS = 1.0
TARGET_P99_MS = 5.0


def _pair(stats: dict[str, float] | None) -> str:
    if not stats:
        return "-"
    return f"{stats['p50']:+.2f} / {stats['p99']:+.2f}"


def _point(points: list[dict[str, Any]], rate: float) -> dict[str, Any] | None:
    return next((p for p in points if p["rate"] == rate), None)


def _added_cell(point: dict[str, Any] | None) -> str:
    if point is None:
        return "-"
    if "failed" in point:
        return "failed"
    cell = _pair(point["added_ms"])
    if point["error_count"]:
        cell += f" ({point['error_count']} errors)"
    return cell


def table(results: dict[str, Any]) -> str:
    """One row per system; every requested system appears, an unavailable one with its reason."""
    rates = results["settings"]["rates"]
    head = ["system", *(f"added p50 / p99 ms @ {r:g}/s" for r in rates),
            f"stream TTFT added p50 / p99 @ {results['settings']['stream_rate']:g}/s", "stream total added p50 / p99",
            f"highest rate, p99 added < {HELD_P99_MS:g} ms", "closed-loop max req/s", "CPU ms / request (lowest rate)",
            "RSS MB", "errors", "other load on its core, % (max)", "load core busy, % (max)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, system in results["systems"].items():
        if "unavailable" in system:
            lines.append(f"| {name} | unavailable: {system['unavailable']} |" + " |" * (len(head) - 2))
            continue
        plain = system["plain"]
        stream = system.get("stream") or {}
        sweep = [p for p in system.get("sweep", []) if "failed" not in p]
        best = system.get("highest_rate")
        ok_points = [p for p in plain if "failed" not in p]
        cpu_point = _point(ok_points, min((p["rate"] for p in ok_points), default=0))
        errors = sum(p.get("error_count", 0) for p in [*plain, stream] if p)
        cells = [name, *(_added_cell(_point(plain, r)) for r in rates),
                 _added_cell(stream) if stream else "-",
                 _pair(stream.get("added_last_byte_ms")) if stream and "failed" not in stream else "-",
                 "-" if "highest_rate" not in system else "none" if best is None else f"{best:g}",
                 f"{max(p['throughput'] for p in sweep):g}" if sweep else "-",
                 f"{cpu_point['cpu_ms_per_request']:.2f}" if cpu_point else "-",
                 f"{max(p['rss_mb'] for p in ok_points):.0f}" if ok_points else "-",
                 str(errors), _noise(ok_points), _load_core(ok_points)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_table(results: dict[str, Any]) -> list[str]:
    """Closed-loop throughput (and p99 latency) by number of concurrent clients."""
    levels = sorted({p["concurrency"] for s in results["systems"].values() for p in s.get("sweep", [])})
    if not levels:
        return []
    lines = ["Closed loop: req/s (p99 latency ms) by concurrent clients", "",
             "| system | " + " | ".join(str(level) for level in levels) + " |", "|" + "---|" * (len(levels) + 1)]
    for name, system in results["systems"].items():
        by_level = {p["concurrency"]: p for p in system.get("sweep", [])}
        cells = []
        for level in levels:
            point = by_level.get(level)
            cells.append("-" if point is None else "failed" if "failed" in point else
                         f"{point['throughput']:g} ({point['latency_ms']['p99']:.1f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def error_notes(results: dict[str, Any]) -> list[str]:
    """Every error any system returned, by kind: none is hidden in a cell."""
    notes = []
    for name, system in results["systems"].items():
        points = [*system.get("plain", []), *([system["stream"]] if system.get("stream") else [])]
        for point in points:
            kind = "stream" if point.get("stream") else "plain"
            if "failed" in point:
                notes.append(f"- {name} {kind} {point['rate']:g}/s: run failed: {point['failed']}")
            elif point.get("errors"):
                kinds = ", ".join(f"{error} x{count}" for error, count in point["errors"].items())
                notes.append(f"- {name} {kind} {point['rate']:g}/s: {point['error_count']} of {point['scheduled']} "
                             f"failed ({kinds})")
    return ["Errors:", *notes, ""] if notes else []


def _noise(points: list[dict[str, Any]]) -> str:
    """How busy other processes kept the system's core during its points: a shared machine shows here."""
    values = [p["core_other_pct"] for p in points if p.get("core_other_pct") is not None]
    return f"{max(values):.0f}" if values else "-"


def _load_core(points: list[dict[str, Any]]) -> str:
    """How busy the harness kept its own core (load generator + upstream): near 100 % the harness, not the
    system under test, limits the rate."""
    values = [sum(p["load_core_pct"].values()) for p in points if p.get("load_core_pct")]
    return f"{max(values):.0f}" if values else "-"


def verdicts(results: dict[str, Any]) -> list[str]:
    """The issue's targets, checked on ours with the rule classifier (and the ratio to LiteLLM)."""
    lines: list[str] = []
    ours = results["systems"].get("ours-rules")
    if ours and "plain" in ours:
        point = _point(ours["plain"], TARGET_RATE)
        if point and "failed" not in point:
            p50, p99 = point["added_ms"]["p50"], point["added_ms"]["p99"]
            lines.append(f"ours-rules added p50 at {TARGET_RATE:g}/s {p50:+.2f} ms <= {TARGET_P50_MS:g} ms: "
                         f"{'PASS' if p50 <= TARGET_P50_MS else 'FAIL'}")
            lines.append(f"ours-rules added p99 at {TARGET_RATE:g}/s {p99:+.2f} ms <= {TARGET_P99_MS:g} ms: "
                         f"{'PASS' if p99 <= TARGET_P99_MS else 'FAIL'}")
        else:
            lines.append(f"ours-rules at {TARGET_RATE:g}/s: not measured")
    litellm = results["systems"].get("litellm")
    if ours and litellm and "highest_rate" in ours and "highest_rate" in litellm:
        mine, theirs = ours["highest_rate"], litellm["highest_rate"]
        lowest = min((p["rate"] for p in litellm.get("plain", [])), default=None)
        if mine and theirs:
            ratio = mine / theirs
            lines.append(f"highest rate held: ours-rules {mine:g}/s vs LiteLLM {theirs:g}/s = {ratio:.1f}x >= 2x: "
                         f"{'PASS' if ratio >= 2 else 'FAIL'}")
        elif mine:
            lines.append(f"highest rate held: ours-rules {mine:g}/s; LiteLLM held none, down to {lowest:g}/s "
                         f"(p99 added over {HELD_P99_MS:g} ms at every rate tried): PASS")
        else:
            lines.append(f"highest rate held: ours-rules none; LiteLLM {theirs}: FAIL")
    elif ours:
        lines.append("highest rate vs LiteLLM: LiteLLM not measured in this run")
    return lines


def markdown(results: dict[str, Any]) -> str:
    settings, machine = results["settings"], results["machine"]
    lines = [
        f"# llm-router performance, {results['started']}",
        "",
        f"{machine['cpu']}; Python {machine['python']}. System under test on core {settings['router_core']}, "
        f"upstream and load generator on core {settings['load_core']}. Open loop, {settings['duration']:g} s "
        f"measured per point after {settings['warmup']:g} s warm-up; added = percentile through the system minus "
        f"the same percentile direct, interleaved in the same run (about 100 direct req/s). Upstream latency "
        f"{settings['upstream_latency_ms']:g} ms; streams {settings['stream_chunks']} chunks "
        f"{settings['token_ms']:g} ms apart.",
        "",
        table(results),
        "",
        *sweep_table(results),
        *error_notes(results),
        "Versions: " + "; ".join(f"{name}: {s.get('version') or s.get('unavailable', '?')}"
                                 for name, s in results["systems"].items()),
        "",
        "Targets:",
        *(f"- {line}" for line in verdicts(results)),
    ]
    return "\n".join(lines) + "\n"


@contextmanager
def png_figure(path: Path, height: float) -> Iterator[Any]:
    """A matplotlib axis (headless) for the block to draw on; written to ``path`` as a PNG when the block
    ends, and the figure closed either way."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, height))
    try:
        yield axis
        figure.tight_layout()
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    """added p99 against rate, and closed-loop throughput against concurrency, one line per system."""
    written = [out / "added_p99_vs_rate.png", out / "throughput_vs_concurrency.png"]
    with png_figure(written[0], height=4.5) as axis:
        for name, system in results["systems"].items():
            points = sorted((p for p in system.get("plain", []) if "failed" not in p), key=lambda p: p["rate"])
            if points:
                axis.plot([p["rate"] for p in points], [max(p["added_ms"]["p99"], 0.01) for p in points], "o-",
                          label=name)
        axis.axhline(HELD_P99_MS, color="grey", linestyle="--", linewidth=1)
        axis.set(xlabel="offered rate, requests/s", ylabel="p99 added latency, ms (log)", yscale="log",
                 title="Added p99 latency over direct")
        axis.legend(fontsize=8)
    with png_figure(written[1], height=4.5) as axis:
        for name, system in results["systems"].items():
            sweep = [p for p in system.get("sweep", []) if "failed" not in p]
            if sweep:
                axis.plot([p["concurrency"] for p in sweep], [p["throughput"] for p in sweep], "o-", label=name)
        axis.set(xlabel="concurrent clients (log)", ylabel="requests/s", xscale="log",
                 title="Closed-loop throughput, one core")
        axis.legend(fontsize=8)
    return written


def soak_markdown(soak: dict[str, Any]) -> str:
    rss = [sample["rss_mb"] for sample in soak["samples"]]
    settled = rss[len(rss) // 10:] or rss  # the first tenth is warm-up (caches, first reloads)
    mean = sum(settled) / len(settled) if settled else math.nan
    spread = max(abs(value - mean) / mean * 100 for value in settled) if settled else math.nan
    return "\n".join([
        f"# Soak: {soak['minutes']:g} min at {soak['rate']:g} req/s (ours-rules), config reload every "
        f"{soak['reload_every_s']:g} s",
        "",
        "| requests | errors | reloads sent | reloads applied | RSS first / last / min / max MB | "
        "max deviation from mean after warm-up |",
        "|---|---|---|---|---|---|",
        f"| {soak['requests']} | {soak['errors']} | {soak['reloads_sent']} | {soak['reloads_applied']} | "
        f"{rss[0]:.1f} / {rss[-1]:.1f} / {min(rss):.1f} / {max(rss):.1f} | {spread:.1f} % |",
        "",
        f"- zero errors: {'PASS' if soak['errors'] == 0 else 'FAIL'}",
        f"- memory within +-10 % (after the first tenth): {'PASS' if spread <= 10 else 'FAIL'}",
        f"- every reload applied: {'PASS' if soak['reloads_applied'] >= soak['reloads_sent'] else 'FAIL'}",
    ]) + "\n"


def soak_plot(soak: dict[str, Any], out: Path) -> Path:
    path = out / "soak_rss.png"
    with png_figure(path, height=4) as axis:
        axis.plot([s["t_s"] / 60 for s in soak["samples"]], [s["rss_mb"] for s in soak["samples"]], "-o",
                  markersize=2)
        for reload_at in soak["reload_times_s"]:
            axis.axvline(reload_at / 60, color="grey", linewidth=0.5, alpha=0.5)
        axis.set(xlabel="minutes", ylabel="router RSS, MB", title="Soak: router RSS (grey: config reloads)")
        axis.set_ylim(bottom=0)
    return path
