"""``llm-router score``, ``calibrate`` and ``eval quality``: a quality policy's model on prompt files.

- ``score --policy NAME --input prompts.jsonl --output scores.jsonl``: one JSON object a line,
  ``{"prompt": ...}`` in, ``{"prompt": ..., "score": ...}`` out (score: the strong model's expected
  win rate, ``quality.quality_score``).
- ``calibrate --policy NAME --strong-share 0.3 --prompts FILE``: the threshold that sends that share
  of the prompts to the strong tier; ``--write-config OUT`` writes a copy of ``--config`` with it.
- ``eval quality --bench mmlu|gsm8k --split test`` or ``--file CSV``: APGR, CPT(50%), CPT(80%) of the
  model beside random, prompt-length and oracle routers, computed as RouteLLM computes them; a table
  and a PNG of quality against the share of strong-model calls.

Without ``--config``, NAME is a model of the default model repository (e.g. ``quality_router``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .quality import calibrate_threshold
from .quality_scoring import ScoringError, encoder_for, quality_head, read_prompts, score_prompts

COMMANDS = ("score", "calibrate", "eval")


def add_quality_commands(commands: Any) -> None:
    """Register ``score``, ``calibrate`` and ``eval`` on the CLI's subparsers."""
    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--policy", required=True, help="a quality policy of --config, or without --config "
                                                            "a model of the default repository (quality_router)")
        parser.add_argument("--config", type=Path, help="router config (YAML) holding the policy")
        parser.add_argument("--threads", type=int, default=2, help="encoder threads")

    score = commands.add_parser("score", help="score prompts with a quality policy's model (JSONL in and out)")
    common(score)
    score.add_argument("--input", type=Path, required=True, help="JSONL, one {\"prompt\": ...} a line")
    score.add_argument("--output", type=Path, required=True, help="JSONL, one {\"prompt\", \"score\"} a line")

    calibrate = commands.add_parser("calibrate", help="the threshold that sends a share of prompts to strong")
    common(calibrate)
    calibrate.add_argument("--strong-share", type=float, required=True, help="target share of strong calls, 0-1")
    calibrate.add_argument("--prompts", type=Path, required=True, help="reference prompts (JSONL or one a line)")
    calibrate.add_argument("--write-config", type=Path, metavar="OUT",
                           help="write a copy of --config with the policy's threshold set to the result")

    evaluate = commands.add_parser("eval", help="evaluate a router on a benchmark, RouteLLM's way")
    kinds = evaluate.add_subparsers(dest="eval_kind", required=True)
    quality = kinds.add_parser("quality", help="APGR and CPT of a quality model against the baselines")
    quality.add_argument("--policy", default="quality_router", help="as for score (default quality_router)")
    quality.add_argument("--config", type=Path)
    quality.add_argument("--threads", type=int, default=2)
    source = quality.add_mutually_exclusive_group(required=True)
    source.add_argument("--bench", choices=["mmlu", "gsm8k"], help="the RouteLLM outcomes of this benchmark")
    source.add_argument("--file", type=Path, help="any CSV with a prompt column and weak/strong quality columns")
    quality.add_argument("--split", choices=["test", "train", "all"], default="test",
                         help="--bench: which split (default test: the one never trained on)")
    quality.add_argument("--data-dir", type=Path, help="the RouteLLM outcomes folder (default ../shared/data/routellm)")
    quality.add_argument("--prompt-column", default="prompt")
    quality.add_argument("--weak-column", default="weak", help="--file: weak model correctness (True/False) or score")
    quality.add_argument("--strong-column", default="strong", help="--file: strong model correctness or score")
    quality.add_argument("--score-column", help="--file: use this column as the router's score (no model run)")
    quality.add_argument("--plot", type=Path, default=Path("quality_eval.png"), help="PNG to write")
    quality.add_argument("--json", type=Path, help="also write the table as JSON")


def run_quality_command(args: argparse.Namespace) -> int:
    try:
        if args.command == "score":
            return _score(args)
        if args.command == "calibrate":
            return _calibrate(args)
        return _eval(args)
    except ScoringError as exc:
        print(f"llm-router {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _score(args: argparse.Namespace) -> int:
    head, _ = quality_head(args.policy, args.config)
    prompts = read_prompts(args.input)
    scores = score_prompts(head, prompts, encoder_for(head, args.threads))
    with args.output.open("w", encoding="utf-8") as out:
        for prompt, score in zip(prompts, scores, strict=True):
            out.write(json.dumps({"prompt": prompt, "score": round(float(score), 6)}, ensure_ascii=False) + "\n")
    print(f"scored {len(prompts)} prompts into {args.output}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    if not 0.0 <= args.strong_share <= 1.0:
        raise ScoringError(f"--strong-share must be in [0, 1], got {args.strong_share}")
    if args.write_config is not None and args.config is None:
        raise ScoringError("--write-config needs --config (the file to copy)")
    head, _ = quality_head(args.policy, args.config)
    prompts = read_prompts(args.prompts)
    scores = score_prompts(head, prompts, encoder_for(head, args.threads))
    threshold = calibrate_threshold(scores, args.strong_share)
    share = float(np.mean(scores >= threshold))
    result = {"policy": args.policy, "model": head.name, "strong_share_target": args.strong_share,
              "threshold": round(threshold, 6), "strong_share_on_these_prompts": round(share, 4),
              "prompts": len(prompts)}
    if args.config is not None:  # the per-request name that applies this threshold to the policy
        result["model_name_override"] = f"router-{args.policy}-{threshold:.6f}"
    print(json.dumps(result))
    if args.write_config is not None:
        write_threshold(args.config, args.write_config, args.policy, threshold)
        print(f"wrote {args.write_config}")
    return 0


def write_threshold(source: Path, target: Path, policy: str, threshold: float) -> None:
    """A copy of the config with the quality policy's strong threshold set (validated before writing)."""
    import yaml

    from .config import RouterConfig
    from .config_file import ConfigError, load_config_file

    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    for entry in data.get("policies") or []:
        if entry.get("name") == policy:
            classifier = entry["classifier"]
            if classifier.get("tiers"):
                classifier["tiers"][0]["min_score"] = round(threshold, 6)
            else:
                classifier["threshold"] = round(threshold, 6)
    try:
        RouterConfig.model_validate(data)
    except ValueError as exc:
        raise ScoringError(f"the calibrated config would be invalid: {exc}") from None
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    try:
        load_config_file(target)
    except ConfigError as exc:
        raise ScoringError(exc.describe()) from None


def _truth_or_number(value: str, where: str) -> float:
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return 1.0 if lowered == "true" else 0.0
    try:
        return float(lowered)
    except ValueError:
        raise ScoringError(f"{where}: expected True/False or a number, got {value!r}") from None


def read_eval_file(args: argparse.Namespace) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray | None]:
    """Prompts, weak and strong qualities, and optional router scores from ``--file``."""
    path: Path = args.file
    if not path.is_file():
        raise ScoringError(f"{path}: no such file")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ScoringError(f"{path}: no rows")
    wanted = [args.prompt_column, args.weak_column, args.strong_column]
    if args.score_column:
        wanted.append(args.score_column)
    missing = [column for column in wanted if column not in rows[0]]
    if missing:
        raise ScoringError(f"{path}: missing column(s) {missing}; it has {list(rows[0])} (use --prompt-column, "
                           "--weak-column, --strong-column)")
    prompts = [row[args.prompt_column] for row in rows]
    weak = np.array([_truth_or_number(row[args.weak_column], f"{path}:{i + 2}") for i, row in enumerate(rows)])
    strong = np.array([_truth_or_number(row[args.strong_column], f"{path}:{i + 2}") for i, row in enumerate(rows)])
    scores = None
    if args.score_column:
        scores = np.array([_truth_or_number(row[args.score_column], f"{path}:{i + 2}")
                           for i, row in enumerate(rows)])
    return prompts, weak, strong, scores


def _eval(args: argparse.Namespace) -> int:
    from llm_router.training.quality_metrics import (
        length_scores,
        oracle_scores,
        random_metrics,
        router_metrics,
    )
    from llm_router.training.routellm import DEFAULT_DATA_DIR, OutcomeDataError, load_outcomes

    if args.bench:
        try:
            rows = load_outcomes(args.bench, args.split, args.data_dir or DEFAULT_DATA_DIR)
        except OutcomeDataError as exc:
            raise ScoringError(str(exc)) from None
        prompts = [row.prompt for row in rows]
        weak = np.array([row.weak for row in rows], dtype=np.float64)
        strong = np.array([row.strong for row in rows], dtype=np.float64)
        scores, title = None, f"{args.bench} ({args.split} split, {len(rows)} prompts)"
    else:
        prompts, weak, strong, scores = read_eval_file(args)
        title = f"{args.file.name} ({len(prompts)} prompts)"
    if float(np.mean(weak)) == float(np.mean(strong)):
        raise ScoringError("the weak and strong models have the same mean quality: APGR is undefined")
    name = args.score_column or args.policy
    if scores is None:
        head, _ = quality_head(args.policy, args.config)
        scores = score_prompts(head, prompts, encoder_for(head, args.threads))
    table = [router_metrics(name, scores, weak, strong), random_metrics(weak, strong),
             router_metrics("prompt length", length_scores(prompts), weak, strong),
             router_metrics("oracle", oracle_scores(weak, strong), weak, strong)]
    print(f"{title}: weak {np.mean(weak) * 100:.1f}, strong {np.mean(strong) * 100:.1f}")
    print(f"| {'method':<28} | APGR  | CPT(50%) | CPT(80%) |")
    print(f"|{'-' * 30}|-------|----------|----------|")
    for metrics in table:
        print(f"| {metrics.method:<28} | {metrics.apgr:.3f} | {metrics.cpt50:7.1f}% | {metrics.cpt80:7.1f}% |")
    plot_curves(table, float(np.mean(weak) * 100), float(np.mean(strong) * 100), title, args.plot)
    print(f"wrote {args.plot}")
    if args.json is not None:
        args.json.write_text(json.dumps({"title": title, "methods": [
            {"method": m.method, "apgr": m.apgr, "cpt50": m.cpt50, "cpt80": m.cpt80,
             "curve": [[p.strong_percentage, p.quality] for p in m.curve]} for m in table]}, indent=1) + "\n")
    return 0


def plot_curves(table: list[Any], weak: float, strong: float, title: str, path: Path) -> None:
    """Quality against % strong calls for each method, with the two models' levels dashed."""
    try:
        import matplotlib
    except ImportError:
        raise ScoringError("the plot needs matplotlib (pip install 'llm-router[train]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for metrics in table:
        points = sorted(metrics.curve, key=lambda point: point.strong_percentage)
        axes.plot([p.strong_percentage for p in points], [p.quality for p in points], marker=".",
                  label=f"{metrics.method} (APGR {metrics.apgr:.3f})")
    axes.axhline(weak, color="grey", linestyle="--", label=f"weak only ({weak:.1f})")
    axes.axhline(strong, color="red", linestyle="--", label=f"strong only ({strong:.1f})")
    axes.set_xlabel("strong model calls (%)")
    axes.set_ylabel("quality (%)")
    axes.set_title(title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
