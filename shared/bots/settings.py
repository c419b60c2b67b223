"""Settings of the bot pipeline's two functions."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from shared.llm import MaxTokensParameter
from shared.settings import EnvSettings

OPENROUTER = "https://openrouter.ai/api/v1"
# The queue's maxReceiveCount is BOT_MAX_RECEIVES + SPARE_RECEIVES: SQS counts
# receives, not attempts, so a receive lost to throttling or a crashed
# invocation must not cost the last attempt, the one that writes the error
# notice. Only a job that fails every receive reaches the dead-letter queue.
SPARE_RECEIVES = 2
# BOT_PROMPT_MAX_BYTES's default: ten chat lines of a usual size fit many
# times over; a few 16 KiB ones do not (shared/bots/worker.py, conversation).
PROMPT_MAX_BYTES = 24 * 1024


class BotTriggerSettings(EnvSettings):
    # The secret the database sends; during a rotation, the new one first,
    # then the old, comma-separated: both are accepted (docs/runbook.md).
    webhook_secret: SecretStr = Field(validation_alias="WEBHOOK_SECRET")
    webhook_secret_header: str = Field(
        default="x-webhook-secret", validation_alias="WEBHOOK_SECRET_HEADER"
    )
    bot_queue_url: str = Field(validation_alias="BOT_QUEUE_URL")

    @field_validator("webhook_secret")
    @classmethod
    def _strong(cls, value: SecretStr) -> SecretStr:
        secrets = value.get_secret_value().split(",")
        if any(len(secret.strip()) < 16 for secret in secrets):
            raise ValueError("must be at least 16 characters (each, when comma-separated)")
        return value

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        """Every accepted secret, the current one first."""
        return tuple(secret.strip() for secret in self.webhook_secret.get_secret_value().split(","))

    @field_validator("webhook_secret_header")
    @classmethod
    def _header(cls, value: str) -> str:
        return value.strip().lower()


class BotWorkerSettings(EnvSettings):
    openrouter_api_key: SecretStr | None = Field(
        default=None, validation_alias="OPENROUTER_API_KEY"
    )
    llm_base_url: str = Field(default=OPENROUTER, validation_alias="LLM_BASE_URL")
    llm_timeout_seconds: float = Field(default=60.0, gt=0, validation_alias="LLM_TIMEOUT_SECONDS")
    # The last attempt: from this receive on a failure is final (the error
    # notice). The queue's maxReceiveCount is this + SPARE_RECEIVES.
    bot_max_receives: int = Field(default=5, ge=1, validation_alias="BOT_MAX_RECEIVES")
    # Seconds before a failed job is received again, by receive (the last
    # one repeats): ChangeMessageVisibility on the failed message.
    bot_retry_delays: tuple[int, ...] = Field(
        default=(5, 20, 60, 180), validation_alias="BOT_RETRY_DELAYS"
    )
    # The queue jobs come from (unset: the URL is made from the records' queue ARN).
    bot_queue_url: str | None = Field(default=None, validation_alias="BOT_QUEUE_URL")
    bot_history: int = Field(default=10, ge=1, le=50, validation_alias="BOT_HISTORY")
    # What those lines may weigh in the prompt (UTF-8 bytes, the bot's own
    # prompt included): the newest that fit are kept (shared/bots/worker.py).
    bot_prompt_max_bytes: int = Field(
        default=PROMPT_MAX_BYTES, ge=1024, le=256 * 1024, validation_alias="BOT_PROMPT_MAX_BYTES"
    )
    stream_write_interval_seconds: float = Field(
        default=0.25, ge=0, validation_alias="BOT_STREAM_WRITE_INTERVAL"
    )
    # The provider's max_tokens for a reply: what one reply may cost, and so
    # how far a bot's daily budget can be overrun (shared/bots/budget.py).
    # A reply is cut to 16 KiB of text when stored, about 4,000 tokens.
    bot_max_reply_tokens: int = Field(
        default=2048, ge=16, le=32768, validation_alias="BOT_MAX_REPLY_TOKENS"
    )
    # The field that carries it (shared.llm.client.MaxTokensParameter):
    # OpenRouter's max_tokens, or max_completion_tokens for OpenAI's newer models.
    llm_max_tokens_parameter: MaxTokensParameter = Field(
        default="max_tokens", validation_alias="LLM_MAX_TOKENS_PARAMETER"
    )

    echo_word_delay_seconds: float = Field(
        default=0.1, ge=0, le=2, validation_alias="ECHO_WORD_DELAY_SECONDS"
    )

    @field_validator("openrouter_api_key")
    @classmethod
    def _blank_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator("bot_retry_delays", mode="before")
    @classmethod
    def _delays(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("bot_retry_delays")
    @classmethod
    def _delays_in_range(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        # SQS takes whole seconds, at most 12 hours.
        if not value or any(not 0 <= delay <= 43_200 for delay in value):
            raise ValueError("must be comma-separated whole seconds between 0 and 43200")
        return value

    def retry_delay(self, receives: int, asked: float | None = None) -> int:
        """Seconds to wait after the `receives`-th receive failed; a provider's
        Retry-After is honoured up to the longest configured delay."""
        delay = self.bot_retry_delays[min(max(receives, 1), len(self.bot_retry_delays)) - 1]
        if asked is not None:
            delay = max(delay, min(int(asked), max(self.bot_retry_delays)))
        return delay

    @field_validator("llm_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")
