# The routing proxy: `llm-router serve`, the embedded classifier's ONNX encoder and the model repository.
# Build from the repository root: docker build -f docker/proxy.Dockerfile -t ghcr.io/llm-router/llm-router:0.1.0 .
# Bases are pinned to exact version tags (digests cannot be fetched offline where this was written; pin them
# with `docker buildx imagetools inspect` in a release pipeline).

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

# Stage 2: the package and its serving dependencies (with the Triton gRPC client) in a virtualenv, no torch.
FROM python:3.11.14-slim-bookworm AS venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy/ proxy/
COPY operator/ operator/
COPY training/ training/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir '.[triton]'

# Stage 3: what runs. Read-only root filesystem friendly: nothing is written outside /tmp (an emptyDir in the pod).
FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="llm-router" \
      org.opencontainers.image.description="OpenAI-compatible LLM router: the routing proxy" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 llm-router \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin llm-router
COPY --from=venv /opt/venv /opt/venv
COPY --from=encoder /build/cache/encoders /opt/llm-router/cache/encoders
COPY triton_models/ /opt/llm-router/triton_models/
# The package's default model repository (triton_models/ beside its folders) points at the image's copy.
RUN ln -s /opt/llm-router/triton_models /opt/venv/lib/python3.11/site-packages/llm_router/triton_models
ENV PATH=/opt/venv/bin:$PATH \
    LLM_ROUTER_CACHE=/opt/llm-router/cache \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
# Kubernetes ignores HEALTHCHECK: the operator's Deployment probes /health/live and /health/ready on port 8080.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/live', timeout=2)"]
ENTRYPOINT ["llm-router"]
CMD ["serve", "--config", "/etc/llm-router/config.yaml", "--host", "0.0.0.0", "--port", "8080"]
