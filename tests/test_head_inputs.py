"""What a trained head reads (``head_inputs``): views of the classifier text and the TF-IDF lexicon."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from llm_router.proxy.head_inputs import VOCABULARY_FILE, Lexicon, fit_lexicon, lead_view, terms, view_texts


@pytest.mark.parametrize(("text", "lead"), [
    ("short prompt stays as it is", "short prompt stays as it is"),
    (" ".join(f"w{i}" for i in range(24)), " ".join(f"w{i}" for i in range(24))),
    (" ".join(f"w{i}" for i in range(40)),
     " ".join(f"w{i}" for i in range(16)) + " ... " + " ".join(f"w{i}" for i in range(32, 40))),
])
def test_lead_view(text: str, lead: str) -> None:
    assert lead_view(text) == lead
    assert view_texts(text, ["full", "lead"]) == [text, lead]
    assert view_texts(text, ["lead"]) == [lead]


def test_unknown_view_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown view 'middle'"):
        view_texts("x", ["middle"])


def test_terms_are_lowercased_words_of_two_or_more_characters() -> None:
    assert terms("Summarize THIS: a 3-page Résumé, e.g. x_y!") == ["summarize", "this", "page", "résumé", "x_y"]


def test_fit_lexicon_keeps_terms_seen_in_min_df_texts_with_smoothed_idf() -> None:
    texts = ["summarize this text", "summarize that text", "extract the names", "rewrite this"]
    lexicon = fit_lexicon(texts, "full", min_df=2)
    assert list(lexicon.index) == ["summarize", "text", "this"]  # alphabetical; seen twice or more
    n = len(texts)
    for term, df in (("summarize", 2), ("text", 2), ("this", 2)):
        assert lexicon.idf[lexicon.index[term]] == pytest.approx(math.log((1 + n) / (1 + df)) + 1, rel=1e-6)


def test_lexicon_vectors_are_sublinear_tf_idf_rows_normalised() -> None:
    lexicon = Lexicon("full", {"code": 0, "python": 1, "write": 2}, np.array([1.0, 2.0, 3.0], np.float32))
    rows = lexicon.vectors(["Write python code, python code, PYTHON", "nothing known here", ""])
    raw = np.array([(1 + math.log(2)) * 1.0, (1 + math.log(3)) * 2.0, 1 * 3.0])
    np.testing.assert_allclose(rows[0], raw / np.linalg.norm(raw), rtol=1e-6)
    assert not rows[1].any() and not rows[2].any()  # no known term: a zero row, not NaN
    assert rows.dtype == np.float32 and rows.shape == (3, 3)


def test_lexicon_counts_only_its_view() -> None:
    words = [f"w{i}" for i in range(40)]
    lexicon = Lexicon("lead", {"w20": 0, "w35": 1}, np.ones(2, np.float32))
    (row,) = lexicon.vectors([" ".join(words)])
    assert row[0] == 0 and row[1] == pytest.approx(1.0)  # w20 is in the cut middle, w35 in the tail


def test_lexicon_round_trips_through_its_file(tmp_path: Path) -> None:
    lexicon = fit_lexicon(["alpha beta", "beta gamma", "alpha gamma"], "lead")
    lexicon.write(tmp_path)
    loaded = Lexicon.from_json(json.loads((tmp_path / VOCABULARY_FILE).read_text()))
    assert loaded.view == "lead" and loaded.index == lexicon.index
    np.testing.assert_array_equal(loaded.idf, lexicon.idf)
    text = ["gamma alpha alpha"]
    np.testing.assert_array_equal(loaded.vectors(text), lexicon.vectors(text))


@pytest.mark.parametrize(("data", "message"), [
    ([], "not a JSON object"),
    ({"view": "middle", "terms": ["a"], "idf": [1.0]}, "view"),
    ({"view": "lead", "terms": ["ab"], "idf": []}, "equal, non-zero length"),
    ({"view": "lead", "terms": ["ab", "ab"], "idf": [1.0, 1.0]}, "duplicates"),
    ({"view": "lead", "terms": ["ab"], "idf": [1.0], "term_pattern": r"\w+"}, "differs"),
])
def test_malformed_lexicons_are_refused(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Lexicon.from_json(data)


def test_too_few_texts_for_a_lexicon() -> None:
    with pytest.raises(ValueError, match="no term occurs in 2 or more texts"):
        fit_lexicon(["one text only"], "full")
