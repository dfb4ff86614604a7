"""Running a real Triton Inference Server from the ``nvidia-pytriton`` wheel, without containers.

The wheel ships ``tritonserver`` (Triton 2.51) with the Python backend. Used
bare, it needs three things set up (measured pitfalls, see
shared/docs/environment.md): the backend library, its utils module and the
stub for this Python version in one backend directory; ``LD_LIBRARY_PATH``
with this Python's ``lib`` directory and the wheel's bundled libraries; and
this environment's ``python3`` first on ``PATH`` (the stub runs it, and the
models import ``llm_router``). In a cluster the Triton image does this; here
``TritonServer`` does, for tests, benchmarks and ``llm-router triton serve``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .cache import cache_dir
from .quickstart import free_port

REPOSITORY = Path(__file__).resolve().parent.parent / "triton_models"
"""The model repository of a source checkout."""


class TritonUnavailable(RuntimeError):
    """tritonserver is not installed or did not start."""


def _pytriton_root() -> Path:
    try:
        import pytriton
    except ImportError:
        raise TritonUnavailable("tritonserver comes from the nvidia-pytriton package: "
                                "pip install 'llm-router[triton]'") from None
    return Path(pytriton.__file__).parent / "tritonserver"


def prepare_backend_dir(root: Path | None = None) -> Path:
    """A backend directory with the Python backend and this Python's stub."""
    source = _pytriton_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = source / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonUnavailable(f"nvidia-pytriton has no Python backend stub for Python {version}")
    backends = (root or cache_dir() / "triton") / "backends"
    target = backends / "python"
    target.mkdir(parents=True, exist_ok=True)
    for file in (source / "backends" / "python" / "libtriton_python.so",
                 source / "backends" / "python" / "triton_python_backend_utils.py", stub):
        destination = target / file.name
        if not destination.exists() or destination.stat().st_size != file.stat().st_size:
            shutil.copy2(file, destination)
    return backends


def server_environment() -> dict[str, str]:
    libs = _pytriton_root().parent.parent / "nvidia_pytriton.libs"  # the wheel's bundled libraries
    python_lib = sysconfig.get_config_var("LIBDIR") or ""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        part for part in (python_lib, str(libs), env.get("LD_LIBRARY_PATH", "")) if part)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


@dataclass
class TritonServer:
    """A tritonserver process on loopback serving ``model_repository``.

    ``with TritonServer() as triton: triton.grpc_url`` starts it, waits until
    every model is ready and stops it on exit (also ``stop()``/``start()``
    for tests that take it down mid-run)."""

    model_repository: Path = REPOSITORY
    models: list[str] | None = None
    """Load only these models (explicit model control); all when ``None``."""
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    log_path: Path | None = None
    startup_timeout: float = 120.0
    process: subprocess.Popen[bytes] | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def command(self) -> list[str]:
        binary = _pytriton_root() / "bin" / "tritonserver"
        command = [
            str(binary), "--model-repository", str(self.model_repository),
            "--backend-directory", str(prepare_backend_dir()),
            "--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1", "--metrics-address", "127.0.0.1",
            "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
            "--metrics-port", str(self.metrics_port), "--log-verbose", "0", "--exit-on-error", "true",
        ]
        if self.models is not None:
            command += ["--model-control-mode", "explicit"]
            command += [f"--load-model={name}" for name in self.models]
        return command

    def start(self) -> TritonServer:
        log_path = self.log_path or cache_dir() / "triton" / f"tritonserver-{self.grpc_port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            env=server_environment(), start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://127.0.0.1:{self.http_port}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TritonUnavailable(f"tritonserver exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise TritonUnavailable(f"tritonserver not ready after {self.startup_timeout:g}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
