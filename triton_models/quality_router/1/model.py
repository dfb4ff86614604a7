"""Triton Python backend entry point: llm-router's shared classifier model."""

from llm_router.proxy.triton_backend import TritonPythonModel  # noqa: F401
