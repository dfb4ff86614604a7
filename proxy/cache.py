"""Where llm-router keeps what it builds or assembles: ``$LLM_ROUTER_CACHE`` or ``~/.cache/llm-router``.

The encoder build, the quick start's Gemma model and server logs, the local
Triton's backend directory and training's embedding cache all live under it.
Standard library only, so the Triton Python backend's imports stay small."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    configured = os.environ.get("LLM_ROUTER_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "llm-router"
