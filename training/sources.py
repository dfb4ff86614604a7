"""Read-only access to the shared public data, and references into it.

The built label files in ``training/data/`` never copy shared text: a row
stores its own (templated or hand-written) text with ``{{0}}``, ``{{1}}``...
placeholders and a ``refs`` list naming the shared fields that fill them, as
``source:key:field`` (``dolly:12:context``, ``mmlu_anatomy:3:prompt``). Keys are
0-based row numbers in the source file, so a reference stays valid as long as
the file does; ``manifest.json`` records each file's sha256 so a changed file
is reported instead of silently resolving to other text.

The held-out rule is the data README's: a prompt is held out when the first
byte of ``sha256(prompt.encode("utf-8"))`` is divisible by 5.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from llm_router.proxy.encoder import sha256_file

PLACEHOLDER = re.compile(r"\{\{(\d+)\}\}")

# Source name -> file under the shared data directory.
FILES: dict[str, str] = {
    "dolly": "dolly/dolly-sample.jsonl",
    "mbpp": "code/mbpp.jsonl",
    "humaneval": "code/HumanEval.jsonl.gz",
    "gsm8k": "gsm8k/train.jsonl",
    "routellm_gsm8k": "routellm/gsm8k/gsm8k_responses.csv",
    "banking77_train": "banking77/train.csv",
    "banking77_test": "banking77/test.csv",
}
MMLU_DIR = "routellm/mmlu"
CONTAMINATED = ("routellm/mmlu/contaminated_prompts.jsonl", "routellm/gsm8k/contaminated_prompts.jsonl")


class DataError(Exception):
    """Input data is missing, malformed or does not match what was built."""


def is_heldout(prompt: str) -> bool:
    """The shared data's split rule: about 20% of prompts are held out."""
    return hashlib.sha256(prompt.encode("utf-8")).digest()[0] % 5 == 0



@dataclass
class SharedData:
    """Lazily loaded rows of every shared source, addressed by ``source:key:field``."""

    root: Path
    _rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise DataError(f"shared data directory not found: {self.root} (pass --shared-data)")

    def path(self, source: str) -> Path:
        if source.startswith("mmlu_"):
            return self.root / MMLU_DIR / f"{source}.csv"
        try:
            return self.root / FILES[source]
        except KeyError:
            raise DataError(f"unknown shared source {source!r}") from None

    def rows(self, source: str) -> list[dict[str, Any]]:
        if source not in self._rows:
            path = self.path(source)
            if not path.is_file():
                raise DataError(f"shared data file missing: {path}")
            self._rows[source] = list(_read_any(path))
        return self._rows[source]

    def get(self, ref: str) -> str:
        """The text a reference names."""
        try:
            source, key, name = ref.split(":")
            value = self.rows(source)[int(key)][name]
        except (ValueError, IndexError, KeyError):
            raise DataError(f"bad or dangling reference {ref!r}") from None
        if not isinstance(value, str):
            raise DataError(f"reference {ref!r} is not text")
        return value

    @cached_property
    def mmlu_sources(self) -> list[str]:
        return sorted(path.stem for path in (self.root / MMLU_DIR).glob("mmlu_*.csv"))

    @cached_property
    def contaminated(self) -> frozenset[str]:
        """Prompts RouteLLM drops before evaluating; we drop them everywhere."""
        prompts: set[str] = set()
        for name in CONTAMINATED:
            path = self.root / name
            if path.is_file():
                prompts.update(row["eval_prompt"] for row in _read_any(path))
        return frozenset(prompts)

    def checksums(self, sources: Iterable[str]) -> dict[str, str]:
        return {str(self.path(s).relative_to(self.root)): sha256_file(self.path(s)) for s in sorted(set(sources))}

    def resolve(self, text: str, refs: list[str]) -> str:
        """Fill ``{{i}}`` placeholders in one pass (shared text is never re-scanned)."""
        def fill(match: re.Match[str]) -> str:
            index = int(match.group(1))
            if index >= len(refs):
                raise DataError(f"placeholder {{{{{index}}}}} has no reference in {refs}")
            return self.get(refs[index])

        return PLACEHOLDER.sub(fill, text)


def verify_manifest(shared: SharedData, manifest_path: Path) -> None:
    """Refuse to resolve references against shared files that changed since the build."""
    if not manifest_path.is_file():
        return
    recorded: dict[str, str] = json.loads(manifest_path.read_text())["shared_files"]
    for relative, checksum in recorded.items():
        path = shared.root / relative
        if not path.is_file():
            raise DataError(f"shared data file missing: {path}")
        if sha256_file(path) != checksum:
            raise DataError(f"{path} changed since the label files were built (sha256 differs); rebuild them")


def _read_any(path: Path) -> Iterator[dict[str, Any]]:
    name = path.name
    if name.endswith(".jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            yield from (json.loads(line) for line in handle if line.strip())
    elif name.endswith(".jsonl"):
        with path.open(encoding="utf-8") as handle:
            yield from (json.loads(line) for line in handle if line.strip())
    elif name.endswith(".csv"):
        with path.open(encoding="utf-8", newline="") as handle:
            yield from csv.DictReader(handle)
    else:
        raise DataError(f"unsupported file type: {path}")
