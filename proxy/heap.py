"""Keeping the garbage collector's full passes short.

A serving router holds tens of thousands of long-lived objects (~61,000 with a
small config): imported modules, pydantic models, the config, metrics,
classifier resources. CPython's full (generation 2) collection walks every one
of them; measured under load that is a 30-50 ms pause every ~7 s at 600 req/s,
which every request in flight waits out, enough on its own to
set the p99 (bench/README.md, "Garbage-collector pauses"). ``gc.freeze`` moves
what exists once the router is ready out of the collector's reach, so its passes
walk only what was allocated since. Reference counting still frees frozen
objects; only a reference cycle among them is never reclaimed, which bounds the
cost to the startup config's cycles, once: later configs are not frozen.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> int:
    """Collect once, then freeze everything that survived; returns the number of objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
