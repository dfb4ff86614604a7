"""The RouteLLM outcomes in ``../shared/data/routellm``: prompts with the weak and strong model's correctness.

Rows are read as RouteLLM's evaluation reads them: contaminated prompts
(``contaminated_prompts.jsonl``, field ``eval_prompt``) are dropped first, then
the split rule of the data README applies: a prompt is in the **test** split when
the first byte of ``sha256(prompt.encode("utf-8"))`` is divisible by 5, else in
the **train** split. Training only ever sees the train split.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BENCHES = ("mmlu", "gsm8k")
WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_MODEL = "gpt-4-1106-preview"
Split = Literal["train", "test", "all"]
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "routellm"
"""``../shared/data/routellm`` relative to the project root (where the shared data lives)."""


class OutcomeDataError(ValueError):
    """Missing or malformed outcome files, said in one line."""


@dataclass(frozen=True)
class Outcome:
    """One benchmark prompt and whether each model answered it correctly."""

    prompt: str
    weak: bool
    strong: bool
    bench: str
    source: str
    """The file it came from (for MMLU: the subject)."""

    @property
    def strong_needed(self) -> bool:
        return self.strong and not self.weak


def in_test_split(prompt: str) -> bool:
    """The data README's rule: test when sha256(prompt)[0] % 5 == 0."""
    return hashlib.sha256(prompt.encode("utf-8")).digest()[0] % 5 == 0


def _truth(value: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "1.0"):
        return True
    if lowered in ("false", "0", "0.0"):
        return False
    raise OutcomeDataError(f"{where}: expected True/False, got {value!r}")


def _contaminated(folder: Path) -> set[str]:
    path = folder / "contaminated_prompts.jsonl"
    if not path.is_file():
        return set()
    prompts = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            prompts.add(json.loads(line)["eval_prompt"])
    return prompts


def load_outcomes(bench: str, split: Split = "all", data_dir: Path = DEFAULT_DATA_DIR) -> list[Outcome]:
    """The rows of one benchmark, contaminated prompts dropped, restricted to ``split``."""
    if bench not in BENCHES:
        raise OutcomeDataError(f"unknown bench {bench!r}; benches: {', '.join(BENCHES)}")
    folder = data_dir / bench
    files = sorted(folder.glob("mmlu_*.csv")) if bench == "mmlu" else [folder / "gsm8k_responses.csv"]
    files = [path for path in files if path.is_file()]
    if not files:
        raise OutcomeDataError(f"no outcome files for {bench} in {folder} (expected the RouteLLM data there)")
    dropped = _contaminated(folder)
    rows: list[Outcome] = []
    for path in files:
        with path.open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                prompt = row.get("prompt")
                if prompt is None or WEAK_MODEL not in row or STRONG_MODEL not in row:
                    raise OutcomeDataError(f"{path}: needs columns prompt, {WEAK_MODEL}, {STRONG_MODEL}")
                if prompt in dropped:
                    continue
                if split != "all" and in_test_split(prompt) != (split == "test"):
                    continue
                where = f"{path}:{number}"
                source = path.stem.removeprefix("mmlu_") if bench == "mmlu" else bench
                rows.append(Outcome(prompt, _truth(row[WEAK_MODEL], where), _truth(row[STRONG_MODEL], where),
                                    bench, source))
    return rows
