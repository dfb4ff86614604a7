"""The quality policy for real: the committed ``quality_router`` through the router (app factory,
scripted upstreams, the openai client), the per-request threshold override, calibration on held-out
prompts, the ``score``/``calibrate``/``eval`` commands, the training command, and Triton serving it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import yaml
from conftest import llm
from llm_router.proxy.app import STATE
from llm_router.proxy.cli import main
from llm_router.proxy.model_classifier import DEFAULT_MODEL_REPOSITORY, load_head
from llm_router.proxy.quality import calibrate_threshold
from llm_router.proxy.quality_scoring import score_prompts
from llm_router.training.routellm import DEFAULT_DATA_DIR, load_outcomes

pytestmark = pytest.mark.skipif(not (DEFAULT_DATA_DIR / "gsm8k").is_dir(), reason="no ../shared/data/routellm")


@pytest.fixture(scope="module")
def quality_head():
    return load_head(DEFAULT_MODEL_REPOSITORY, "quality_router")


@pytest.fixture(scope="module")
def int8_encode(encoder_cache: Path):
    from llm_router.proxy.encoder import load_encoder

    return load_encoder(encoder_cache, intra_op_num_threads=2, variant="int8").encode


@pytest.fixture(scope="module")
def extremes(quality_head, int8_encode) -> tuple[str, float, str, float]:
    """The highest- and lowest-scoring of 60 GSM8K/MMLU train prompts, with their scores."""
    prompts = [row.prompt for row in load_outcomes("gsm8k", "train")[:30] + load_outcomes("mmlu", "train")[::400]]
    scores = score_prompts(quality_head, prompts, int8_encode)
    high, low = int(np.argmax(scores)), int(np.argmin(scores))
    assert scores[high] - scores[low] > 0.05
    return prompts[high], float(scores[high]), prompts[low], float(scores[low])


def cost_quality_config(weak, strong, classifier: dict[str, Any], routes: dict | None = None) -> dict[str, Any]:
    return {"router": {"classifier_backend": {"timeout_ms": 30_000}},
            "llms": [llm("weak", weak), llm("strong", strong)],
            "policies": [{"name": "cost_quality",
                          "classifier": {"type": "quality", "model": "quality_router", **classifier},
                          "routes": routes or {"strong": ["strong", "weak"], "weak": ["weak", "strong"]},
                          "default_route": ["weak"]},
                         {"name": "rules", "classifier": {"type": "rules", "rules": [
                             {"category": "code", "keywords": ["python"]}]},
                          "routes": {"code": ["strong"]}, "default_route": ["weak"]}]}


async def route_decisions(running, prompts: tuple[str, ...]) -> list[dict[str, Any]]:
    """``POST /v1/route`` under the cost_quality policy for each prompt, with the openai client."""
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0)
    try:
        return [await client.post("/route", cast_to=dict, body={
            "model": "router:cost_quality", "messages": [{"role": "user", "content": prompt}]}) for prompt in prompts]
    finally:
        await client.close()


async def test_high_scores_reach_strong_and_low_scores_weak(encoder_env, extremes, upstreams, router) -> None:
    high, high_score, low, low_score = extremes
    weak, strong = await upstreams("weak"), await upstreams("strong")
    threshold = round((high_score + low_score) / 2, 6)
    running = await router(cost_quality_config(weak, strong, {"threshold": threshold}))
    assert running.app[STATE].holder.resources.runtime("int8").loaded  # warmed up before traffic
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0)
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="router:cost_quality", messages=[{"role": "user", "content": high}])
        assert raw.parse().choices[0].message.content == strong.text()
        assert raw.headers["x-llm-router-category"] == "strong"
        assert float(raw.headers["x-llm-router-quality-score"]) == pytest.approx(high_score, abs=1e-3)
        assert float(raw.headers["x-llm-router-quality-threshold"]) == pytest.approx(threshold, abs=1e-4)
        stream = await client.chat.completions.create(
            model="router:cost_quality", stream=True, messages=[{"role": "user", "content": low}])
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == weak.text()
        route = await client.post("/route", cast_to=dict, body={
            "model": "router:cost_quality", "messages": [{"role": "user", "content": low}]})
        assert route["category"] == "weak" and route["chosen_llm"] == "weak" and route["fallbacks"] == ["strong"]
        assert route["scores"]["quality_score"] == pytest.approx(low_score, abs=1e-3)
        assert route["scores"]["quality_threshold"] == pytest.approx(threshold)
        # RouteLLM-style names override the threshold per request.
        everything = await client.post("/route", cast_to=dict, body={
            "model": "router-cost_quality-0.0", "messages": [{"role": "user", "content": low}]})
        assert everything["chosen_llm"] == "strong" and everything["scores"]["quality_threshold"] == 0.0
        answer = await client.chat.completions.with_raw_response.create(
            model="router-cost_quality-1", messages=[{"role": "user", "content": high}])
        assert answer.headers["x-llm-router-llm"] == "weak"
    finally:
        await client.close()
    assert len(strong.received) == 1 and len(weak.received) == 2
    assert weak.received[0].body["model"] == "weak-model-id"  # the override name never reaches an LLM


@pytest.mark.parametrize(("model", "status", "code", "message"), [
    ("router-cost_quality-1.5", 400, "invalid_threshold", "outside [0, 1]"),
    ("router-cost_quality-lots", 400, "invalid_threshold", "not a number"),
    ("router-nope-0.5", 400, "policy_not_found", "unknown policy 'nope'"),
    ("router-rules-0.5", 400, "invalid_threshold", "only be given for a quality policy"),
])
async def test_bad_override_names_get_openai_errors(encoder_env, upstreams, router, model: str, status: int,
                                                    code: str, message: str) -> None:
    weak, strong = await upstreams("weak"), await upstreams("strong")
    running = await router(cost_quality_config(weak, strong, {"threshold": 0.5}))
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0)
    try:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    finally:
        await client.close()
    assert caught.value.status_code == status
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == code and error["param"] == "model"
    assert message in error["message"] and error["type"] == "invalid_request_error"
    assert not weak.received and not strong.received


async def test_three_tiers_through_the_route_endpoint(encoder_env, extremes, upstreams, router) -> None:
    high, high_score, low, low_score = extremes
    weak, strong, mid = await upstreams("weak"), await upstreams("strong"), await upstreams("mid")
    config = cost_quality_config(weak, strong, {"tiers": [
        {"name": "frontier", "min_score": round(high_score - 1e-4, 6)},
        {"name": "middle", "min_score": round(low_score - 1e-4, 6)},
        {"name": "small", "min_score": 0}]}, routes={"frontier": ["strong"], "middle": ["mid"], "small": ["weak"]})
    config["llms"].append(llm("mid", mid))
    running = await router(config)
    decisions = await route_decisions(running, (high, low))
    assert [d["category"] for d in decisions] == ["frontier", "middle"]
    assert [d["chosen_llm"] for d in decisions] == ["strong", "mid"]


def test_calibration_on_train_prompts_holds_on_held_out_prompts(quality_head, int8_encode) -> None:
    """Calibrated on train-split prompts, the strong share on test-split prompts is within a few points."""
    reference = [r.prompt for r in load_outcomes("gsm8k", "train")[:200] + load_outcomes("mmlu", "train")[::40]]
    held_out = [r.prompt for r in load_outcomes("gsm8k", "test")[:200] + load_outcomes("mmlu", "test")[::10]]
    reference_scores = score_prompts(quality_head, reference, int8_encode)
    held_out_scores = score_prompts(quality_head, held_out, int8_encode)
    for share in (0.2, 0.3, 0.5):
        threshold = calibrate_threshold(reference_scores, share)
        assert float(np.mean(held_out_scores >= threshold)) == pytest.approx(share, abs=0.06), share


def test_the_score_calibrate_and_eval_commands(encoder_env, tmp_path: Path, capsys) -> None:
    prompts = [r.prompt for r in load_outcomes("gsm8k", "train")[:40]]
    source = tmp_path / "prompts.jsonl"
    source.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    assert main(["score", "--policy", "quality_router", "--input", str(source), "--output",
                 str(tmp_path / "scores.jsonl")]) == 0
    scored = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert [row["prompt"] for row in scored] == prompts
    assert all(0.0 <= row["score"] <= 1.0 for row in scored)

    config = tmp_path / "router.yaml"
    config.write_text(yaml.safe_dump({
        "llms": [{"name": "strong", "api_base": "http://127.0.0.1:1/v1", "model": "s"},
                 {"name": "weak", "api_base": "http://127.0.0.1:2/v1", "model": "w"}],
        "policies": [{"name": "cq", "classifier": {"type": "quality", "model": "quality_router", "threshold": 0.9},
                      "routes": {"strong": ["strong"], "weak": ["weak"]}, "default_route": ["weak"]}]}))
    capsys.readouterr()
    assert main(["calibrate", "--policy", "cq", "--config", str(config), "--strong-share", "0.25", "--prompts",
                 str(source), "--write-config", str(tmp_path / "calibrated.yaml")]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[0])
    expected = calibrate_threshold([row["score"] for row in scored], 0.25)
    assert result["threshold"] == pytest.approx(expected, abs=1e-5)
    assert result["strong_share_on_these_prompts"] == pytest.approx(0.25, abs=0.03)
    assert result["model_name_override"] == f"router-cq-{expected:.6f}"
    calibrated = yaml.safe_load((tmp_path / "calibrated.yaml").read_text())
    assert calibrated["policies"][0]["classifier"]["threshold"] == pytest.approx(expected, abs=1e-5)

    rows = ["prompt,weak,strong,router"] + [f"p{i} {'x' * i},{i % 2 == 0},{i % 3 != 0},{(i * 7) % 11}"
                                             for i in range(30)]
    (tmp_path / "mine.csv").write_text("\n".join(rows) + "\n")
    plot = tmp_path / "curve.png"
    assert main(["eval", "quality", "--file", str(tmp_path / "mine.csv"), "--score-column", "router",
                 "--plot", str(plot), "--json", str(tmp_path / "table.json")]) == 0
    out = capsys.readouterr().out
    for method in ("router", "random", "prompt length", "oracle"):
        assert f"| {method}" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = json.loads((tmp_path / "table.json").read_text())
    assert [m["method"].split(" (")[0] for m in table["methods"]] == ["router", "random", "prompt length", "oracle"]


@pytest.mark.parametrize(("argv", "message"), [
    (["score", "--policy", "task_router", "--input", "{prompts}", "--output", "{out}"], "not a quality model"),
    (["score", "--policy", "quality_router", "--input", "{missing}", "--output", "{out}"], "no such file"),
    (["calibrate", "--policy", "quality_router", "--strong-share", "1.5", "--prompts", "{prompts}"], "[0, 1]"),
    (["eval", "quality", "--file", "{prompts}", "--score-column", "s"], "no rows"),
    (["eval", "quality", "--file", "{csv}"], "missing column(s) ['weak', 'strong']"),
])
def test_command_errors_are_one_line(encoder_env, tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "hi"}) + "\n")
    (tmp_path / "q.csv").write_text("prompt,w,s\nhi,True,False\n")
    paths = {"prompts": str(prompts), "out": str(tmp_path / "o.jsonl"), "missing": str(tmp_path / "none.jsonl"),
             "csv": str(tmp_path / "q.csv")}
    assert main([part.format(**paths) for part in argv]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error and len(error.strip().splitlines()) == 1


def test_the_training_command_writes_a_quality_model(encoder_env, tmp_path: Path) -> None:
    """A small RouteLLM-shaped folder (real prompts, first rows of each benchmark) through ``train``."""
    data = tmp_path / "routellm"
    for bench, source in (("mmlu", "mmlu/mmlu_anatomy.csv"), ("gsm8k", "gsm8k/gsm8k_responses.csv")):
        (data / bench).mkdir(parents=True)
        lines = (DEFAULT_DATA_DIR / source).read_text(encoding="utf-8")
        import csv
        import io

        rows = list(csv.reader(io.StringIO(lines)))
        target = data / bench / ("mmlu_anatomy.csv" if bench == "mmlu" else "gsm8k_responses.csv")
        with target.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([row[:3] for row in rows[:121]])
    out = tmp_path / "models" / "tiny_quality"
    assert main(["train", "--policy-type", "quality", "--data", str(data), "--out", str(out), "--quiet",
                 "--no-cache"]) == 0
    head = load_head(out.parent, "tiny_quality")
    assert head.labels == ["weak_better", "tie", "strong_better"] and head.views == ("lead", "full")
    report = json.loads((out / "report.json").read_text())
    assert report["policy_type"] == "quality"
    assert report["data"]["train_rows"] + report["data"]["test_rows"] == 240
    assert [m["method"] for m in report["test_split"]["mmlu"]["methods"]][1:] == [
        "random (mean of 50 seeds)", "prompt length", "oracle"]
    assert (out / "config.pbtxt").is_file() and (out / "1" / "model.py").is_file()


def test_quality_data_must_be_a_folder(tmp_path: Path, capsys) -> None:
    assert main(["train", "--policy-type", "quality", "--data", str(tmp_path / "x.csv"), "--out",
                 str(tmp_path / "m")]) == 2
    assert "--data DIR" in capsys.readouterr().err


async def test_triton_serves_the_quality_model(encoder_cache: Path, extremes, tmp_path_factory, upstreams,
                                               router) -> None:
    from llm_router.proxy.triton_server import TritonServer

    high, high_score, low, low_score = extremes
    repository = tmp_path_factory.mktemp("quality_triton")
    shutil.copytree(DEFAULT_MODEL_REPOSITORY / "quality_router", repository / "quality_router")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("LLM_ROUTER_CACHE", str(encoder_cache))
    try:
        with TritonServer(repository) as server:
            weak, strong = await upstreams("weak"), await upstreams("strong")
            config = cost_quality_config(weak, strong, {"threshold": round((high_score + low_score) / 2, 6)})
            config["router"]["classifier_backend"] = {"triton_url": server.grpc_url, "timeout_ms": 10_000,
                                                      "model_repository": str(repository)}
            running = await router(config)
            decisions = await route_decisions(running, (high, low))
    finally:
        monkeypatch.undo()
    assert [d["classifier"] for d in decisions] == ["triton", "triton"]
    assert [d["chosen_llm"] for d in decisions] == ["strong", "weak"]
    assert decisions[0]["scores"]["quality_score"] == pytest.approx(high_score, abs=1e-3)


@pytest.mark.parametrize(("model", "message"), [
    ("task_router", "is not a quality model"),
    ("no_such_model", "no model 'no_such_model'"),
])
def test_a_quality_policy_needs_a_quality_model(encoder_env, model: str, message: str) -> None:
    from llm_router.proxy.active_config import ActiveConfig
    from llm_router.proxy.config import RouterConfig
    from llm_router.proxy.config_file import ConfigError

    config = RouterConfig.model_validate({
        "llms": [{"name": "strong", "api_base": "http://127.0.0.1:1/v1", "model": "s"},
                 {"name": "weak", "api_base": "http://127.0.0.1:2/v1", "model": "w"}],
        "policies": [{"name": "cq", "classifier": {"type": "quality", "model": model, "threshold": 0.5},
                      "routes": {"strong": ["strong"], "weak": ["weak"]}, "default_route": ["weak"]}]})
    with pytest.raises(ConfigError) as caught:
        ActiveConfig.build(config)
    assert message in caught.value.describe() and "policies.cq.classifier" in caught.value.describe()
