"""The built label sets and the committed models: current, honest about what is held out, consistent.

Tests that read the shared data skip when ``../shared/data`` is not beside
the repository (CI has it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from llm_router.proxy.head_inputs import VOCABULARY_FILE, Lexicon
from llm_router.training import build_datasets as bd
from llm_router.training.sources import DataError, SharedData, is_heldout, sha256_file, verify_manifest
from llm_router.training.templates import FILLERS, TEMPLATES
from llm_router.training.train import COMPLEXITY_LABELS, SCORE_NAMES, TASK_LABELS

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "training" / "data"
SHARED = ROOT.parent / "shared" / "data"
MODELS = ROOT / "triton_models"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the repository")


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def shared() -> SharedData:
    return SharedData(SHARED)


@needs_shared
def test_committed_label_files_are_what_the_builder_writes(tmp_path: Path) -> None:
    bd.build(SHARED, tmp_path, seed=0)
    for path in sorted(tmp_path.iterdir()):
        assert path.read_bytes() == (DATA / path.name).read_bytes(), f"{path.name} is stale: rebuild the data"


@needs_shared
@pytest.mark.parametrize("kind", ["task", "complexity"])
def test_no_held_out_prompt_is_trained_on(kind: str, shared: SharedData) -> None:
    trained = {shared.resolve(r["text"], r.get("refs", [])) for r in rows(f"{kind}_train")}
    trained |= {shared.resolve(r["text"], r.get("refs", [])) for other in ("task", "complexity")
                for r in rows(f"{other}_train")}
    held = [shared.resolve(r["text"], r.get("refs", [])) for r in rows(f"{kind}_heldout")]
    assert not [text for text in held if text in trained]


@needs_shared
@pytest.mark.parametrize("kind", ["task", "complexity"])
def test_held_out_rows_come_from_held_out_sources_templates_and_fillers(kind: str, shared: SharedData) -> None:
    for split, wanted in (("train", False), ("heldout", True)):
        for row in rows(f"{kind}_{split}"):
            for ref in row.get("refs", []):
                source, index, _ = ref.split(":")
                if source in ("humaneval", "routellm_gsm8k", "banking77_test"):
                    assert wanted, f"{ref} (a held-out-only source) in {kind}_{split}"
                elif source in ("gsm8k", "banking77_train"):
                    assert not wanted, f"{ref} (a training-only source) in {kind}_{split}"
                elif source == "dolly":
                    assert is_heldout(shared.rows("dolly")[int(index)]["instruction"]) == wanted, ref
                elif source == "mbpp":
                    assert is_heldout(shared.rows("mbpp")[int(index)]["text"]) == wanted, ref
                elif source.startswith("mmlu_"):
                    assert is_heldout(shared.rows(source)[int(index)]["prompt"]) == wanted, ref
            match = re.fullmatch(r"template/(\w+)/(\d+)", row["group"])
            if match:
                assert is_heldout(TEMPLATES[match.group(1)][int(match.group(2))]) == wanted, row


def test_every_template_kind_and_filler_list_has_both_pools() -> None:
    for name, items in [*TEMPLATES.items(), *FILLERS.items()]:
        held = sum(map(is_heldout, items))
        assert 0 < held < len(items), name


@needs_shared
def test_sets_cover_every_class_in_both_splits() -> None:
    manifest = json.loads((DATA / "manifest.json").read_text())
    for kind, labels in (("task", TASK_LABELS), ("complexity", COMPLEXITY_LABELS)):
        for split in ("train", "heldout"):
            counts = manifest["sets"][f"{kind}_{split}"]["labels"]
            assert set(counts) == set(labels)
            assert min(counts.values()) >= (300 if split == "train" else 40), (kind, split, counts)
    for path in DATA.glob("*.jsonl"):
        assert path.stat().st_size < 3_000_000  # references, not copies


@needs_shared
def test_complexity_rows_carry_scores_in_range() -> None:
    for split in ("train", "heldout"):
        for row in rows(f"complexity_{split}"):
            assert list(row["scores"]) == SCORE_NAMES
            assert all(0.0 <= value <= 1.0 for value in row["scores"].values())


@needs_shared
def test_banking77_groups_cover_all_77_intents_in_10_routes() -> None:
    groups = json.loads((DATA / "banking77_groups.json").read_text())
    categories = json.loads((SHARED / "banking77" / "categories.json").read_text())
    assert sorted(groups) == sorted(categories) and len(groups) == 77
    assert len(set(groups.values())) == 10


def test_references_resolve_and_changed_shared_files_are_refused(tmp_path: Path) -> None:
    dolly = tmp_path / "dolly"
    dolly.mkdir()
    line = {"instruction": "Summarize {{0}} literally", "context": "Ctx {{1}}", "response": "r", "category": "x"}
    (dolly / "dolly-sample.jsonl").write_text(json.dumps(line) + "\n")
    shared = SharedData(tmp_path)
    # Shared text is inserted once, never re-scanned for placeholders.
    assert shared.resolve("A: {{0}}\n\n{{1}}", ["dolly:0:instruction", "dolly:0:context"]) == \
        "A: Summarize {{0}} literally\n\nCtx {{1}}"
    with pytest.raises(DataError, match="bad or dangling reference"):
        shared.resolve("{{0}}", ["dolly:5:instruction"])
    with pytest.raises(DataError, match="has no reference"):
        shared.resolve("{{1}}", ["dolly:0:instruction"])
    manifest = tmp_path / "manifest.json"
    checksum = sha256_file(dolly / "dolly-sample.jsonl")
    manifest.write_text(json.dumps({"shared_files": {"dolly/dolly-sample.jsonl": checksum}}))
    verify_manifest(shared, manifest)
    (dolly / "dolly-sample.jsonl").write_text(json.dumps({**line, "context": "changed"}) + "\n")
    with pytest.raises(DataError, match="changed since the label files were built"):
        verify_manifest(shared, manifest)


@pytest.mark.parametrize(("model", "policy_type", "classes", "scores"), [
    ("task_router", "task", 11, None),
    ("complexity_router", "complexity", 7, 6),
    ("intent_router", "custom", 77, None),
])
def test_committed_models_are_complete_and_consistent(model: str, policy_type: str, classes: int,
                                                      scores: int | None) -> None:
    directory = MODELS / model
    meta = json.loads((directory / "1" / "labels.json").read_text())
    assert meta["policy_type"] == policy_type and meta["encoder"] == "all-MiniLM-L6-v2"
    assert len(meta["labels"]) == classes == len(set(meta["labels"]))
    assert meta["encoder_variant"] == "int8" and meta["views"] == ["lead"]
    lexicon = Lexicon.from_json(json.loads((directory / "1" / VOCABULARY_FILE).read_text()))
    inputs = 384 + lexicon.size
    with np.load(directory / "1" / "head.npz") as head:
        assert head["weight"].shape == (classes, inputs) and head["bias"].shape == (classes,)
        assert head["weight"].dtype == np.float32 and np.isfinite(head["weight"]).all()
        if scores:
            assert head["score_weight"].shape == (scores, inputs) and head["score_bias"].shape == (scores,)
            assert meta["score_names"] == SCORE_NAMES
        else:
            assert "score_weight" not in head.files
    config = (directory / "config.pbtxt").read_text()
    assert f'name: "{model}"' in config
    assert re.search(r'name: "CONFIDENCES"\s*data_type: TYPE_FP32\s*dims: \[ ' + str(classes) + r' \]', config)
    assert ('name: "SCORES"' in config) == bool(scores)
    report = json.loads((directory / "report.json").read_text())
    assert report["labels"] == meta["labels"] and report["data"]["heldout_rows"] > 0
    assert (directory / "confusion.png").is_file()


def test_committed_models_reach_their_reported_quality() -> None:
    """The numbers quoted for the built-in models, read back from their reports."""
    intent = json.loads((MODELS / "intent_router" / "report.json").read_text())
    assert intent["heldout"]["accuracy"] >= 0.90 and intent["data"]["heldout_rows"] == 3080
    groups = json.loads((MODELS / "intent_router" / "1" / "labels.json").read_text())["groups"]
    assert len(groups) == 77 and len(set(groups.values())) == 10
    task = json.loads((MODELS / "task_router" / "report.json").read_text())
    assert task["heldout"]["macro_f1"] >= 0.85
    complexity = json.loads((MODELS / "complexity_router" / "report.json").read_text())
    assert complexity["heldout"]["accuracy"] >= 0.80
