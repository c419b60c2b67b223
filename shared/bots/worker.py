"""The bot worker's domain: one job = one bot answering one utterance.

The reply is written under an id derived from (bot, trigger), first as
`active` with the text so far (at most every `interval` seconds), then
`complete`; so a job delivered twice leaves one reply, and a finished reply
is never redone. A provider failure that retrying may fix fails the job
(the queue retries it); on the last receive, or for a failure retrying
cannot fix, the space gets an `error` intention instead.

Counted (shared.metrics): each job's outcome (JobsAnswered, JobsRetried,
JobsFailed, JobsSkipped, JobsAlreadyAnswered, BudgetRefusals), ReplyIdConflicts,
the model's TimeToFirstToken and ReplyDuration (milliseconds, from asking
it, the budget's hold included), ProviderErrors and their kind
(ProviderRateLimited, ProviderErrors4xx, ProviderErrors5xx, ProviderTimeouts,
ProviderStreamErrors), and DatabaseUnavailable.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec

from shared import metrics
from shared.auth.principal import SERVICE
from shared.bots import budget
from shared.bots.models import BotJob
from shared.bots.settings import PROMPT_MAX_BYTES
from shared.db.port import Database
from shared.errors import Conflict, NotFound, ServiceUnavailable
from shared.llm.client import ChatMessage, ChatModel, LlmError, LlmTimeout

logger = logging.getLogger(__name__)

ModelFor = Callable[[str | None], ChatModel]
"""The model client to use with a bot's own key (None: the default key)."""
P = ParamSpec("P")


# Past this the database cuts a reply anyway (its content limit is 16 KiB):
# reading on would only cost time and memory.
MAX_REPLY_CHARS = 16 * 1024


class RetryLater(Exception):
    """The job failed in a way that retrying may fix: let the queue retry it,
    not before `retry_after` seconds if the provider asked for that."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AlreadyAnswered(Exception):
    """Another delivery of the same job completed the reply meanwhile."""


class ReplyIdTaken(Exception):
    """The id the reply must be written under is held by a row that is not
    this bot's reply (a squatter, or data from before the guard): the bot
    cannot answer, and retrying will not change that."""

    def __init__(self, reply_type: str) -> None:
        super().__init__(f"the bot's {reply_type} id is held by another row")
        self.reply_type = reply_type


@dataclass(frozen=True)
class Outcome:
    status: str  # answered | already answered | skipped | failed | over budget
    detail: str = ""


OUTCOME_METRICS = {
    "answered": "JobsAnswered",
    "already answered": "JobsAlreadyAnswered",
    "skipped": "JobsSkipped",
    "failed": "JobsFailed",
    "over budget": "BudgetRefusals",
}


def provider_error_metric(error: LlmError) -> str:
    """The kind of a provider's failure, as a metric's name."""
    if isinstance(error, LlmTimeout):
        return "ProviderTimeouts"
    if error.status == 429:
        return "ProviderRateLimited"
    if error.status is not None:
        return f"ProviderErrors{error.status // 100}xx"
    return "ProviderStreamErrors"  # unreachable, cut short, too large


def _size(message: ChatMessage) -> int:
    return len(message.content.encode("utf-8", "surrogatepass"))


def conversation(context: dict[str, Any], max_bytes: int = PROMPT_MAX_BYTES) -> list[ChatMessage]:
    """The prompt as `system`, the bot's own lines as `assistant`, everyone
    else's as `user` prefixed with the speaker's name; at most `max_bytes`
    of text (UTF-8) in all: the newest lines that fit, the oldest dropped
    first. The bot's prompt and the line being answered (the newest) are
    always kept, whatever their size. bot_context hands up to BOT_HISTORY
    lines of up to 16 KiB each, and every byte is paid for on every answer
    (and held against the budget first)."""
    prompt = context["bot"].get("prompt")
    system = [ChatMessage("system", str(prompt))] if prompt else []
    lines = [
        ChatMessage("assistant", str(line["text"]))
        if line["is_self"]
        else ChatMessage("user", f"{line['speaker_name']}: {line['text']}")
        for line in context["messages"]
    ]
    room = max_bytes - sum(_size(m) for m in system)
    kept: list[ChatMessage] = []
    for message in reversed(lines):
        if kept and _size(message) > room:
            break  # no older line either: the conversation keeps no gaps
        kept.append(message)
        room -= _size(message)
    return system + kept[::-1]


class ReplyWriter:
    def __init__(
        self,
        db: Database,
        job: BotJob,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._job = job
        self._interval = interval
        self._clock = clock
        self._last_write: float | None = None
        self.written = False
        self.text = ""  # as last written

    def _write(self, text: str, state: str, type_: str = "utterance") -> dict[str, Any]:
        try:
            row: dict[str, Any] = self._db.call(
                "write_bot_reply",
                {"_bot_id": self._job.bot_id, "_trigger_id": self._job.trigger_id,
                 "_text": text, "_state": state, "_type": type_},
                SERVICE,
            )  # fmt: skip
        except Conflict as exc:
            if exc.code == "reply_id_taken":
                raise ReplyIdTaken(type_) from exc
            raise
        if type_ == "utterance":
            self.text = text
        return row

    def progress(self, text: str) -> None:
        now = self._clock()
        if self._last_write is not None and now - self._last_write < self._interval:
            return
        self._last_write = now
        row = self._write(text, "active")
        if not row.get("written") and row.get("state") == "complete":
            raise AlreadyAnswered
        self.written = True

    def complete(self, text: str) -> None:
        self._write(text, "complete")
        self.written = True

    def close_failed(self, text: str) -> None:
        if self.written:
            self._write(text, "failed")

    def close_failed_quietly(self) -> None:
        """After a failure the writer did not foresee (the database may be
        what failed): the reply, if any, keeps the text it has, as failed."""
        try:
            self.close_failed(self.text)
        except Exception:  # best effort: the failure itself is reported
            logger.warning("bot %s: its reply could not be closed", self._job.bot_id)

    def error_notice(self, message: str) -> None:
        self._write(message, "failed", "error")


def _counted(answer_job: Callable[P, Outcome]) -> Callable[P, Outcome]:
    """Counts each job's outcome; a failure the queue retries is JobsRetried,
    or JobsFailed on the final attempt (the job then goes to the dead-letter
    queue)."""

    @functools.wraps(answer_job)
    def counted(*args: P.args, **kwargs: P.kwargs) -> Outcome:
        try:
            outcome = answer_job(*args, **kwargs)
        except Exception as exc:  # retried by the queue (RetryLater, a dependency, the unforeseen)
            if isinstance(exc, ServiceUnavailable):
                metrics.dependency_failed(exc.code)
            metrics.count("JobsFailed" if kwargs.get("final_attempt") else "JobsRetried")
            raise
        metrics.count(OUTCOME_METRICS[outcome.status])
        if outcome.detail == "reply_id_taken":
            metrics.count("ReplyIdConflicts")
        return outcome

    return counted


@_counted
def answer(
    job: BotJob,
    db: Database,
    model_for: ModelFor,
    *,
    history: int,
    interval: float,
    final_attempt: bool,
    deadline: float,
    prompt_bytes: int = PROMPT_MAX_BYTES,
) -> Outcome:
    """Answers the job; the model's reply must be complete by `deadline`
    (time.monotonic()); its prompt weighs `prompt_bytes` at most
    (`conversation`). Raises RetryLater or ServiceUnavailable for the queue
    to retry it (on the final attempt, to dead-letter it)."""
    try:
        context = db.call(
            "bot_context",
            {"_bot_id": job.bot_id, "_trigger_id": job.trigger_id, "_limit": history},
            SERVICE,
        )
    except NotFound as exc:
        return Outcome("skipped", exc.code)  # the bot or the utterance is gone
    bot = context["bot"]
    reply = context.get("reply") or {}
    if reply.get("state") == "complete":
        return Outcome("already answered")
    if not bot.get("in_space"):
        return Outcome("skipped", "bot is no longer in the space")

    writer = ReplyWriter(db, job, interval)
    try:
        # Budget hook (shared/bots/budget.py): the model is called only on a
        # hold of the bot's daily tokens, and what it spent is recorded.
        try:
            return _reply(
                job,
                context,
                writer,
                budget.metered(model_for, db, job),
                final_attempt=final_attempt,
                deadline=deadline,
                prompt_bytes=prompt_bytes,
            )
        except budget.OverBudget as exc:
            writer.error_notice(exc.notice(str(bot["name"])))
            return Outcome("over budget", exc.scope)
    except AlreadyAnswered:
        return Outcome("already answered")
    except ReplyIdTaken as exc:
        # A retry would fail the same way: the job is done, and reported.
        logger.error("bot %s: cannot reply to %s: %s", job.bot_id, job.trigger_id, exc)
        if exc.reply_type != "error":
            try:
                writer.error_notice(f"{bot['name']} could not answer: its reply id is taken.")
            except ReplyIdTaken:
                logger.error("bot %s: its error notice id is taken too", job.bot_id)
        return Outcome("failed", "reply_id_taken")
    except (RetryLater, ServiceUnavailable):
        raise
    except Exception:
        # Anything unforeseen (a bug, text the database refuses): no reply
        # stays `active`; the queue retries the job (the worker logs why),
        # and its last attempt tells the space.
        writer.close_failed_quietly()
        if not final_attempt:
            raise
        logger.error(
            "bot %s: could not answer %s (last attempt)", job.bot_id, job.trigger_id,
            exc_info=True, extra={"bot_id": job.bot_id, "trigger_id": job.trigger_id},
        )  # fmt: skip
        writer.error_notice(f"{bot['name']} could not answer: an internal error stopped it.")
        return Outcome("failed", "internal_error")


def _reply(
    job: BotJob,
    context: dict[str, Any],
    writer: ReplyWriter,
    model_for: ModelFor,
    *,
    final_attempt: bool,
    deadline: float,
    prompt_bytes: int,
) -> Outcome:
    bot = context["bot"]
    text = ""
    asked = time.monotonic()
    first_token = True
    try:
        model = model_for(bot.get("llm_api_key"))
        # The hold on the budget (budget.metered) is this trimmed prompt's.
        prompt = conversation(context, prompt_bytes)
        stream = model.stream(str(bot["model"]), prompt, deadline=deadline)
        try:
            for delta in stream:
                if first_token:
                    first_token = False
                    metrics.milliseconds("TimeToFirstToken", (time.monotonic() - asked) * 1000)
                text += delta
                if len(text) >= MAX_REPLY_CHARS:
                    text = text[:MAX_REPLY_CHARS]
                    break
                writer.progress(text)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # stops the model's reader at once
        if not text.strip():  # nothing to show: never a `complete`, empty message
            raise LlmError("the model's reply was empty", retryable=True)
    except LlmError as exc:
        metrics.count("ProviderErrors")
        metrics.count(provider_error_metric(exc))
        writer.close_failed(text)
        logger.warning("bot %s: provider error (%s), retryable=%s", job.bot_id, exc, exc.retryable)
        if exc.retryable and not final_attempt:
            raise RetryLater(str(exc), exc.retry_after) from exc
        reason = f"status {exc.status}" if exc.status else str(exc)
        writer.error_notice(
            f"{bot['name']} could not answer: the model provider failed ({reason})."
        )
        return Outcome("failed", str(exc))
    writer.complete(text)
    metrics.milliseconds("ReplyDuration", (time.monotonic() - asked) * 1000)
    return Outcome("answered")
