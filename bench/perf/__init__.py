"""Performance evidence: llm-router against direct, LiteLLM and Portkey, on one upstream and one load.

``python -m bench.perf`` (``make bench-perf``) starts the fast upstream and the
open-loop load generator of ``bench/overhead.py`` on the load core, each system
under test alone on the other core, and writes ``results.json``, ``report.md``
and PNG plots under ``bench/results/perf-<timestamp>/``. See bench/README.md.
"""
