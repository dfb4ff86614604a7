"""The config contract: what parses, what is refused (with field path and line), the
revision, the redacted view, and the ``llm-router config validate`` / ``route`` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from llm_router.proxy.cli import main
from llm_router.proxy.config import RouterConfig, redacted
from llm_router.proxy.config_file import ConfigError, load_config_file, parse_config

# Line numbers in the cases below refer to this document: keep it as it is.
BASE = r"""schema_version: 1
router:
  default_policy: tasks
  max_body_bytes: 1048576
  log_prompts: false
  classifier_backend: {timeout_ms: 150}
llms:
  - name: fast
    api_base: http://fast.local:8000/v1
    model: fast-model
    api_key: {env: FAST_API_KEY}
    cost: {input_per_million: 0.1, output_per_million: 0.4}
    context_window: 8192
    max_concurrency: 8
  - name: strong
    api_base: https://strong.example.com/v1/
    model: strong-model
    api_key: {file: /var/run/secrets/strong/api-key}
    timeouts:
      connect: 2
      first_token: 30
      idle: 30
      total: 300
      queue: 1
policies:
  - name: tasks
    classifier:
      type: rules
      rules:
        - category: code
          keywords: [python, function, bug]
          patterns: ['```', '\bdef \w+\(']
        - category: summary
          keywords: [summarize, tl;dr]
          roles: [user]
          last_message_only: true
        - category: support
          headers: {x-team: '^support$'}
          user: '^cust-'
          weight: 2
    routes:
      code: [strong, fast]
      summary: [fast, strong]
      support: [strong]
    default_route: [fast]
    min_confidence: 0.5
    failure_mode: closed
  - name: cheap
    classifier:
      type: rules
      rules:
        - category: anything
          patterns: ['.']
    routes:
      anything: [fast]
    default_route: [fast, strong]
"""

BASE_REVISION = parse_config(BASE).revision


def edited(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"{old!r} must occur exactly once in BASE"
    return BASE.replace(old, new)


def issues_of(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="router.yaml")
    return [(issue.location, issue.line, issue.message) for issue in caught.value.issues]


# ------------------------------------------------------------------ valid


def test_full_config_parses() -> None:
    config = parse_config(BASE)
    assert [llm.name for llm in config.llms] == ["fast", "strong"]
    assert [policy.name for policy in config.policies] == ["tasks", "cheap"]
    assert config.router.default_policy == "tasks"
    assert config.router.max_body_bytes == 1048576
    assert config.router.classifier_backend.timeout_ms == 150.0
    fast, strong = config.llms
    assert fast.base_url == "http://fast.local:8000/v1"
    assert strong.base_url == "https://strong.example.com/v1"  # trailing slash dropped
    assert fast.api_key is not None and fast.api_key.model_dump() == {"env": "FAST_API_KEY"}
    assert strong.api_key is not None and strong.api_key.model_dump() == {"file": "/var/run/secrets/strong/api-key"}
    assert (fast.cost.input_per_million, fast.cost.output_per_million) == (0.1, 0.4)
    assert (fast.context_window, fast.max_concurrency) == (8192, 8)
    assert fast.timeouts.model_dump() == {"connect": 5.0, "first_token": 60.0, "idle": 60.0, "total": 600.0,
                                          "queue": 5.0}
    assert strong.timeouts.model_dump() == {"connect": 2.0, "first_token": 30.0, "idle": 30.0, "total": 300.0,
                                            "queue": 1.0}
    tasks = config.policy("tasks")
    assert tasks is not None
    assert tasks.classifier.categories() == ["code", "summary", "support"]
    assert tasks.routes == {"code": ["strong", "fast"], "summary": ["fast", "strong"], "support": ["strong"]}
    assert (tasks.default_route, tasks.min_confidence, tasks.failure_mode) == (["fast"], 0.5, "closed")
    cheap = config.policy("cheap")
    assert cheap is not None and (cheap.min_confidence, cheap.failure_mode) == (0.0, "open")
    assert config.llm("nope") is None and config.policy("nope") is None


def test_minimal_config_parses() -> None:
    config = parse_config("llms: [{name: only, api_base: 'http://127.0.0.1:9/v1', model: m}]")
    assert config.policies == [] and config.router.default_policy is None and config.llms[0].api_key is None


def test_load_config_file(tmp_path: Path) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(BASE)
    assert load_config_file(path).revision == BASE_REVISION


def test_load_config_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_file(tmp_path / "absent.yaml")
    [issue] = caught.value.issues
    assert (issue.location, issue.line) == ("", None)
    assert issue.message.startswith("cannot read: FileNotFoundError")


# --------------------------------------------------------------- revision


def _reverse_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reverse_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(item) for item in value]
    return value


def _data() -> dict[str, Any]:
    return yaml.safe_load(BASE)


SAME_CONTENT = [
    pytest.param(BASE.replace("\n", "\n# a comment\n", 3), id="comments"),
    pytest.param(yaml.safe_dump(_data(), default_flow_style=True), id="flow-style"),
    pytest.param(yaml.safe_dump(_data(), sort_keys=True, indent=4), id="sorted-keys-indent-4"),
    pytest.param(yaml.safe_dump(_reverse_keys(_data()), sort_keys=False), id="reversed-key-order"),
    pytest.param(json.dumps(_data()), id="json"),
    pytest.param(json.dumps(_reverse_keys(_data()), indent=2), id="json-reversed"),
    pytest.param(edited("  default_policy: tasks\n", "  default_policy: tasks\n  log_prompts: false\n")
                 .replace("  log_prompts: false\n  classifier", "  classifier"), id="moved-key"),
    pytest.param(edited("    min_confidence: 0.5\n", "    min_confidence: 0.50\n"), id="number-spelling"),
    pytest.param(edited("    default_route: [fast, strong]\n",
                        "    default_route: [fast, strong]\n    failure_mode: open\n    min_confidence: 0\n"),
                 id="explicit-defaults"),
    pytest.param(edited("  classifier_backend: {timeout_ms: 150}\n",
                        "  classifier_backend: {timeout_ms: 150, triton_url: null}\n"), id="explicit-null"),
]


@pytest.mark.parametrize("text", SAME_CONTENT)
def test_revision_ignores_formatting(text: str) -> None:
    assert parse_config(text).revision == BASE_REVISION


DIFFERENT_CONTENT = [
    pytest.param("    model: fast-model\n", "    model: fast-model-2\n", id="upstream-model-id"),
    pytest.param("      code: [strong, fast]\n", "      code: [fast, strong]\n", id="fallback-order"),
    pytest.param("    min_confidence: 0.5\n", "    min_confidence: 0.6\n", id="min-confidence"),
    pytest.param("{env: FAST_API_KEY}", "{env: OTHER_KEY}", id="key-reference"),
    pytest.param("          weight: 2\n", "          weight: 3\n", id="rule-weight"),
    pytest.param("    failure_mode: closed\n", "    failure_mode: open\n", id="failure-mode"),
    pytest.param("  log_prompts: false\n", "  log_prompts: true\n", id="log-prompts"),
    pytest.param("      queue: 1\n", "      queue: 2\n", id="timeout"),
]


@pytest.mark.parametrize(("old", "new"), DIFFERENT_CONTENT)
def test_revision_changes_with_content(old: str, new: str) -> None:
    revision = parse_config(edited(old, new)).revision
    assert revision != BASE_REVISION
    assert len(revision) == 16 and int(revision, 16) >= 0


# ----------------------------------------------------------------- errors

# (old, new) edit of BASE -> the exact issues (location, line, message fragment), in order.
INVALID = [
    pytest.param("http://fast.local:8000/v1", "fast.local/v1",
                 [("llms[0].api_base", 9, "Input should be a valid URL")], id="url-without-scheme"),
    pytest.param("http://fast.local:8000/v1", "ftp://fast.local/v1",
                 [("llms[0].api_base", 9, "URL scheme should be 'http' or 'https'")], id="url-bad-scheme"),
    pytest.param("{env: FAST_API_KEY}", "sk-live-0123456789abcdef",
                 [("llms[0].api_key", 11, "an API key must not be written into the config: reference it as "
                                          "{env: VARIABLE_NAME} or {file: /path/to/key}")], id="inline-api-key"),
    pytest.param("{env: FAST_API_KEY}", "{env: 'not a variable'}",
                 [("llms[0].api_key.env", 11, "String should match pattern"),
                  ("llms[0].api_key.file", 11, "Field required"),
                  ("llms[0].api_key.env", 11, "Extra inputs are not permitted")], id="bad-env-name"),
    pytest.param("    context_window: 8192\n", "    context_windw: 8192\n",
                 [("llms[0].context_windw", 13, "Extra inputs are not permitted")], id="typo-llm-field"),
    pytest.param("  log_prompts: false\n", "  log_prompt: false\n",
                 [("router.log_prompt", 5, "Extra inputs are not permitted")], id="typo-router-field"),
    pytest.param("          weight: 2\n", "          wieght: 2\n",
                 [("policies[0].classifier.rules[2].wieght", 40, "Extra inputs are not permitted")],
                 id="typo-rule-field"),
    pytest.param("      total: 300\n", "      total: 20\n",
                 [("llms[1].timeouts", 19, "timeouts.first_token (30.0s) exceeds timeouts.total (20.0s)")],
                 id="timeouts-out-of-order"),
    pytest.param("      connect: 2\n", "      connect: 400\n",
                 [("llms[1].timeouts.connect", 20, "Input should be less than or equal to 300")],
                 id="timeout-out-of-range"),
    pytest.param(r"patterns: ['```', '\bdef \w+\(']", "patterns: ['```', '(unclosed']",
                 [("policies[0].classifier.rules[0].patterns", 32,
                   "invalid regular expression '(unclosed': missing ), unterminated subpattern at position 0")],
                 id="invalid-regex"),
    pytest.param("headers: {x-team: '^support$'}", "headers: {x-team: '[support'}",
                 [("policies[0].classifier.rules[2].headers", 38, "invalid regular expression '[support'")],
                 id="invalid-header-regex"),
    pytest.param("user: '^cust-'", "user: '*cust'",
                 [("policies[0].classifier.rules[2].user", 39, "invalid regular expression '*cust'")],
                 id="invalid-user-regex"),
    pytest.param("          patterns: ['.']\n", "          roles: [user]\n",
                 [("policies[1].classifier.rules[0]", 52,
                   "a rule needs at least one of keywords, patterns, headers, user")], id="rule-without-condition"),
    pytest.param("      type: rules\n      rules:\n        - category: code",
                 "      type: bayes\n      rules:\n        - category: code",
                 [("policies[0].classifier", 27, "Input tag 'bayes' found using 'type' does not match")],
                 id="unknown-classifier-type"),
    pytest.param("      support: [strong]\n", "      support: [strong, strong]\n",
                 [("policies[0].routes.support", 44, "route 'support' lists an LLM twice: ['strong', 'strong']")],
                 id="llm-twice-in-route"),
    pytest.param("    min_confidence: 0.5\n", "    min_confidence: 1.5\n",
                 [("policies[0].min_confidence", 46, "Input should be less than or equal to 1")],
                 id="confidence-above-1"),
    pytest.param("    failure_mode: closed\n", "    failure_mode: shut\n",
                 [("policies[0].failure_mode", 47, "Input should be 'open' or 'closed'")], id="bad-failure-mode"),
    pytest.param("  - name: cheap\n", "  - name: 'cheap policy'\n",
                 [("policies[1].name", 48, "String should match pattern")], id="bad-policy-name"),
    pytest.param("schema_version: 1\n", "schema_version: 2\n",
                 [("schema_version", 1, "Input should be 1")], id="schema-version-2"),
    pytest.param("    model: strong-model\n", "    model: strong-model: x\n",
                 [("", 17, "YAML syntax error: mapping values are not allowed here")], id="yaml-mapping-in-scalar"),
    pytest.param("    model: fast-model\n", "\tmodel: fast-model\n",
                 [("", 10, "YAML syntax error: found character '\\t' that cannot start any token")], id="yaml-tab"),
    pytest.param("    max_concurrency: 8\n", "     max_concurrency: 8\n",
                 [("", 14, "YAML syntax error: mapping values are not allowed here")], id="yaml-bad-indent"),
    pytest.param("      code: [strong, fast]\n", "      code: [strong, fast]]\n",
                 [("", 42, "YAML syntax error: expected <block end>, but found ']'")], id="yaml-stray-bracket"),
]


@pytest.mark.parametrize(("old", "new", "expected"), INVALID)
def test_invalid_config_names_field_and_line(old: str, new: str, expected: list[tuple[str, int, str]]) -> None:
    issues = issues_of(edited(old, new))
    assert [(location, line) for location, line, _ in issues] == [(location, line) for location, line, _ in expected]
    for (_, _, message), (_, _, fragment) in zip(issues, expected, strict=True):
        assert fragment in message


# Documents that are not a config at all.
NOT_A_MAPPING = [
    pytest.param("", id="empty"),
    pytest.param("# only a comment\n", id="comment-only"),
    pytest.param("- llms\n- policies\n", id="list"),
    pytest.param("42\n", id="number"),
    pytest.param("just a string\n", id="string"),
    pytest.param("null\n", id="null"),
]


@pytest.mark.parametrize("text", NOT_A_MAPPING)
def test_non_mapping_document(text: str) -> None:
    assert issues_of(text) == [("", 1, "the config must be a mapping with llms and policies")]


@pytest.mark.parametrize(("text", "location", "line"), [
    pytest.param("schema_version: 1\n", "llms", 1, id="no-llms"),
    pytest.param(edited("    model: fast-model\n", ""), "llms[0].model", 8, id="llm-without-model"),
    pytest.param(edited("    model: fast-model\n", "    modle: fast-model\n"), "llms[0].model", 8,
                 id="typo-in-required-field"),
    pytest.param(edited("    default_route: [fast, strong]\n", ""), "policies[1].default_route", 48,
                 id="policy-without-default-route"),
])
def test_missing_field_is_named(text: str, location: str, line: int) -> None:
    assert (location, line) in [(got_location, got_line) for got_location, got_line, _ in issues_of(text)]


def test_duplicate_yaml_key_refused() -> None:
    text = edited("    model: fast-model\n", "    model: fast-model\n    model: other-model\n")
    issues = issues_of(text)
    assert len(issues) == 1
    assert issues[0][1] == text.splitlines().index("    model: other-model") + 1
    assert "'model' appears twice" in issues[0][2]


INLINE_KEYS = [
    pytest.param("sk-live-0123456789abcdef", id="plain"),
    pytest.param("'Bearer sk-live-0123456789abcdef'", id="quoted-bearer"),
    pytest.param("[sk-live-0123456789abcdef]", id="in-a-list"),
    pytest.param("{value: sk-live-0123456789abcdef}", id="unknown-ref-kind"),
    pytest.param("{env: sk-live-0123456789abcdef}", id="key-as-env-name"),
]


@pytest.mark.parametrize("key", INLINE_KEYS)
def test_inline_key_never_echoed(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(edited("{env: FAST_API_KEY}", key), source="router.yaml")
    error = caught.value
    assert error.issues and all(issue.location.startswith("llms[0].api_key") for issue in error.issues)
    assert all(issue.line == 11 for issue in error.issues)
    for text in (str(error), error.describe(), *map(str, error.issues), *(i.message for i in error.issues)):
        assert "0123456789abcdef" not in text


def test_describe_format() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(edited("http://fast.local:8000/v1", "fast.local/v1"), source="router.yaml")
    assert caught.value.describe() == (
        "router.yaml: invalid router config (1 problem(s))\n"
        "  line 9: llms[0].api_base: Input should be a valid URL, relative URL without a base")


# --------------------------------------------------------------- redacted

@pytest.mark.parametrize(("index", "expected"), [
    pytest.param(0, {"source": "env", "value": "[REDACTED]"}, id="env-ref"),
    pytest.param(1, {"source": "file", "value": "[REDACTED]"}, id="file-ref"),
])
def test_redacted_key_reference(index: int, expected: dict[str, str]) -> None:
    assert redacted(parse_config(BASE))["llms"][index]["api_key"] == expected


def test_redacted_hides_reference_details_only() -> None:
    config = parse_config(BASE)
    view = redacted(config)
    text = json.dumps(view)
    for secret in ("FAST_API_KEY", "/var/run/secrets/strong/api-key", "secrets", "api-key"):
        assert secret not in text
    full = config.model_dump(mode="json")
    for llm in full["llms"]:
        llm.pop("api_key")
    for llm in view["llms"]:
        llm.pop("api_key")
    assert view == full  # nothing else is hidden or changed
    assert redacted(config) == redacted(config)  # no mutation of the config


def test_redacted_without_key() -> None:
    config = parse_config("llms: [{name: open, api_base: 'http://127.0.0.1:9/v1', model: m}]")
    assert redacted(config)["llms"][0]["api_key"] is None


def test_config_is_immutable() -> None:
    config = parse_config(BASE)
    with pytest.raises(Exception, match="frozen"):
        config.llms[0].model = "other"  # type: ignore[misc]
    assert isinstance(config, RouterConfig)


# --------------------------------------------------------------------- CLI


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(BASE)
    return path


def test_cli_validate_good(good_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["config", "validate", str(good_file)], capsys) == (
        0, f"{good_file}: valid (schema 1, revision {BASE_REVISION}, 2 LLMs, 2 policies)\n", "")


@pytest.mark.parametrize(("old", "new", "expected_lines"), [
    pytest.param("http://fast.local:8000/v1", "fast.local/v1",
                 ["  line 9: llms[0].api_base: Input should be a valid URL, relative URL without a base"],
                 id="bad-url"),
    pytest.param("    context_window: 8192\n", "    context_windw: 8192\n",
                 ["  line 13: llms[0].context_windw: Extra inputs are not permitted"], id="typo"),
    pytest.param("      summary: [fast, strong]\n", "      summary: [fast, strongest]\n",
                 ["  line 43: policies[0].routes.summary: policy 'tasks' names unknown LLMs ['strongest']; "
                  "known LLMs: ['fast', 'strong']"], id="unknown-llm"),
    pytest.param("    max_concurrency: 8\n", "     max_concurrency: 8\n",
                 ["  line 14: YAML syntax error: mapping values are not allowed here"], id="yaml-syntax"),
])
def test_cli_validate_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str,
                          expected_lines: list[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(edited(old, new))
    code, out, err = run_cli(["config", "validate", str(path)], capsys)
    assert (code, out) == (1, "")
    assert err.splitlines() == [f"{path}: invalid router config ({len(expected_lines)} problem(s))",
                                *expected_lines]


def test_cli_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["config", "validate", str(tmp_path / "absent.yaml")], capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"{tmp_path / 'absent.yaml'}: invalid router config (1 problem(s))\n  cannot read: ")


def _console_script() -> list[str]:
    script = Path(sys.executable).parent / "llm-router"
    return [str(script)] if script.exists() else [sys.executable, "-m", "llm_router.proxy.cli"]


@pytest.mark.parametrize(("content", "code", "stream", "expected"), [
    pytest.param(BASE, 0, "stdout", f"valid (schema 1, revision {BASE_REVISION}, 2 LLMs, 2 policies)", id="good"),
    pytest.param(BASE.replace("http://fast.local:8000/v1", "fast.local/v1"), 1, "stderr",
                 "line 9: llms[0].api_base: Input should be a valid URL", id="bad"),
])
def test_cli_validate_exit_status(tmp_path: Path, content: str, code: int, stream: str, expected: str) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(content)
    done = subprocess.run([*_console_script(), "config", "validate", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == code
    assert expected in getattr(done, stream)


ROUTE_CASES = [
    pytest.param([], "please fix this python bug", {
        "policy": "tasks", "category": "code", "confidence": 1.0, "confidences": {"code": 1.0}, "route": "code",
        "reason": "classified", "chosen_llm": "strong", "fallbacks": ["fast"], "classifier": "rules"},
        id="default-policy-code"),
    pytest.param([], "Summarize this article", {
        "policy": "tasks", "category": "summary", "confidence": 1.0, "route": "summary", "reason": "classified",
        "chosen_llm": "fast", "fallbacks": ["strong"]}, id="default-policy-summary"),
    pytest.param([], "python code, then summarize it", {
        "policy": "tasks", "category": "code", "confidence": 0.5, "confidences": {"code": 0.5, "summary": 0.5},
        "route": "code", "reason": "classified", "chosen_llm": "strong"}, id="tie-first-rule-wins"),
    pytest.param([], "hello there", {
        "policy": "tasks", "category": None, "confidence": None, "confidences": {}, "route": "default",
        "reason": "no_match", "chosen_llm": "fast", "fallbacks": []}, id="no-match-default-route"),
    pytest.param(["--policy", "cheap"], "hello", {
        "policy": "cheap", "category": "anything", "route": "anything", "reason": "classified",
        "chosen_llm": "fast", "fallbacks": []}, id="policy-flag"),
    pytest.param(["--model", "router:cheap"], "hello", {
        "policy": "cheap", "category": "anything", "chosen_llm": "fast"}, id="model-router-policy"),
    pytest.param(["--model", "strong"], "summarize", {
        "policy": None, "category": None, "confidence": None, "route": "direct", "reason": "direct",
        "chosen_llm": "strong", "fallbacks": [], "classifier": None, "classification_ms": 0.0}, id="direct-pick"),
    pytest.param(["--model", "router"], "fix the bug", {"policy": "tasks", "chosen_llm": "strong"},
                 id="router-alias"),
]


@pytest.mark.parametrize(("flags", "prompt", "expected"), ROUTE_CASES)
def test_cli_route(good_file: Path, capsys: pytest.CaptureFixture[str], flags: list[str], prompt: str,
                   expected: dict[str, Any]) -> None:
    code, out, err = run_cli(["route", "--config", str(good_file), *flags, prompt], capsys)
    assert (code, err) == (0, "")
    decision = json.loads(out)
    assert {key: decision[key] for key in expected} == expected
    assert decision["config_revision"] == BASE_REVISION


@pytest.mark.parametrize(("flags", "param", "code_"), [
    pytest.param(["--model", "gpt-4o"], "model", "model_not_found", id="unknown-model"),
    pytest.param(["--policy", "nope"], "model", "policy_not_found", id="unknown-policy"),
])
def test_cli_route_refused(good_file: Path, capsys: pytest.CaptureFixture[str], flags: list[str], param: str,
                           code_: str) -> None:
    code, out, err = run_cli(["route", "--config", str(good_file), *flags, "hi"], capsys)
    assert (code, out) == (1, "")
    error = json.loads(err)["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code_)


def test_cli_route_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(edited("schema_version: 1\n", "schema_version: 2\n"))
    code, out, err = run_cli(["route", "--config", str(path), "hi"], capsys)
    assert (code, out) == (1, "")
    assert "line 1: schema_version: Input should be 1" in err
