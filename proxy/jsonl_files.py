"""Reading the files users hand the command line: UTF-8 text, and JSON Lines (one JSON object a line).

One reader for the proxy's prompt files (``llm-router score``/``calibrate``) and the
training rows (``llm-router train``), so both name the file and the line of a bad row
the same way. Errors are one line each: the CLI prints them as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


class FileFormatError(ValueError):
    """A missing, undecodable or malformed file, said in one line that starts with its path."""


class JsonLine(NamedTuple):
    number: int
    """1-based line number in the file (blank lines counted), for error messages."""
    row: dict[str, Any]


def is_jsonl(path: Path) -> bool:
    """Whether the file's suffix marks it as JSON Lines."""
    return path.suffix.lower() in JSONL_SUFFIXES


def read_text(path: Path) -> str:
    """The whole file as UTF-8 text."""
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{path}: not UTF-8 text ({exc.reason})") from None


def parse_jsonl(content: str, path: Path) -> list[JsonLine]:
    """The objects of JSON Lines text, blank lines skipped; ``path`` only names the source in errors."""
    lines = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"{path}:{number}: not a JSON object per line ({exc.msg})") from None
        if not isinstance(row, dict):
            raise FileFormatError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        lines.append(JsonLine(number, row))
    return lines
