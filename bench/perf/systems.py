"""The systems under test: how each is installed, configured, started and called.

Every system forwards to the same upstream (``bench/overhead.py``'s loopback
server). Peers are installed on first use under ``.cache/peers`` (LiteLLM in its
own virtualenv, Portkey from npm), pinned; one that cannot be installed or
started is reported as such, never dropped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from bench import overhead

REPO = Path(__file__).resolve().parents[2]
PEERS = REPO / ".cache" / "peers"
LITELLM_VERSION = "1.109.0"
"""environment.md's 1.109.x; 1.109.1 cannot be resolved from the registry here at all."""
LITELLM_OVERRIDES = ("certifi==2026.10.18", "litellm-proxy-extras==0.4.110")
PORTKEY_VERSION = "1.15.2"
ALL_SYSTEMS = ("direct", "ours-direct-pick", "ours-rules", "ours-embedded-task", "litellm", "portkey")
OURS = ("ours-direct-pick", "ours-rules", "ours-embedded-task")

EMBEDDED_POLICY = """\
  - name: task
    classifier:
      type: model
      model: task_router
    routes:
      Code Generation: [bench-strong, bench-fast]
      Summarization: [bench-fast, bench-strong]
    default_route: [bench-fast, bench-strong]
"""


class SystemUnavailable(RuntimeError):
    """A system could not be installed or started; the message says why (it goes into the table)."""


@dataclass
class Running:
    """A started system: where to send requests, as what, and the process to measure."""

    name: str
    url: str
    pid: int
    model: str
    headers: dict[str, str] = field(default_factory=dict)
    expect_decision: dict[str, str] = field(default_factory=dict)
    version: str = ""
    config_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def router_config(upstream_port: int, *, embedded: bool = False, rules_keywords_extra: str = "") -> str:
    """Our router's config: the bench rule policy of ``overhead.py``, with ``embedded`` a policy on the
    embedded task model too (it loads the encoder: only the system that uses it pays its memory).

    ``rules_keywords_extra`` adds a keyword to the code rule (the soak's reloads change it)."""
    base = overhead.ROUTER_CONFIG.format(policy=overhead.POLICY, port=upstream_port, model=overhead.UPSTREAM_MODEL)
    if rules_keywords_extra:
        base = base.replace("keywords: [python,", f"keywords: [{rules_keywords_extra}, python,", 1)
    return base + EMBEDDED_POLICY if embedded else base


def start_ours(name: str, upstream_port: int, core: str, workdir: Path) -> Running:
    """Our router as shipped: the ``llm-router serve`` CLI, pinned to ``core``."""
    port = overhead._free_port()
    config = workdir / "router.yaml"
    config.write_text(router_config(upstream_port, embedded=name == "ours-embedded-task"))
    log = workdir / f"{name}.log"
    cli = Path(sys.executable).parent / "llm-router"
    command = overhead._pinned(core, [str(cli), "serve", "--config", str(config), "--port", str(port)])
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    _ready(f"http://127.0.0.1:{port}/health/ready", process, log, name, 60)
    model, expect = {
        "ours-direct-pick": ("bench-fast", {"llm": "bench-fast"}),
        "ours-rules": (f"router:{overhead.POLICY}", {"category": overhead.EXPECTED_CATEGORY}),
        "ours-embedded-task": ("router:task", {"policy": "task", "category": "Code Generation"}),
    }[name]
    return Running(name, f"http://127.0.0.1:{port}/v1/chat/completions", process.pid, model, {}, expect,
                   f"llm-router {version('llm-router')}", config, process, log)


def _ready(url: str, process: subprocess.Popen[bytes], log: Path, what: str, timeout: float) -> None:
    try:
        overhead._wait_http(url, process, log, what, timeout)
    except SystemExit as exc:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = next((line for line in reversed(lines[1:]) if "error" in line.lower()), lines[-1] if lines else "")
        raise SystemUnavailable(f"{lines[0] if lines else what} {detail}"[:300]) from None


def install_litellm(log: Callable[[str], None]) -> Path:
    """LiteLLM's proxy in its own virtualenv (never the project's); returns its ``litellm`` script.

    The registry here lacks two exact pins of ``litellm[proxy]`` (a certifi newer
    than the newest it has; ``litellm-proxy-extras``, DB migrations this run never
    uses), so the install goes through ``uv pip install --override`` with the
    newest available of each."""
    venv = PEERS / "litellm"
    script = venv / "bin" / "litellm"
    stamp = venv / f".installed-{LITELLM_VERSION}"
    if stamp.exists() and script.exists():
        return script
    PEERS.mkdir(parents=True, exist_ok=True)
    log(f"installing LiteLLM {LITELLM_VERSION} into {venv} (once, a few minutes)")
    overrides = PEERS / "litellm-overrides.txt"
    overrides.write_text("".join(f"{pin}\n" for pin in LITELLM_OVERRIDES))
    _run_or_unavailable([sys.executable, "-m", "venv", str(venv)], "litellm venv")
    _run_or_unavailable([str(venv / "bin" / "pip"), "install", "-q", "uv"], "pip install uv")
    _run_or_unavailable([str(venv / "bin" / "uv"), "pip", "install", "--python", str(venv / "bin" / "python"),
                         "--override", str(overrides), f"litellm[proxy]=={LITELLM_VERSION}"],
                        "uv pip install litellm[proxy]")
    stamp.touch()
    return script


def install_portkey(log: Callable[[str], None]) -> Path:
    """The Portkey gateway from npm, pinned, under ``.cache/peers/portkey``; returns its start script."""
    prefix = PEERS / "portkey"
    script = prefix / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if script.exists() and f'"version": "{PORTKEY_VERSION}"' in (script.parents[1] / "package.json").read_text():
        return script
    prefix.mkdir(parents=True, exist_ok=True)
    log(f"installing @portkey-ai/gateway {PORTKEY_VERSION} into {prefix} (once)")
    _run_or_unavailable(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
                         f"@portkey-ai/gateway@{PORTKEY_VERSION}"], "npm install @portkey-ai/gateway")
    return script


def _run_or_unavailable(command: list[str], what: str) -> None:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SystemUnavailable(f"{what} failed: {exc}") from None
    if completed.returncode != 0:
        last = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SystemUnavailable(f"{what} failed: {last[0][:200]}")


def start_litellm(upstream_port: int, core: str, workdir: Path, log: Callable[[str], None]) -> Running:
    script = install_litellm(log)
    port = overhead._free_port()
    # LiteLLM refuses to start without a master key; a throwaway one for this run (it guards nothing).
    key = f"sk-{secrets.token_hex(16)}"
    config = workdir / "litellm.yaml"
    config.write_text(f"""\
model_list:
  - model_name: {overhead.UPSTREAM_MODEL}
    litellm_params:
      model: openai/{overhead.UPSTREAM_MODEL}
      api_base: http://127.0.0.1:{upstream_port}/v1
      api_key: bench-not-a-secret
general_settings:
  master_key: {key}
litellm_settings:
  telemetry: false
  set_verbose: false
""")
    out = workdir / "litellm.log"
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "NO_DOCS": "True"}
    command = overhead._pinned(core, [str(script), "--config", str(config), "--host", "127.0.0.1",
                                      "--port", str(port), "--num_workers", "1", "--telemetry", "False"])
    process = subprocess.Popen(command, stdout=out.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=workdir)
    _ready(f"http://127.0.0.1:{port}/health/liveliness", process, out, "litellm", 120)
    return Running("litellm", f"http://127.0.0.1:{port}/v1/chat/completions", process.pid, overhead.UPSTREAM_MODEL,
                   {"Authorization": f"Bearer {key}"}, {}, f"LiteLLM proxy {LITELLM_VERSION}",
                   config, process, out)


def start_portkey(upstream_port: int, core: str, workdir: Path, log: Callable[[str], None]) -> Running:
    script = install_portkey(log)
    port = overhead._free_port()
    out = workdir / "portkey.log"
    # The gateway refuses loopback custom hosts unless they are trusted.
    env = {**os.environ, "NODE_ENV": "production", "TRUSTED_CUSTOM_HOSTS": "127.0.0.1,localhost"}
    command = overhead._pinned(core, ["node", str(script), f"--port={port}", "--headless"])
    process = subprocess.Popen(command, stdout=out.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=workdir)
    _ready(f"http://127.0.0.1:{port}/", process, out, "portkey", 60)
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": f"http://127.0.0.1:{upstream_port}/v1",
               "Authorization": "Bearer bench-not-a-secret"}
    return Running("portkey", f"http://127.0.0.1:{port}/v1/chat/completions", process.pid, overhead.UPSTREAM_MODEL,
                   headers, {}, f"Portkey gateway {PORTKEY_VERSION}", None, process, out)


def start_system(name: str, upstream_port: int, upstream_pid: int, core: str, workdir: Path,
                 log: Callable[[str], None]) -> Running:
    """Start ``name``; raises ``SystemUnavailable`` with the reason when it cannot."""
    if name == "direct":
        return Running("direct", f"http://127.0.0.1:{upstream_port}/v1/chat/completions", upstream_pid,
                       overhead.UPSTREAM_MODEL, version="the upstream itself (no proxy)")
    if name in OURS:
        return start_ours(name, upstream_port, core, workdir)
    if name == "litellm":
        return start_litellm(upstream_port, core, workdir, log)
    if name == "portkey":
        return start_portkey(upstream_port, core, workdir, log)
    raise ValueError(f"unknown system {name!r}; known: {', '.join(ALL_SYSTEMS)}")
