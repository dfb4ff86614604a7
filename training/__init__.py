"""Building training sets and training classifier heads (``llm-router train``).

Importable as ``llm_router.training``; needs the ``train`` extra."""
