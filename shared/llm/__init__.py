"""The model provider's client (client.py) and what it reads (sse.py, usage.py)."""

from typing import Literal

# The request field that caps a reply's tokens. `max_tokens` is OpenRouter's
# (and older OpenAI models'); OpenAI's newer models (o-series, GPT-5) refuse
# it with a 400 and take only `max_completion_tokens`, which other
# OpenAI-compatible servers may ignore. So the name is a setting, never
# guessed from the URL. Here, not in client.py: the settings need it, and
# bot-trigger's cold start must not import the client.
MaxTokensParameter = Literal["max_tokens", "max_completion_tokens"]
