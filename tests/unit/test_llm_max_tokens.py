"""The field that caps a reply's tokens, as the provider names it:
OpenRouter's `max_tokens` by default, `max_completion_tokens` for OpenAI's
newer models, which refuse `max_tokens` with a 400."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shared.errors import ConfigurationError
from shared.llm.client import ChatMessage, LlmError, OpenAICompatible
from shared.settings import load
from tests.support.fake_llm import FakeLlm, reply, running

pytestmark = pytest.mark.unit

ASK = [ChatMessage("user", "hi")]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0)) as client:
        yield client


def test_by_default_the_cap_is_openrouters_max_tokens(http: httpx.Client) -> None:
    with running(FakeLlm(script=[reply("fine")])) as llm:
        model = OpenAICompatible(llm.url, "sk-test", http, deadline_seconds=10, max_tokens=300)
        assert "".join(model.stream("m", ASK)) == "fine"
    body = llm.requests[0]["body"]
    assert body["max_tokens"] == 300
    assert "max_completion_tokens" not in body


def test_a_model_that_refuses_max_tokens_gets_max_completion_tokens(http: httpx.Client) -> None:
    # Given a model that refuses max_tokens, as OpenAI's newer models do
    with running(FakeLlm(script=[reply("fine")], refused_parameters=("max_tokens",))) as llm:
        # the default fails for good: a 400 is not retried
        default = OpenAICompatible(llm.url, "sk-test", http, deadline_seconds=10, max_tokens=300)
        with pytest.raises(LlmError) as refused:
            "".join(default.stream("m", ASK))
        assert (refused.value.status, refused.value.retryable) == (400, False)

        # When the client is told the provider's name for the cap
        model = OpenAICompatible(llm.url, "sk-test", http, deadline_seconds=10, max_tokens=300,
                                 max_tokens_parameter="max_completion_tokens")  # fmt: skip

        # Then the reply comes, capped under that name only
        assert "".join(model.stream("m", ASK)) == "fine"
    body = llm.requests[-1]["body"]
    assert body["max_completion_tokens"] == 300
    assert "max_tokens" not in body


def test_the_setting_takes_only_the_two_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.bots.settings import BotWorkerSettings

    monkeypatch.delenv("LLM_MAX_TOKENS_PARAMETER", raising=False)
    assert load(BotWorkerSettings).llm_max_tokens_parameter == "max_tokens"
    monkeypatch.setenv("LLM_MAX_TOKENS_PARAMETER", "max_completion_tokens")
    assert load(BotWorkerSettings).llm_max_tokens_parameter == "max_completion_tokens"
    for bad in ("max_output_tokens", "MAX_TOKENS", ""):
        monkeypatch.setenv("LLM_MAX_TOKENS_PARAMETER", bad)
        with pytest.raises(ConfigurationError, match="LLM_MAX_TOKENS_PARAMETER"):
            load(BotWorkerSettings)
