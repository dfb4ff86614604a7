"""Cost-quality routing measured RouteLLM's way on the test splits of MMLU and GSM8K.

Runs ``llm-router eval quality --bench <bench> --split test`` for both benchmarks
(the committed ``triton_models/quality_router`` scored through the run-time int8
encoder, beside random, prompt-length and oracle routers), writes each plot and
table JSON into ``--out``, and prints one Markdown table. Nothing here was seen in
training: the model is trained on the train split only (``training/quality.py``).

    .venv/bin/python bench/quality.py --out bench/results
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llm_router.proxy.cli import main as cli

PUBLISHED = {"mmlu": "RouteLLM best published: APGR 0.603, CPT(50%) 35.4, CPT(80%) 71.4",
             "gsm8k": "RouteLLM best published: APGR 0.622, CPT(50%) 33.6, CPT(80%) 63.3"}


def run(out: Path, policy: str, threads: int) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| bench | method | APGR | CPT(50%) | CPT(80%) |", "|---|---|---|---|---|"]
    for bench in ("mmlu", "gsm8k"):
        table = out / f"quality_{bench}.json"
        status = cli(["eval", "quality", "--bench", bench, "--split", "test", "--policy", policy, "--threads",
                      str(threads), "--plot", str(out / f"quality_{bench}.png"), "--json", str(table)])
        if status != 0:
            raise SystemExit(status)
        for method in json.loads(table.read_text())["methods"]:
            lines.append(f"| {bench} | {method['method']} | {method['apgr']:.3f} | {method['cpt50']:.1f}% | "
                         f"{method['cpt80']:.1f}% |")
    lines += ["", *(f"- {bench}: {text}" for bench, text in PUBLISHED.items())]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--policy", default="quality_router")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print("\n".join(run(args.out, args.policy, args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
