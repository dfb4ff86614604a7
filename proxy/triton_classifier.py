"""Model classifiers served by Triton, called with ``tritonclient.grpc.aio``.

One gRPC channel per router process and Triton URL, created on first use in
the running event loop and reused by every policy; each call carries the
backend's deadline. The proxy renders the conversation (``classifier_text``),
Triton runs encoder and head (``triton_backend``), and the proxy turns the
outputs into a decision with the same function the embedded path uses, so a
prompt gets the same decision either way. Anything that goes wrong (Triton
down, slow, unknown model) raises ``ClassifierUnavailable``: the policy's
``failure_mode`` takes it from there.
"""

from __future__ import annotations

import asyncio

import numpy as np

from .classifiers import Classification, ClassifierInput, ClassifierUnavailable
from .conversation import classifier_text
from .model_classifier import Head, classifications_from_outputs


class TritonConnection:
    """The lazily created ``grpc.aio`` client of one Triton server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: object | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def client(self):  # tritonclient's InferenceServerClient, imported lazily
        # A grpc.aio channel belongs to the loop it was made in: a router has one loop, tests many.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            from tritonclient.grpc.aio import InferenceServerClient

            self._client = InferenceServerClient(self.url)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()  # type: ignore[attr-defined]


class TritonConnections:
    """Connections by URL, kept across config reloads."""

    def __init__(self) -> None:
        self._by_url: dict[str, TritonConnection] = {}

    def get(self, url: str) -> TritonConnection:
        connection = self._by_url.get(url)
        if connection is None:
            connection = self._by_url[url] = TritonConnection(url)
        return connection

    async def aclose(self) -> None:
        for connection in self._by_url.values():
            await connection.aclose()
        self._by_url.clear()


class TritonClassifier:
    """The ``Classifier`` protocol for a ``type: model`` policy when ``classifier_backend.triton_url`` is set."""

    kind = "triton"

    def __init__(self, head: Head, connection: TritonConnection, *, timeout: float) -> None:
        self.head = head
        self.connection = connection
        self.timeout = timeout

    @property
    def categories(self) -> list[str]:
        return self.head.categories

    async def classify(self, request: ClassifierInput) -> Classification:
        from tritonclient.grpc import InferInput
        from tritonclient.utils import InferenceServerException

        text = np.array([[classifier_text(request.turns).encode()]], dtype=np.object_)
        item = InferInput("TEXT", [1, 1], "BYTES")
        item.set_data_from_numpy(text)
        try:
            result = await self.connection.client().infer(self.head.name, [item], client_timeout=self.timeout)
        except InferenceServerException as exc:
            raise ClassifierUnavailable(f"Triton at {self.connection.url}, model {self.head.name!r}: "
                                        f"{exc.message() or exc.status()}") from None
        probabilities = result.as_numpy("CONFIDENCES")
        scores = result.as_numpy("SCORES") if self.head.score_names else None
        if probabilities is None or probabilities.shape[-1] != len(self.head.labels):
            raise ClassifierUnavailable(f"Triton model {self.head.name!r} answered with confidences of shape "
                                        f"{None if probabilities is None else probabilities.shape}; expected "
                                        f"{len(self.head.labels)} labels")
        if scores is not None:
            scores = scores[:, : len(self.head.score_names)]  # the last column is the overall score
        return classifications_from_outputs(self.head, probabilities, scores)[0]
