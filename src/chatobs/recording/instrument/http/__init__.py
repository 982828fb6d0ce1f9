"""LLM calls made over plain HTTP (``httpx``, ``requests``, ``aiohttp``) to OpenAI-compatible or Anthropic endpoints.

One adapter module per client library (``httpx_client``, ``requests_client``, ``aiohttp_client``), each patching its
library's send method when the app imports it; what they share is in :mod:`.core`. See docs/llm.md.
"""
