"""The config a router is serving, and swapping in a new one.

An ``ActiveConfig`` is immutable: the validated config plus everything built
from it (classifiers, upstream endpoints). A request takes the active one when
it starts and keeps it to the end, so a swap never changes a request in
flight. ``ConfigHolder.apply`` builds the new one completely before the swap;
anything that fails leaves the old one serving.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .classifier_resources import ClassifierResources
from .classifiers import Classifier, build_classifier
from .config import RouterConfig
from .config_file import ConfigError, ConfigIssue, parse_config
from .llm_runtime import LLMRuntime, LLMRuntimes
from .metrics import RouterMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveConfig:
    config: RouterConfig
    revision: str
    classifiers: dict[str, Classifier]
    runtimes: dict[str, LLMRuntime]
    """Live per-LLM state (circuit breaker, replicas), shared with the configs before and after."""
    applied_at: float

    @classmethod
    def build(cls, config: RouterConfig, resources: ClassifierResources | None = None,
              runtimes: LLMRuntimes | None = None) -> ActiveConfig:
        """Everything a request needs, built up front; raises ``ConfigError``. Model classifiers share
        ``resources`` and LLMs keep their state in ``runtimes`` (new ones when not given)."""
        resources = resources or ClassifierResources()
        classifiers: dict[str, Classifier] = {}
        for policy in config.policies:
            try:
                classifiers[policy.name] = build_classifier(policy, config.router.classifier_backend, resources)
            except Exception as exc:
                raise ConfigError("<config>", [ConfigIssue(f"policies.{policy.name}.classifier", None, str(exc))]) \
                    from None
        by_name = (runtimes or LLMRuntimes(RouterMetrics())).update(config)
        return cls(config, config.revision, classifiers, by_name, time.time())


class ConfigHolder:
    """Holds the active config and applies new ones, counting each attempt."""

    def __init__(self, config: RouterConfig, metrics: RouterMetrics, source: str | None = None) -> None:
        self.metrics = metrics
        self.source = source
        self.last_error: str | None = None
        self._seen_digest: str | None = None
        self.resources = ClassifierResources()
        """Encoder runtimes and Triton connections, kept across reloads; closed with the app."""
        self.runtimes = LLMRuntimes(metrics)
        """Circuit breakers and replica load per LLM, kept across reloads."""
        self.active = ActiveConfig.build(config, self.resources, self.runtimes)
        self._announce()

    def apply(self, config: RouterConfig) -> bool:
        """Swap in ``config``; ``False`` when it equals the active one."""
        if config.revision == self.active.revision:
            self.metrics.child(self.metrics.config_reloads, "unchanged").inc()
            return False
        self.active = ActiveConfig.build(config, self.resources, self.runtimes)
        self._announce()
        return True

    def reload_text(self, text: str, source: str) -> bool:
        """Validate and apply a config document. An invalid one is refused with
        a log line and a metric; the active config keeps serving."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest == self._seen_digest:
            return False
        self._seen_digest = digest
        try:
            config = parse_config(text, source=source)
            applied = self.apply(config)
            self.last_error = None
        except ConfigError as exc:
            self.last_error = exc.describe()
            self.metrics.child(self.metrics.config_reloads, "invalid").inc()
            log.error("refused new config, still serving revision %s: %s", self.active.revision, exc.describe())
            return False
        return applied

    def reload_file(self, path: Path) -> bool:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.metrics.child(self.metrics.config_reloads, "invalid").inc()
            self.last_error = f"{path}: cannot read: {exc}"
            log.error("cannot read config %s, still serving revision %s: %s", path, self.active.revision, exc)
            return False
        return self.reload_text(text, str(path))

    def _announce(self) -> None:
        active = self.active
        self.metrics.child(self.metrics.config_reloads, "applied").inc()
        self.metrics.set_active_config(active.revision, active.config.schema_version, active.applied_at)
        log.info("serving config revision %s (%d LLMs, %d policies)", active.revision,
                 len(active.config.llms), len(active.config.policies))
