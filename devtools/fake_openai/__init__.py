"""The OpenAI-compatible server the tests and benchmarks talk to over real HTTP."""

from fake_openai.server import (
    FakeOpenAIServer,
    FakeServerConfig,
    expected_answer,
    prompt_key,
    register_extension,
)

__all__ = ["FakeOpenAIServer", "FakeServerConfig", "expected_answer", "prompt_key", "register_extension"]
