"""The performance harness (``python -m bench.perf``) run for real, briefly, on our router only.

No timing targets: the checks are that every output is written and sane (the
table parses, the numbers are there, nothing failed), that the soak reloads
the config through the file watch and SIGHUP, and the search's decisions."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # appended, not prepended: the repository's operator/ must not shadow the stdlib's
scenarios = importlib.import_module("bench.perf.scenarios")
HELD_P99_MS, highest_rate, next_rate = scenarios.HELD_P99_MS, scenarios.highest_rate, scenarios.next_rate
PNG = b"\x89PNG\r\n\x1a\n"


def _harness(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    # Unpinned ('' cores): CI machines may have a single CPU.
    return subprocess.run([sys.executable, "-m", "bench.perf", "--router-core", "", "--load-core", "", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)


def _table(markdown: str) -> dict[str, dict[str, str]]:
    """The first Markdown table: system -> column header -> cell."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| system |"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    assert set(lines[start + 1]) <= {"|", "-"}
    rows = {}
    for line in lines[start + 2:end]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def _column(row: dict[str, str], prefix: str) -> str:
    return next(value for name, value in row.items() if name.startswith(prefix))


def test_the_suite_writes_results_report_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "perf"
    completed = _harness("--systems", "direct,ours-rules", "--rates", "50", "--max-rate", "100", "--duration", "1",
                         "--warmup", "0.5", "--stream-rate", "20", "--quick", "--out", str(out))
    assert completed.returncode == 0, completed.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    ours = results["systems"]["ours-rules"]
    assert [point["rate"] for point in ours["plain"]] == [50.0, 100.0]  # 50 given, 100 from the search
    for point in [*ours["plain"], ours["stream"]]:
        assert "failed" not in point
        assert point["ok"] == point["scheduled"] > 0, point["errors"]
        assert point["decision"]["category"] == "code"  # the rule classifier ran
        assert point["cpu_ms_per_request"] > 0 and point["rss_mb"] > 10
        assert point["latency_ms"]["p99"] >= point["latency_ms"]["p50"] > 0
    assert "added_last_byte_ms" in ours["stream"]
    assert "highest_rate" in ours
    assert [point["concurrency"] for point in ours["sweep"]] == [1, 4, 16]
    assert all(point["throughput"] > 0 and point["errors"] == 0 for point in ours["sweep"])

    report = (out / "report.md").read_text()
    assert report in completed.stdout  # the table is printed too
    rows = _table(report)
    assert set(rows) == {"direct", "ours-rules"}
    row = rows["ours-rules"]
    p50, p99 = (float(value) for value in _column(row, "added p50 / p99 ms @ 50/s").split(" / "))
    added = ours["plain"][0]["added_ms"]
    assert (p50, p99) == (round(added["p50"], 2), round(added["p99"], 2))
    assert re.fullmatch(r"\d+(\.\d+)?|none", _column(row, "highest rate"))
    assert float(_column(row, "closed-loop max")) > 0
    assert float(_column(row, "CPU ms")) > 0 and float(_column(row, "RSS MB")) > 10
    assert _column(row, "errors") == "0"
    assert "Targets:" in report
    for name in ("added_p99_vs_rate.png", "throughput_vs_concurrency.png"):
        assert (out / name).read_bytes().startswith(PNG)


def test_the_soak_reloads_the_config_and_samples_memory(tmp_path: Path) -> None:
    out = tmp_path / "soak"
    completed = _harness("--soak", "--minutes", "0.25", "--soak-rate", "50", "--reload-every", "4",
                         "--sample-every", "1", "--out", str(out))
    assert completed.returncode == 0, completed.stderr[-3000:] + completed.stdout[-2000:]
    soak = json.loads((out / "soak.json").read_text())
    assert soak["errors"] == 0 and soak["requests"] >= 0.9 * 50 * 15
    assert soak["reloads_sent"] >= 3
    assert soak["reloads_applied"] == soak["reloads_sent"]  # each rewrite served as a new revision
    assert len(soak["samples"]) >= 12 and all(sample["rss_mb"] > 10 for sample in soak["samples"])
    assert "zero errors: PASS" in (out / "report.md").read_text()
    assert (out / "soak_rss.png").read_bytes().startswith(PNG)


def _point(rate: float, p99: float, errors: int = 0, ok_fraction: float = 1.0) -> dict[str, object]:
    return {"rate": rate, "added_ms": {"p50": 0.5, "p99": p99}, "error_count": errors,
            "ok": int(rate * 10 * ok_fraction), "scheduled": int(rate * 10)}


LADDER = [25.0, 50.0, 100.0, 200.0, 500.0, 1000.0]


def test_the_search_climbs_while_held_then_bisects() -> None:
    assert next_rate([_point(100, 2)], 10, LADDER, 0.15) == 200
    points = [_point(100, 2), _point(200, 3), _point(500, HELD_P99_MS + 1)]
    assert highest_rate(points, 10) == 200
    assert next_rate(points, 10, LADDER, 0.15) == 350
    points += [_point(350, 4), _point(400, 40)]
    assert highest_rate(points, 10) == 350
    assert next_rate(points, 10, LADDER, 0.15) is None  # 350 and 400 are within 15 %
    assert next_rate([_point(r, 1) for r in LADDER], 10, LADDER, 0.15) is None  # held at the top


@pytest.mark.parametrize("failing", [_point(100, 50), _point(100, 2, errors=1), _point(100, 2, ok_fraction=0.5)])
def test_the_search_goes_down_when_even_the_lowest_rate_is_not_held(failing: dict[str, object]) -> None:
    assert highest_rate([failing], 10) is None
    assert next_rate([failing], 10, LADDER, 0.15) == 50
    assert next_rate([failing, _point(50, 30), _point(25, 20)], 10, LADDER, 0.15) is None


# ----------------------------------------------------- the plots, from results alone (no run)

report = importlib.import_module("bench.perf.report")
RESULTS = {"systems": {
    "ours-rules": {"plain": [{"rate": 50.0, "added_ms": {"p50": 0.3, "p99": 1.2}},
                             {"rate": 100.0, "added_ms": {"p50": 0.4, "p99": 2.5}}, {"rate": 200.0, "failed": "x"}],
                   "sweep": [{"concurrency": 1, "throughput": 300.0}, {"concurrency": 4, "throughput": 900.0}]},
    "litellm": {"plain": [{"rate": 50.0, "added_ms": {"p50": 3.0, "p99": -1.0}}], "sweep": []},
    "portkey": {"unavailable": "not installed"}}}
SOAK = {"samples": [{"t_s": t * 10.0, "rss_mb": 80.0 + t % 3} for t in range(30)], "reload_times_s": [30.0, 90.0]}


def test_the_plots_are_written_and_their_figures_closed(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    written = [*report.plots(RESULTS, tmp_path), report.soak_plot(SOAK, tmp_path)]
    assert [path.name for path in written] == ["added_p99_vs_rate.png", "throughput_vs_concurrency.png",
                                               "soak_rss.png"]
    assert all(path.read_bytes().startswith(PNG) for path in written)
    assert plt.get_fignums() == []


def test_a_figure_that_fails_to_draw_writes_nothing_and_is_closed(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    def draw_and_fail() -> None:
        with report.png_figure(tmp_path / "broken.png", height=4) as axis:
            axis.plot([1, 2], [3, 4])
            raise RuntimeError("a drawing error")

    with pytest.raises(RuntimeError, match="a drawing error"):
        draw_and_fail()
    assert not (tmp_path / "broken.png").exists()
    assert plt.get_fignums() == []
