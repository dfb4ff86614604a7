"""What model classifiers share across policies and config reloads, owned by one router.

The embedded encoder runtimes (one per encoder variant: loading an encoder
takes a while and its micro-batcher should see every policy's requests) and
the Triton connections (one gRPC channel per URL). A ``ConfigHolder`` passes
the same ``ClassifierResources`` to every config it builds, and the app
closes it on shutdown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model_classifier import EmbeddedRuntime
    from .triton_classifier import TritonConnection, TritonConnections


class ClassifierResources:
    def __init__(self) -> None:
        self._runtimes: dict[str, EmbeddedRuntime] = {}
        self._triton: TritonConnections | None = None

    def runtime(self, variant: str = "fp32") -> EmbeddedRuntime:
        runtime = self._runtimes.get(variant)
        if runtime is None:
            from .model_classifier import EmbeddedRuntime

            runtime = self._runtimes[variant] = EmbeddedRuntime(variant=variant)  # type: ignore[arg-type]
        return runtime

    def triton(self, url: str) -> TritonConnection:
        if self._triton is None:
            from .triton_classifier import TritonConnections

            self._triton = TritonConnections()
        return self._triton.get(url)

    async def aclose(self) -> None:
        for runtime in self._runtimes.values():
            await runtime.aclose()
        if self._triton is not None:
            await self._triton.aclose()
