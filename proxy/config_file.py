"""Reading a ``RouterConfig`` from YAML, with errors that name the field and line.

Pydantic reports where an error is as a path (``llms -> 0 -> api_base``); the
YAML node tree knows the line of every path. Together they give messages like
``config.yaml:12: llms[0].api_base: Input should be a valid URL``. Input values
are never echoed: a misplaced key must not end up in a log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .config import LocatedError, RouterConfig

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in a config document."""

    location: str
    """Dotted field path, e.g. ``llms[0].api_base``; empty for the whole document."""
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        field = f"{self.location}: " if self.location else ""
        return f"{where}{field}{self.message}"


class ConfigError(Exception):
    """A config document that cannot be used, with every problem found."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__(self.describe())

    def describe(self) -> str:
        lines = [f"{self.source}: invalid router config ({len(self.issues)} problem(s))"]
        lines += [f"  {issue}" for issue in self.issues]
        return "\n".join(lines)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping, where
    plain YAML loaders silently keep the last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config_file(path: str | Path) -> RouterConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [ConfigIssue("", None, f"cannot read: {exc.__class__.__name__}: {exc}")]) from None
    return parse_config(text, source=str(path))


def parse_config(text: str, source: str = "<config>") -> RouterConfig:
    """Parse and validate a YAML (or JSON) config document completely."""
    try:
        root = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [ConfigIssue("", line, f"YAML syntax error: {problem}")]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("", 1, "the config must be a mapping with llms and policies")])
    lines = _line_index(root) if root is not None else {}
    try:
        return RouterConfig.model_validate(data)
    except ValidationError as exc:
        issues = [issue for error in exc.errors(include_input=False, include_url=False)
                  for issue in _issues(lines, error)]
        raise ConfigError(source, issues) from None


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def _issues(lines: dict[Path_, int], error: Any) -> list[ConfigIssue]:
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, LocatedError):
        # Problem paths are relative to the model that found them.
        base = _document_path(lines, (*tuple(error["loc"]), "_"))[:-1] if error["loc"] else ()
        return [_located(lines, (*base, *path), message) for path, message in cause.problems]
    return [_located(lines, _document_path(lines, tuple(error["loc"])), _message(error))]


def _located(lines: dict[Path_, int], path: Path_, message: str) -> ConfigIssue:
    line = next((lines[path[:end]] for end in range(len(path), -1, -1) if path[:end] in lines), None)
    return ConfigIssue(_dotted(path), line, message)


def _document_path(lines: dict[Path_, int], loc: tuple[Any, ...]) -> Path_:
    """Pydantic's error location as a path in the document: parts it inserts
    that the document lacks (a union member's tag or class name) are dropped;
    the last part stays even when missing (it names the missing field)."""
    path: Path_ = ()
    for position, part in enumerate(loc):
        if position + 1 < len(loc) and (*path, part) not in lines:
            continue
        path = (*path, part)
    return path


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_index(node: yaml.Node, path: Path_ = ()) -> dict[Path_, int]:
    """Map every path in the document to the 1-based line where it starts."""
    index: dict[Path_, int] = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            index.update(_line_index(value_node, child))
            index[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            index.update(_line_index(item, (*path, position)))
    return index
