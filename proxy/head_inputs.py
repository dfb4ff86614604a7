"""What a trained head reads: sentence embeddings of "views" of the classifier text, and lexical features.

A head's input vector is, in this order:

1. one encoder embedding per *view* named in its ``labels.json`` (``"views"``), side by side;
2. when it has a lexicon (``vocabulary.json``), the TF-IDF vector of the lexicon's view over its terms.

Views:

- ``full``: the classifier text itself (``conversation.classifier_text``: latest user
  turn first, then the system prompt, then earlier turns; at most the encoder's
  256 tokens count);
- ``lead``: its first 16 and last 8 words. A sentence encoder mean-pools over all
  tokens, so in "Summarize this: <two hundred words of article>" the instruction is
  a few percent of the ``full`` vector; the lead view is mostly instruction, and it
  costs the encoder about 30 tokens however long the conversation is.

Lexical features are what tells "summarize" from "extract" from "rewrite" most
directly: words of two or more letters, lower-cased, weighted ``(1 + ln tf) * idf``,
the row L2-normalised. The training command fits the lexicon (terms seen in at
least two training texts) and writes it beside the head.

Training, the embedded classifier and the Triton backend all compute inputs with
these functions, so the three agree exactly. Measured on the task router's held-out
set (training/data/README.md): full-text embedding alone, macro-F1 0.77; lead-view
embedding plus lead-view lexicon, 0.91.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VIEWS = ("full", "lead")
LEAD_HEAD_WORDS = 16
LEAD_TAIL_WORDS = 8
VOCABULARY_FILE = "vocabulary.json"
TERM_PATTERN = re.compile(r"\b\w\w+\b")
"""Words of two or more word characters (Unicode), matched in the lower-cased text."""


def lead_view(text: str) -> str:
    """The first 16 and last 8 whitespace-separated words joined by `` ... ``; short texts unchanged."""
    words = text.split()
    if len(words) <= LEAD_HEAD_WORDS + LEAD_TAIL_WORDS:
        return text
    return " ".join(words[:LEAD_HEAD_WORDS]) + " ... " + " ".join(words[-LEAD_TAIL_WORDS:])


def view_text(text: str, view: str) -> str:
    if view == "full":
        return text
    if view == "lead":
        return lead_view(text)
    raise ValueError(f"unknown view {view!r}; views: {list(VIEWS)}")


def view_texts(text: str, views: Sequence[str]) -> list[str]:
    """The texts to encode for one classifier text, in the head's input order."""
    return [view_text(text, view) for view in views]


def terms(text: str) -> list[str]:
    return TERM_PATTERN.findall(text.lower())


@dataclass(frozen=True)
class Lexicon:
    """Terms and their inverse document frequencies: a TF-IDF vectoriser fixed at training time."""

    view: str
    index: dict[str, int]
    idf: np.ndarray
    """(V,) float32, in ``index`` order."""

    @property
    def size(self) -> int:
        return len(self.index)

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """(N, V) float32: each text's view, ``(1 + ln tf) * idf`` per known term, rows L2-normalised."""
        out = np.zeros((len(texts), self.size), dtype=np.float32)
        for row, text in enumerate(texts):
            counts = Counter(term for term in terms(view_text(text, self.view)) if term in self.index)
            if not counts:
                continue
            columns = np.fromiter((self.index[term] for term in counts), dtype=np.int64, count=len(counts))
            values = np.fromiter((1.0 + math.log(count) for count in counts.values()), dtype=np.float32,
                                 count=len(counts)) * self.idf[columns]
            out[row, columns] = values / np.float32(np.linalg.norm(values))
        return out

    def to_json(self) -> dict[str, Any]:
        ordered = sorted(self.index, key=self.index.__getitem__)
        return {"view": self.view, "term_pattern": TERM_PATTERN.pattern, "lowercase": True,
                "weighting": "(1 + ln tf) * idf, rows L2-normalised", "terms": ordered,
                "idf": [float(value) for value in self.idf]}

    @classmethod
    def from_json(cls, data: Any) -> Lexicon:
        """Raises ``ValueError`` naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        view, words, idf = data.get("view"), data.get("terms"), data.get("idf")
        if view not in VIEWS:
            raise ValueError(f"\"view\" must be one of {list(VIEWS)}, got {view!r}")
        if data.get("term_pattern", TERM_PATTERN.pattern) != TERM_PATTERN.pattern:
            raise ValueError(f"term_pattern {data.get('term_pattern')!r} differs from this proxy's "
                             f"{TERM_PATTERN.pattern!r}")
        if not (isinstance(words, list) and isinstance(idf, list) and len(words) == len(idf) and words
                and all(isinstance(word, str) for word in words)):
            raise ValueError("\"terms\" and \"idf\" must be lists of equal, non-zero length")
        if len(set(words)) != len(words):
            raise ValueError("\"terms\" has duplicates")
        return cls(view, {word: i for i, word in enumerate(words)}, np.asarray(idf, dtype=np.float32))

    def write(self, directory: Path) -> None:
        (directory / VOCABULARY_FILE).write_text(json.dumps(self.to_json(), ensure_ascii=False) + "\n",
                                                 encoding="utf-8")


def fit_lexicon(texts: Iterable[str], view: str, min_df: int = 2, max_terms: int = 50_000) -> Lexicon:
    """Terms occurring in at least ``min_df`` of the texts' views (the ``max_terms`` most frequent),
    in alphabetical order, with smoothed idf ``ln((1 + n) / (1 + df)) + 1``."""
    document_frequency: Counter[str] = Counter()
    count = 0
    for text in texts:
        document_frequency.update(set(terms(view_text(text, view))))
        count += 1
    frequent = sorted((term for term, df in document_frequency.items() if df >= min_df),
                      key=lambda term: (-document_frequency[term], term))[:max_terms]
    if not frequent:
        raise ValueError(f"no term occurs in {min_df} or more texts: too few texts for lexical features")
    chosen = sorted(frequent)
    idf = np.array([math.log((1 + count) / (1 + document_frequency[term])) + 1.0 for term in chosen],
                   dtype=np.float32)
    return Lexicon(view, {term: i for i, term in enumerate(chosen)}, idf)
