"""The data plane: an OpenAI-compatible routing proxy (aiohttp)."""
