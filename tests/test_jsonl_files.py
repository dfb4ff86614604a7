"""The one reader of user files (``proxy/jsonl_files.py``): prompt files of score/calibrate, training rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from llm_router.proxy.jsonl_files import FileFormatError, JsonLine, is_jsonl, parse_jsonl, read_text
from llm_router.proxy.quality_scoring import ScoringError, read_prompts
from llm_router.training.train import TrainingError, read_rows

PARSED = [
    # name, content, expected (line number, object) pairs
    ("one object", '{"a": 1}\n', [(1, {"a": 1})]),
    ("blank lines skipped, numbers kept", '\n{"a": 1}\n   \n{"b": "x"}\n', [(2, {"a": 1}), (4, {"b": "x"})]),
    ("no final newline", '{"a": 1}\n{"a": 2}', [(1, {"a": 1}), (2, {"a": 2})]),
    ("windows line ends", '{"a": 1}\r\n{"a": 2}\r\n', [(1, {"a": 1}), (2, {"a": 2})]),
    ("nothing", "", []),
]


@pytest.mark.parametrize(("name", "content", "expected"), PARSED, ids=[case[0] for case in PARSED])
def test_parse_jsonl_numbers_the_objects(name: str, content: str, expected: list[tuple[int, dict]]) -> None:
    assert parse_jsonl(content, Path("rows.jsonl")) == [JsonLine(number, row) for number, row in expected]


MALFORMED = [
    # name, content, the exact error
    ("not json", '{"a": 1}\nnot json\n', "rows.jsonl:2: not a JSON object per line (Expecting value)"),
    ("a list", '{"a": 1}\n\n[1, 2]\n', "rows.jsonl:3: expected a JSON object, got list"),
    ("a string", '"hello"\n', "rows.jsonl:1: expected a JSON object, got str"),
    ("two objects on a line", '{"a": 1} {"b": 2}\n', "rows.jsonl:1: not a JSON object per line (Extra data)"),
]


@pytest.mark.parametrize(("name", "content", "message"), MALFORMED, ids=[case[0] for case in MALFORMED])
def test_parse_jsonl_names_the_bad_line(name: str, content: str, message: str) -> None:
    with pytest.raises(FileFormatError) as caught:
        parse_jsonl(content, Path("rows.jsonl"))
    assert str(caught.value) == message


def test_read_text_names_a_missing_or_undecodable_file(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"none\.jsonl: no such file$"):
        read_text(tmp_path / "none.jsonl")
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileFormatError, match=r"folder: no such file$"):
        read_text(tmp_path / "folder")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(FileFormatError, match=r"latin\.txt: not UTF-8 text \(invalid continuation byte\)$"):
        read_text(latin)
    (tmp_path / "ok.txt").write_text("héllo\n", encoding="utf-8")
    assert read_text(tmp_path / "ok.txt") == "héllo\n"


@pytest.mark.parametrize(("name", "expected"), [("a.jsonl", True), ("a.NDJSON", True), ("a.json", True),
                                                ("a.csv", False), ("a.txt", False), ("jsonl", False)])
def test_is_jsonl_goes_by_suffix(name: str, expected: bool) -> None:
    assert is_jsonl(Path(name)) is expected


# Both callers: the same line-numbered message, raised as each command's own error.
CALLERS = [(read_prompts, ScoringError), (read_rows, TrainingError)]


@pytest.mark.parametrize(("read", "error"), CALLERS, ids=["read_prompts", "read_rows"])
@pytest.mark.parametrize(("content", "message"), [
    ('{"prompt": "hi", "text": "hi", "label": "a"}\n{"prompt": \n',
     "{path}:2: not a JSON object per line (Expecting value)"),
    (None, "{path}: no such file"),
], ids=["bad line", "missing file"])
def test_both_callers_report_a_bad_file_alike(tmp_path: Path, read, error: type[Exception], content: str | None,
                                              message: str) -> None:
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(error) as caught:
        read(path)
    assert str(caught.value) == message.format(path=path)


def test_read_prompts_wants_a_string_prompt_on_each_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "hi"}\n\n{"prompt": 3}\n')
    with pytest.raises(ScoringError) as caught:
        read_prompts(path)
    assert str(caught.value) == f'{path}:3: expected an object with a string "prompt"'


def test_read_prompts_reads_jsonl_and_plain_text(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"prompt": "first"}\n\n{"prompt": "second", "id": 2}\n')
    (tmp_path / "p.txt").write_text("first\n\n  \nsecond\n")
    assert read_prompts(tmp_path / "p.jsonl") == ["first", "second"]
    assert read_prompts(tmp_path / "p.txt") == ["first", "second"]
    (tmp_path / "blank.jsonl").write_text("\n\n")
    with pytest.raises(ScoringError, match=r"blank\.jsonl: no prompts$"):
        read_prompts(tmp_path / "blank.jsonl")


def test_read_rows_reads_jsonl_and_csv_alike(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    (tmp_path / "r.csv").write_text("text,label\na,x\nb,y\n")
    assert read_rows(tmp_path / "r.jsonl") == read_rows(tmp_path / "r.csv") == [
        {"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
