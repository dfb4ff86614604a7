"""How far can a router see GSM8K difficulty from the prompt? The evidence behind the missed GSM8K target.

Everything is chosen on the **train split** (1,057 prompts) by cross-validation;
the test split (250 prompts) is scored once, at the end, with the variant the
cross-validation liked best. Prints three Markdown tables:

1. single cues on the train split (no fitting): prompt length, numbers, sentences,
   and the length of GPT-4's own answer, a difficulty measure no router can see;
2. GSM8K-only models, 5-fold cross-validation repeated 4 times on the train split:
   the int8 encoder's embeddings (lead + full view, standardised), arithmetic-load
   features (counts of numbers, number words, fractions, percentages, sentences,
   words and cue words), both, and the rank average of the two;
3. the best of (2) fitted on the whole train split and scored on the test split,
   beside prompt length.

    .venv/bin/python bench/gsm8k_study.py     # ~1 min with cached embeddings

The served ``quality_router`` is trained on MMLU and GSM8K together
(``training/quality.py``); this study asks what a GSM8K specialist could reach.
"""

from __future__ import annotations

import csv
import re
import statistics
from collections.abc import Callable

import numpy as np
from llm_router.proxy.head_inputs import view_text
from llm_router.training.embed import EmbeddingCache, default_cache_dir, embed_texts, load_embedder
from llm_router.training.quality import targets
from llm_router.training.quality_metrics import length_scores, router_metrics
from llm_router.training.routellm import DEFAULT_DATA_DIR, STRONG_MODEL, Outcome, load_outcomes
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
NUMBER_WORDS = re.compile(r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
                          r"thirty|forty|fifty|hundred|thousand|million|dozen|half|twice|triple|double|quarter|"
                          r"third|fourth|fifth)\b")
SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
CUE_WORDS = ("percent", "%", "/", ".", "$", "average", "ratio", "each", "per", "every", "more than", "less than",
             "times", "left", "remain", "rest", "total", "profit", "how much", "how many", "hour", "minute", "week",
             "month", "year", "discount", "interest", "speed", "mile", "fraction", "if", "after", "then", "instead",
             "than")
EMBEDDING_C, FEATURE_C = 0.001, 0.01
"""Regularisation of the two specialists (the best of 0.001-1 in the same cross-validation)."""


def arithmetic_load(prompt: str) -> list[float]:
    """How much arithmetic a word problem asks for, as the prompt shows it."""
    lowered = prompt.lower()
    numbers = NUMBER.findall(prompt)
    values = [float(number.replace(",", "")) for number in numbers]
    words = lowered.split()
    return [len(numbers), len(set(numbers)), len(NUMBER_WORDS.findall(lowered)),
            max((len(number) for number in numbers), default=0), float(np.log1p(max(values, default=0.0))),
            sum("." in number for number in numbers), len(re.findall(r"\d+/\d+", prompt)),
            prompt.count("%") + lowered.count("percent"), len(SENTENCE_END.findall(prompt)),
            float(np.log(len(words) + 1)), prompt.count("$"), *(lowered.count(cue) for cue in CUE_WORDS)]


def apgr(rows: list[Outcome], scores: np.ndarray) -> float:
    weak = np.array([row.weak for row in rows], dtype=np.float64)
    strong = np.array([row.strong for row in rows], dtype=np.float64)
    return router_metrics("study", np.asarray(scores, dtype=np.float64), weak, strong).apgr


def strong_win_rate(x_train: np.ndarray, y_train: np.ndarray, x_score: np.ndarray, c: float) -> np.ndarray:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(x_train, y_train)
    probabilities = model.predict_proba(x_score)
    return probabilities[:, 2] + probabilities[:, 1] / 2


Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def specialists(embeddings: np.ndarray, features: np.ndarray, y: np.ndarray) -> dict[str, Scorer]:
    """Each specialist as a function (train indexes, score indexes) -> scores."""
    def embedding(train: np.ndarray, score: np.ndarray) -> np.ndarray:
        return strong_win_rate(embeddings[train], y[train], embeddings[score], EMBEDDING_C)

    def arithmetic(train: np.ndarray, score: np.ndarray) -> np.ndarray:
        return strong_win_rate(features[train], y[train], features[score], FEATURE_C)

    both_inputs = np.hstack([embeddings, features])

    def both(train: np.ndarray, score: np.ndarray) -> np.ndarray:
        return strong_win_rate(both_inputs[train], y[train], both_inputs[score], EMBEDDING_C)

    def rank_average(train: np.ndarray, score: np.ndarray) -> np.ndarray:
        return rankdata(embedding(train, score)) + rankdata(arithmetic(train, score))

    return {"embeddings": embedding, "arithmetic-load features": arithmetic, "embeddings + features": both,
            "rank average of the two": rank_average}


def main() -> int:
    train, test = load_outcomes("gsm8k", "train"), load_outcomes("gsm8k", "test")
    rows = train + test
    embedder = load_embedder(threads=2, variant="int8")
    cache = EmbeddingCache(default_cache_dir())
    embeddings = np.hstack([embed_texts([view_text(row.prompt, view) for row in rows], embedder, cache, 64, False,
                                        view) for view in ("lead", "full")])
    features = np.array([arithmetic_load(row.prompt) for row in rows], dtype=np.float64)
    y = targets(rows)
    train_index, test_index = np.arange(len(train)), np.arange(len(train), len(rows))

    with (DEFAULT_DATA_DIR / "gsm8k" / "gsm8k_responses.csv").open(encoding="utf-8", newline="") as handle:
        answers = {row["prompt"]: row[f"{STRONG_MODEL}_response"] for row in csv.DictReader(handle)}
    tie_break = 1e-6 * np.arange(len(train))  # distinct quantiles for integer counts
    cues = {"prompt length (characters)": length_scores([row.prompt for row in train]),
            "numbers in the prompt": features[train_index, 0] + tie_break,
            "number words": features[train_index, 2] + tie_break,
            "largest number (log)": features[train_index, 4] + tie_break,
            "sentences": features[train_index, 8] + tie_break,
            "length of GPT-4's answer (not visible to a router)":
                np.array([len(answers[row.prompt]) for row in train], dtype=np.float64)}
    print(f"## 1. Single cues, GSM8K train split ({len(train)} prompts)\n\n| cue | APGR |\n|---|---|")
    for name, scores in cues.items():
        print(f"| {name} | {apgr(train, scores):.3f} |")

    models = specialists(embeddings, features, y)
    print("\n## 2. GSM8K-only models, 5-fold cross-validation x 4 on the train split\n\n"
          "| model | APGR mean | spread |\n|---|---|---|")
    cross_validated: dict[str, float] = {}
    for name, scorer in models.items():
        results = []
        for repeat in range(4):
            scores = np.zeros(len(train))
            for fit, held in StratifiedKFold(5, shuffle=True, random_state=repeat).split(train_index,
                                                                                        y[train_index]):
                scores[held] = scorer(train_index[fit], train_index[held])
            results.append(apgr(train, scores))
        cross_validated[name] = statistics.mean(results)
        print(f"| {name} | {cross_validated[name]:.3f} | {statistics.pstdev(results):.3f} |")

    best = max(cross_validated, key=cross_validated.__getitem__)
    print(f"\n## 3. Test split ({len(test)} prompts), scored once\n\n| router | APGR |\n|---|---|")
    print(f"| {best} (best in 2), fitted on the whole train split | "
          f"{apgr(test, models[best](train_index, test_index)):.3f} |")
    print(f"| prompt length | {apgr(test, length_scores([row.prompt for row in test])):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
