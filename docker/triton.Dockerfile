# The router's Triton Inference Server: NVIDIA's Triton (Python backend) serving triton_models/, whose
# model.py files import llm_router. Build from the repository root:
#   docker build -f docker/triton.Dockerfile -t ghcr.io/llm-router/llm-router-triton:0.1.0 .
# Bases are pinned to exact version tags (digests cannot be fetched offline where this was written).

# Stage 1: build the ONNX sentence encoder once; torch (CPU wheel) lives only in this stage.
FROM python:3.11.14-slim-bookworm AS encoder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY proxy/ proxy/
COPY operator/ operator/
COPY training/ training/
# The project itself (its dependency ranges are in pyproject.toml): DL3013 is about named packages.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[build]' \
 && LLM_ROUTER_CACHE=/build/cache llm-router models build

# Stage 2: llm_router and its serving dependencies (numpy<2, onnxruntime, tokenizers) installed with the
# Triton image's own python3, the interpreter its Python-backend stub embeds, into one directory.
FROM nvcr.io/nvidia/tritonserver:25.01-py3 AS site
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy/ proxy/
COPY operator/ operator/
COPY training/ training/
RUN python3 -m pip install --no-cache-dir --target /opt/llm-router/site-packages .

# Stage 3: what runs. The stub inherits PYTHONPATH, so `from llm_router.proxy.triton_backend import ...` in
# each model.py resolves to the copied package; the encoder runs on onnxruntime's CPU provider.
FROM nvcr.io/nvidia/tritonserver:25.01-py3
LABEL org.opencontainers.image.title="llm-router-triton" \
      org.opencontainers.image.description="OpenAI-compatible LLM router: Triton serving the classifiers" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=site /opt/llm-router/site-packages /opt/llm-router/site-packages
COPY --from=encoder /build/cache/encoders /opt/llm-router/cache/encoders
COPY triton_models/ /opt/llm-router/triton_models/
ENV PYTHONPATH=/opt/llm-router/site-packages \
    LLM_ROUTER_CACHE=/opt/llm-router/cache \
    LLM_ROUTER_ENCODER_THREADS=1 \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1
# The operator's Deployment runs Triton as uid/gid 1000 with a read-only root filesystem (/tmp, /dev/shm
# and the assembled /models are emptyDirs).
USER 1000:1000
EXPOSE 8000 8001 8002
# Kubernetes ignores HEALTHCHECK: the operator's Deployment probes /v2/health/live and /v2/health/ready on 8000.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/live', timeout=2)"]
CMD ["tritonserver", "--model-repository=/opt/llm-router/triton_models", "--model-control-mode=none"]
