"""The fake LLM provider, shared with tests/llm."""

from tests.llm.conftest import fake, fake_server  # noqa: F401
