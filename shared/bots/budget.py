"""Per-bot daily budgets of model tokens: the worker's side of
infra/supabase/migrations/20261203000210_bot_budgets.sql.

Before a bot's model is called the worker asks the database for a hold on
the bot's budget (and its space's) of the most the reply can cost: the
prompt, estimated from its text, plus the reply's cap (max_tokens). Refused,
the bot answers with a short notice instead of calling the model, and one
log line with the event `bot_budget_exhausted` says so (the metric's
source). After the reply its cost is recorded: the provider's usage from
the stream, else an estimate from the text.

The worker's hook: its model factory wrapped by `metered`, and `OverBudget`
answered with the notice (shared/bots/worker.py, `answer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from shared.auth.principal import SERVICE
from shared.bots.models import BotJob
from shared.db.port import Database
from shared.errors import AppError
from shared.llm.client import ChatMessage, ChatModel, LlmError
from shared.llm.usage import Usage
from shared.logs import get_logger

logger = get_logger("bot-worker")

EVENT = "bot_budget_exhausted"
# Byte-level tokenizers make a token of ~4 bytes of English and ~2-3 of
# other scripts: counting 3 estimates a little high, as a budget should.
BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD_TOKENS = 4  # a chat message's role and separators
UNCAPPED_REPLY_TOKENS = 1024  # held for a model without max_tokens (the offline echo)

ModelFor = Callable[[str | None], ChatModel]


def estimate_tokens(text: str) -> int:
    return -(-len(text.encode("utf-8", "surrogatepass")) // BYTES_PER_TOKEN)


def prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    return sum(estimate_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in messages)


class OverBudget(Exception):
    """The bot (scope "bot"), the member who asked (their share of the bot:
    "member") or the space ("space") has spent its tokens for today."""

    def __init__(self, scope: str, resets_at: str) -> None:
        super().__init__(f"the {scope}'s daily token budget is spent")
        self.scope = scope
        self.resets_at = resets_at

    def notice(self, bot_name: str) -> str:
        """What the bot says instead of answering."""
        whose, whom = {
            "bot": ("its daily budget", ""),
            "member": ("your share of its daily budget", " you"),
        }.get(self.scope, ("this space's daily budget", ""))
        try:
            when = f"at {datetime.fromisoformat(self.resets_at):%H:%M} UTC"
        except ValueError:
            when = "tomorrow"
        return f"{bot_name} has used up {whose} of model tokens and will answer{whom} again {when}."


class MeteredModel:
    """A model whose every reply is held against the budget before it is
    asked for, and recorded after."""

    def __init__(self, inner: ChatModel, db: Database, job: BotJob) -> None:
        self._inner = inner
        self._db = db
        self._job = job

    def stream(
        self, model: str, messages: Sequence[ChatMessage], *, deadline: float
    ) -> Iterator[str]:
        prompt = prompt_tokens(messages)
        cap = getattr(self._inner, "max_tokens", None) or UNCAPPED_REPLY_TOKENS
        self._reserve(prompt + cap)
        text: list[str] = []
        failure: BaseException | None = None
        inner = self._inner.stream(model, messages, deadline=deadline)
        try:
            for delta in inner:
                text.append(delta)
                yield delta
        except BaseException as exc:
            failure = exc
            raise
        finally:
            # Closed here, not left to the collector: the worker closes this
            # stream when the reply is long enough, and the provider's reader
            # must stop at once.
            close = getattr(inner, "close", None)
            if close is not None:
                close()
            self._record(prompt, "".join(text), failure)

    def _args(self) -> dict[str, Any]:
        return {"_bot_id": self._job.bot_id, "_trigger_id": self._job.trigger_id}

    def _reserve(self, tokens: int) -> None:
        hold = self._db.call("reserve_bot_tokens", {**self._args(), "_tokens": tokens}, SERVICE)
        if hold.get("granted"):
            return
        scope = str(hold.get("scope"))
        logger.warning(
            "bot over its token budget: answered with a notice",
            extra={
                "event": EVENT,
                "bot_id": self._job.bot_id,
                "space_id": self._job.space_id,
                "trigger_id": self._job.trigger_id,
                "scope": scope,
                "member": hold.get("member"),
                "budget": hold.get("budget"),
                "spent": hold.get("spent"),
                "held": hold.get("held"),
            },
        )
        raise OverBudget(scope, str(hold.get("resets_at")))

    def _record(self, prompt: int, text: str, failure: BaseException | None) -> None:
        usage = getattr(self._inner, "usage", None)
        if isinstance(usage, Usage):
            tokens, estimated = usage.total_tokens, False
        elif isinstance(failure, LlmError) and failure.status is not None and not text:
            tokens, estimated = 0, True  # refused with a status: providers bill nothing
        else:
            tokens, estimated = prompt + estimate_tokens(text), True
        try:
            self._db.call(
                "record_bot_tokens",
                {**self._args(), "_tokens": tokens, "_estimated": estimated},
                SERVICE,
            )
        except AppError as exc:
            # The hold stays until it expires: the budget errs on the safe side.
            logger.warning(
                "bot token usage not recorded",
                extra={"bot_id": self._job.bot_id, "tokens": tokens, "error": exc.code},
            )


def metered(model_for: ModelFor, db: Database, job: BotJob) -> ModelFor:
    """`model_for`, whose models spend only within the bot's budget."""
    return lambda key: MeteredModel(model_for(key), db, job)
