# The operator (control plane): `llm-router operator run` with the operator extra (kopf, kubernetes, jinja2).
# Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t ghcr.io/llm-router/llm-router-operator:0.1.0 .
# Bases are pinned to exact version tags (digests cannot be fetched offline where this was written).

# Stage 1: the package with the operator extra in a virtualenv.
FROM python:3.11.14-slim-bookworm AS venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy/ proxy/
COPY operator/ operator/
COPY training/ training/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir '.[operator]'

# Stage 2: what runs. The operator checks routes against the model repository's labels, so it carries a copy.
FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="llm-router-operator" \
      org.opencontainers.image.description="OpenAI-compatible LLM router: the Kubernetes operator" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 llm-router \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin llm-router
COPY --from=venv /opt/venv /opt/venv
COPY triton_models/ /opt/llm-router/triton_models/
# model_repository: null (the default setting) reads triton_models/ beside the package: the image's copy.
RUN ln -s /opt/llm-router/triton_models /opt/venv/lib/python3.11/site-packages/llm_router/triton_models
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8081
# Kubernetes ignores HEALTHCHECK: probe kopf's liveness endpoint http://:8081/healthz (`--liveness`).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=4)"]
ENTRYPOINT ["llm-router"]
CMD ["operator", "run"]
