"""``llm-router train`` on small sets: the Triton model directory, reproducibility, reports, bad input.

Each training run embeds a few hundred short texts with the packaged
all-MiniLM-L6-v2 (seconds); one embedding cache per module keeps repeated runs
from re-encoding.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("sentence_transformers")

from llm_router.training.train import (
    COMPLEXITY_LABELS,
    SCORE_NAMES,
    SCORE_WEIGHTS,
    TASK_LABELS,
    main,
    per_class_metrics,
)

SUBJECTS = ["the weather", "my cat", "a new job", "the weekend", "football", "cooking", "a trip to Rome", "music",
            "the garden", "a birthday", "my sister", "the gym", "a rainy day", "coffee", "the beach", "a movie"]
TEMPLATES = {
    "chat": ["hey, how are you? I wanted to tell you about {s}", "good morning! let's chat about {s}",
             "I'm bored, talk to me about {s}", "haha, you won't believe what happened with {s}"],
    "code": ["Write a Python function that sorts a list of {s} records", "Fix the bug in my JavaScript code for {s}",
             "Implement a SQL query that counts rows about {s}", "Write unit tests for the {s} parser class"],
    "math": ["What is {n} times {m}? It's for {s}", "Solve for x: {n}x + {m} = 0, a puzzle about {s}",
             "Calculate {n} percent of {m} for {s}", "If I have {n} apples and eat {m}, how many are left? ({s})"],
}


def make_rows(seed: int, per_class: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for label, templates in TEMPLATES.items():
        for _ in range(per_class):
            text = rng.choice(templates).format(s=rng.choice(SUBJECTS), n=rng.randint(2, 99), m=rng.randint(2, 99))
            rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...] = ("text", "label")) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(autouse=True)
def _built_encoder(encoder_env: Path) -> None:
    """Training embeds with the run-time ONNX encoder (int8 by default): the session's build, never the
    user's cache."""


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3-class set: 240 training rows, 60 held-out rows, as JSONL and CSV."""
    folder = tmp_path_factory.mktemp("small")
    train, heldout = make_rows(1, 80), make_rows(2, 20)
    return {"train": write_jsonl(folder / "train.jsonl", train),
            "heldout": write_jsonl(folder / "heldout.jsonl", heldout),
            "train_csv": write_csv(folder / "train.csv", train),
            "heldout_csv": write_csv(folder / "heldout.csv", heldout)}


def train(out: Path, cache_dir: Path, *args: str | Path) -> int:
    return main([*map(str, args), "--out", str(out), "--cache-dir", str(cache_dir), "--threads", "1", "--quiet"])


@pytest.fixture(scope="module")
def custom_model(small: dict[str, Path], cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "my_router"
    assert train(out, cache_dir, "--policy-type", "custom", "--data", small["train"],
                 "--heldout", small["heldout"]) == 0
    return out


def test_writes_a_triton_model_directory(custom_model: Path) -> None:
    config = (custom_model / "config.pbtxt").read_text()
    assert 'name: "my_router"' in config
    assert 'backend: "python"' in config
    assert "max_batch_size: 32" in config
    assert re.search(r"dynamic_batching \{\s*max_queue_delay_microseconds: 500\s*\}", config)
    assert re.search(r'name: "TEXT"\s*data_type: TYPE_STRING\s*dims: \[ 1 \]', config)
    assert re.search(r'name: "CATEGORY"\s*data_type: TYPE_STRING\s*dims: \[ 1 \]', config)
    assert re.search(r'name: "CONFIDENCES"\s*data_type: TYPE_FP32\s*dims: \[ 3 \]', config)
    assert "SCORES" not in config
    assert re.search(r"instance_group \[\s*\{\s*kind: KIND_CPU\s*count: 1\s*\}\s*\]", config)

    vocabulary = json.loads((custom_model / "1" / "vocabulary.json").read_text())
    terms = len(vocabulary["terms"])
    assert vocabulary["view"] == "lead" and 20 < terms < 200 and "python" in vocabulary["terms"]
    with np.load(custom_model / "1" / "head.npz") as head:
        assert sorted(head.files) == ["bias", "weight"]
        assert head["weight"].shape == (3, 384 + terms) and head["weight"].dtype == np.float32
        assert head["bias"].shape == (3,) and head["bias"].dtype == np.float32
    meta = json.loads((custom_model / "1" / "labels.json").read_text())
    assert meta == {"labels": ["chat", "code", "math"], "policy_type": "custom", "encoder": "all-MiniLM-L6-v2",
                    "encoder_variant": "int8", "views": ["lead"], "unknown_label": None}
    report = json.loads((custom_model / "report.json").read_text())
    assert report["data"]["train_rows"] == 240 and report["data"]["heldout_rows"] == 60
    assert report["heldout"]["accuracy"] > 0.9  # three easy classes
    assert {"load_s", "embed_s", "fit_s", "total_s"} <= set(report["timings_s"])
    assert (custom_model / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_numbers_follow_from_the_confusion_matrix(custom_model: Path) -> None:
    held = json.loads((custom_model / "report.json").read_text())["heldout"]
    matrix = np.array(held["confusion_matrix"]["rows_true_columns_predicted"])
    labels = held["confusion_matrix"]["labels"]
    assert matrix.sum() == held["rows"] == 60
    assert held["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum(), abs=1e-4)
    support = per_class_metrics(matrix)[3]
    for i, label in enumerate(labels):
        row = held["per_class"][label]
        tp = matrix[i, i]
        assert row["support"] == matrix[i].sum() == support[i]
        assert row["precision"] == pytest.approx(tp / matrix[:, i].sum() if matrix[:, i].sum() else 0, abs=1e-4)
        assert row["recall"] == pytest.approx(tp / matrix[i].sum(), abs=1e-4)
        p, r = row["precision"], row["recall"]
        assert row["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0, abs=2e-4)
    assert held["macro_f1"] == pytest.approx(np.mean([held["per_class"][label]["f1"] for label in labels]), abs=2e-4)


def test_same_seed_gives_identical_heads(custom_model: Path, small: dict[str, Path], cache_dir: Path,
                                         tmp_path: Path) -> None:
    again = tmp_path / "my_router"
    assert train(again, cache_dir, "--policy-type", "custom", "--data", small["train"],
                 "--heldout", small["heldout"]) == 0
    assert (again / "1" / "head.npz").read_bytes() == (custom_model / "1" / "head.npz").read_bytes()
    assert (again / "1" / "labels.json").read_text() == (custom_model / "1" / "labels.json").read_text()
    assert (again / "1" / "vocabulary.json").read_text() == (custom_model / "1" / "vocabulary.json").read_text()
    assert (again / "config.pbtxt").read_text() == (custom_model / "config.pbtxt").read_text()


def test_csv_and_jsonl_inputs_train_the_same_head(custom_model: Path, small: dict[str, Path], cache_dir: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "my_router"
    assert train(out, cache_dir, "--policy-type", "custom", "--data", small["train_csv"],
                 "--heldout", small["heldout_csv"]) == 0
    with np.load(out / "1" / "head.npz") as a, np.load(custom_model / "1" / "head.npz") as b:
        np.testing.assert_array_equal(a["weight"], b["weight"])
        np.testing.assert_array_equal(a["bias"], b["bias"])


def test_held_out_part_follows_the_sha256_rule_without_heldout(small: dict[str, Path], cache_dir: Path,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "split"
    assert train(out, cache_dir, "--policy-type", "custom", "--data", small["train"]) == 0
    data = json.loads((out / "report.json").read_text())["data"]
    assert data["heldout_from"] == "sha256 rule on --data"
    assert data["train_rows"] + data["heldout_rows"] == 240
    assert 20 <= data["heldout_rows"] <= 80  # about a fifth


def test_custom_columns_and_groups(tmp_path: Path, cache_dir: Path) -> None:
    rows = [{"query": r["text"], "intent": r["label"]} for r in make_rows(3, 60)]
    data = write_csv(tmp_path / "intents.csv", rows, ("query", "intent"))
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"chat": "talk", "code": "work", "math": "work"}))
    out = tmp_path / "intent_router"
    assert train(out, cache_dir, "--policy-type", "custom", "--data", data, "--text-column", "query",
                 "--label-column", "intent", "--groups", groups) == 0
    meta = json.loads((out / "1" / "labels.json").read_text())
    assert meta["groups"] == {"chat": "talk", "code": "work", "math": "work"}
    held = json.loads((out / "report.json").read_text())["heldout"]
    assert held["groups"]["accuracy"] >= held["accuracy"]  # a group is right whenever its intent is


def test_complexity_head_has_score_outputs(tmp_path: Path, cache_dir: Path) -> None:
    rng = random.Random(4)
    rows = []
    for label, kind in (("Creativity", "chat"), ("Reasoning", "math"), ("Domain-Knowledge", "code")):
        for row in make_rows(5, 50):
            if row["label"] == kind:
                scores = {name: round(rng.random(), 2) for name in SCORE_NAMES}
                rows.append({"text": row["text"], "label": label, "scores": scores})
    for subject in SUBJECTS[:12]:  # no scores: these get the class's default profile
        text = f"Write a poem about {subject} in exactly ten words, all lowercase."
        rows.append({"text": text, "label": "Constraint"})
    out = tmp_path / "complexity_router"
    data = write_jsonl(tmp_path / "c.jsonl", rows)
    assert train(out, cache_dir, "--policy-type", "complexity", "--data", data) == 0
    config = (out / "config.pbtxt").read_text()
    assert re.search(r'name: "SCORES"\s*data_type: TYPE_FP32\s*dims: \[ 7 \]', config)
    meta = json.loads((out / "1" / "labels.json").read_text())
    assert meta["labels"] == [label for label in COMPLEXITY_LABELS if label in {r["label"] for r in rows}]
    assert meta["score_names"] == SCORE_NAMES and meta["score_weights"] == SCORE_WEIGHTS
    assert meta["unknown_label"] is None
    with np.load(out / "1" / "head.npz") as head:
        assert head["score_weight"].shape == (6, head["weight"].shape[1]) and head["score_bias"].shape == (6,)
        assert head["score_weight"].dtype == np.float32
    assert set(json.loads((out / "report.json").read_text())["scores"]) == {*SCORE_NAMES, "overall"}


def test_task_policy_uses_the_builtin_label_order(tmp_path: Path, cache_dir: Path) -> None:
    names = {"chat": "Chatbot", "code": "Code Generation", "math": "Other"}
    rows = [{"text": r["text"], "label": names[r["label"]]} for r in make_rows(6, 60)]
    out = tmp_path / "task_router"
    assert train(out, cache_dir, "--policy-type", "task", "--data", write_jsonl(tmp_path / "t.jsonl", rows)) == 0
    meta = json.loads((out / "1" / "labels.json").read_text())
    assert meta["labels"] == ["Chatbot", "Code Generation", "Other"]  # TASK_LABELS order
    assert meta["unknown_label"] == "Unknown"
    assert 0 < meta["unknown_threshold"] < 1


def test_two_views_fp32_and_no_lexicon(small: dict[str, Path], cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "two_views"
    (out / "1").mkdir(parents=True)
    (out / "1" / "vocabulary.json").write_text("{}")  # left from an earlier training with a lexicon
    assert train(out, cache_dir, "--policy-type", "custom", "--data", small["train"], "--heldout", small["heldout"],
                 "--views", "full,lead", "--lexical", "none", "--encoder-variant", "fp32") == 0
    with np.load(out / "1" / "head.npz") as head:
        assert head["weight"].shape == (3, 768)
    meta = json.loads((out / "1" / "labels.json").read_text())
    assert meta["views"] == ["full", "lead"] and meta["encoder_variant"] == "fp32"
    assert not (out / "1" / "vocabulary.json").exists()
    assert json.loads((out / "report.json").read_text())["head"]["lexicon"] is None


async def test_a_trained_model_serves_embedded_with_the_decisions_of_its_report(custom_model: Path,
                                                                               small: dict[str, Path]) -> None:
    """The run time (views, lexicon, int8 encoder) reproduces what training evaluated: the same held-out
    predictions, row for row, as the report's confusion matrix."""
    from llm_router.proxy.classifiers import ClassifierInput
    from llm_router.proxy.conversation import Turn
    from llm_router.proxy.model_classifier import EmbeddedRuntime, ModelClassifier, load_head

    head = load_head(custom_model.parent, custom_model.name)
    runtime = EmbeddedRuntime(variant=head.encoder_variant)
    rows = [json.loads(line) for line in small["heldout"].read_text().splitlines()]
    try:
        results = [await ModelClassifier(head, runtime).classify(ClassifierInput([Turn("user", row["text"])], {}))
                   for row in rows]
    finally:
        await runtime.aclose()
    matrix = np.zeros((3, 3), dtype=int)
    for row, result in zip(rows, results, strict=True):
        matrix[head.labels.index(row["label"]), head.labels.index(result.category)] += 1
    report = json.loads((custom_model / "report.json").read_text())
    assert matrix.tolist() == report["heldout"]["confusion_matrix"]["rows_true_columns_predicted"]


BAD_INPUT = [
    # name, file name, content, extra args, expected message fragment
    ("empty file", "empty.jsonl", "", (), "the file is empty"),
    ("header only", "header.csv", "text,label\n", (), "a header but no rows"),
    ("missing label column", "nolabel.csv", "text,category\nhello,a\n", (), "missing column(s) 'label'"),
    ("missing text column", "notext.jsonl", '{"prompt": "hi", "label": "a"}\n', (), "missing column(s) 'text'"),
    ("one class only", "one.jsonl", "".join(json.dumps({"text": f"hello {i}", "label": "a"}) + "\n" for i in range(50)),
     ("--heldout", "__SELF__"), "need at least two labels"),
    ("not json", "bad.jsonl", '{"text": "a", "label": "x"}\nnot json\n', (), "bad.jsonl:2: not a JSON object per line"),
    ("unknown extension", "data.parquet", "x", (), "unsupported file type .parquet"),
    ("empty text", "blank.jsonl", '{"text": "  ", "label": "a"}\n{"text": "b", "label": "c"}\n', (),
     "row 1 has an empty text"),
    ("task label outside the task classes", "task.jsonl",
     '{"text": "a", "label": "Chatbot"}\n{"text": "b", "label": "Banking"}\n',
     ("--policy-type", "task", "--heldout", "__SELF__"),
     "use --policy-type custom"),
    ("bad views", "v.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n', ("--views", "middle"),
     "expected distinct views from full, lead"),
]


@pytest.mark.parametrize(("name", "filename", "content", "extra", "message"), BAD_INPUT,
                         ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_one_clear_error(name: str, filename: str, content: str, extra: tuple[str, ...], message: str,
                                      tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / filename
    path.write_text(content)
    extra = tuple(str(path) if arg == "__SELF__" else arg for arg in extra)
    policy = () if "--policy-type" in extra else ("--policy-type", "custom")
    assert train(tmp_path / "out", cache_dir, *policy, "--data", path, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("llm-router train: error: ") and message in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_missing_file_is_a_clear_error(tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train(tmp_path / "out", cache_dir, "--policy-type", "custom", "--data", tmp_path / "nope.csv") == 2
    assert "nope.csv: no such file" in capsys.readouterr().err


def test_builtin_label_lists_match_the_issue() -> None:
    assert TASK_LABELS == ["Brainstorming", "Chatbot", "Classification", "Closed QA", "Code Generation", "Extraction",
                           "Open QA", "Other", "Rewrite", "Summarization", "Text Generation"]
    assert COMPLEXITY_LABELS == ["Creativity", "Reasoning", "Contextual-Knowledge", "Few-Shot", "Domain-Knowledge",
                                 "No-Label-Reason", "Constraint"]
    assert sum(SCORE_WEIGHTS.values()) == pytest.approx(1.0)
