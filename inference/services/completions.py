"""Completions of generative models, the web side: admitted, queued, waited for or streamed back.

The worker side (tokenize, generate in the continuous batch, receipt) is completion_runs.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypedDict

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext

from audit.log.services import AuditActor
from inference import languages
from inference.exceptions import (
    GenerationTimeout,
    GenerationWorkerLost,
    InvalidCompletion,
    NotGenerative,
    WorkerUnavailable,
)
from inference.models import Completion, CompletionKind, ModelVersion, Task
from inference.services import guardrails
from inference.services.usage import token_quota_release, token_quota_reserve
from portal.accounts.actor import Actor
from portal.jobs import JobKind, JobStatus, job_fail, register
from portal.platform.replies import (
    Awaited,
    ReplyTimeout,
    WorkerGone,
    areply_cancel,
    areply_stream,
    reply_cancel,
    reply_key,
    reply_stream,
)
from portal.platform.streaming import in_shared_thread
from portal.platform.workers import WorkerWatch, generation_queue

logger = logging.getLogger("steward.inference")

# An upper bound of the tokens a prompt can take before it is tokenized (on the worker): a byte-level
# tokenizer spends at most one token per UTF-8 byte, and a chat template a few tokens per message.
TEMPLATE_TOKENS_PER_MESSAGE, TEMPLATE_TOKENS = 8, 64


@dataclass(frozen=True)
class Ask:
    """What a caller asks of a generative model, checked by the API's input serializer."""

    kind: str  # CompletionKind
    prompt: Any  # chat: [{"role", "content"}]; text: one string
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    echo: bool = False
    user: str = ""
    stream: bool = False
    include_usage: bool = False

    def parameters(self) -> dict[str, Any]:
        """What changes the output (stored, logged, and hashed into the system fingerprint's settings)."""
        found = asdict(self)
        del found["prompt"], found["kind"], found["stream"], found["include_usage"]
        return found

    def prompt_bound(self) -> int:
        if self.kind == CompletionKind.CHAT:
            return sum(len(str(m.get("content", "")).encode()) + TEMPLATE_TOKENS_PER_MESSAGE
                       for m in self.prompt) + TEMPLATE_TOKENS
        return len(str(self.prompt).encode()) + 2

    def tokens_bound(self) -> int:
        return self.prompt_bound() + self.n * self.max_tokens


def _actor(completion: Completion) -> AuditActor:
    if completion.token_id:
        return AuditActor(type="token", id=str(completion.token_id), label=f"{completion.created_by.username} via token")
    return AuditActor(type="user", id=str(completion.created_by_id), label=completion.created_by.username)


def _settle(completion: Completion) -> dict[str, Any]:
    """A failed completion gives back the tokens it reserved and did not use."""
    used = completion.prompt_tokens + completion.completion_tokens
    token_quota_release(organization_id=completion.organization_id, tokens=completion.tokens_reserved - used,
                        day=completion.created_at.date())
    return {"tokens_reserved": completion.tokens_reserved, "tokens_used": used}


COMPLETIONS = register(JobKind(
    name="completion", model=Completion, target_type="inference.Completion",
    task="inference.tasks.completion_run_task", failed_action="completion.failed", actor=_actor,
    what="Completion", settle=_settle, stale_after=None,  # the caller's wait settles it
    public_error="The model failed while generating; the failure is logged for an admin.",
))


def completion_create(*, actor: Actor, version: ModelVersion, ask: Ask, request_id: str = "") -> Awaited[Completion]:
    """Admits a completion: reserves its tokens, stores it pending, queues it on the generation pool.

    The raw prompt goes to the worker in the task's message; only its redacted copy is ever stored.

    Raises:
        NotGenerative: the model does not generate text (400).
        InvalidCompletion: a parameter the model cannot honour (400).
        QuotaExceeded: the organisation's daily tokens are spent (429).
        WorkerUnavailable: no generation worker is alive (503).
        GuardUnavailable: the guardrail policy's moderation model is not in service (503).
    """
    if version.task != Task.GENERATION:
        raise NotGenerative(gettext("The model '%(name)s' classifies; it does not generate text. Use /api/v1/models/{name}/predict for it.") % {"name": version.model.name}, details={"param": "model"})
    if ask.max_tokens > settings.GENERATION_MAX_TOKENS:
        raise InvalidCompletion(gettext('max_tokens may be at most %(GENERATION_MAX_TOKENS)s.') % {"GENERATION_MAX_TOKENS": settings.GENERATION_MAX_TOKENS}, param="max_tokens")
    if ask.n > settings.GENERATION_MAX_N:
        raise InvalidCompletion(gettext('n may be at most %(GENERATION_MAX_N)s.') % {"GENERATION_MAX_N": settings.GENERATION_MAX_N}, param="n")
    queue = generation_queue()
    if queue is None:
        raise WorkerUnavailable(gettext('No generation worker is running; try again shortly or tell an admin.'))
    # the guardrail policy in force now goes with the request: the worker applies this revision
    policy = guardrails.policy_snapshot(actor=actor, model=version.model)
    guard = {"policy": policy.as_dict(), "asked_max_tokens": ask.max_tokens} if policy.id is not None else None
    if policy.max_output_tokens and ask.max_tokens > policy.max_output_tokens:
        ask = replace(ask, max_tokens=policy.max_output_tokens)  # reserved and generated at most this
    reserved = ask.tokens_bound()
    reply_to = reply_key()
    flagged = languages.unsupported(version.card, [asked_text(ask)])
    with transaction.atomic():
        token_quota_reserve(organization=actor.organization, tokens=reserved)
        completion = Completion.objects.create(
            organization=actor.organization, model_version=version, created_by=actor.user, token=actor.token,
            request_id=request_id, kind=ask.kind, stream=ask.stream, parameters=ask.parameters(),
            tokens_reserved=reserved, unsupported_language=flagged[0]["detected"] if flagged else "",
        )
        COMPLETIONS.send_on_commit(completion.pk, queue=queue, ask=asdict(ask), reply_to=reply_to, guard=guard)
    return Awaited(completion, reply_to)


def asked_text(ask: Ask) -> str:
    """What the caller asks in words: the last user message of a chat (its text parts), or the prompt."""
    if ask.kind != CompletionKind.CHAT:
        return ask.prompt if isinstance(ask.prompt, str) else ""
    for message in reversed(ask.prompt or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
            return content if isinstance(content, str) else ""
    return ""


def language_notice(completion: Completion) -> dict[str, Any] | None:
    """What the answer says when the prompt's language is not one the model's card lists."""
    if not completion.unsupported_language:
        return None
    return languages.notice(completion.model_version.card, [{"input": 0, "detected": completion.unsupported_language}])


class CompletionResult(TypedDict):
    """What the worker answers with once a completion is done; the API renders it in OpenAI's shapes."""

    id: int
    kind: str
    model: str
    version: int
    created: int
    system_fingerprint: str
    choices: list[dict[str, Any]]  # {index, text, finish_reason, logprobs}
    usage: dict[str, int]
    receipt: dict[str, Any]
    device: str
    cancelled: bool
    guard: dict[str, Any]  # the policy's decisions ({} without a policy)


def completion_wait(asked: Awaited[Completion]) -> CompletionResult:
    """Waits for the whole answer (a request that does not stream).

    Raises:
        GenerationTimeout: no answer in time (504); the completion is failed, its tokens given back.
        WorkerFailed: the worker refused (a prompt too long: 400) or failed the request.
    """
    for kind, data in completion_parts(asked):
        if kind == "answer":
            return data  # type: ignore[no-any-return]
    raise AssertionError("a completion's parts end with its answer")


def _waits() -> dict[str, Any]:
    return {"first_timeout": settings.GENERATION_FIRST_TOKEN_SECONDS,
            "gap_timeout": settings.GENERATION_TIMEOUT_SECONDS, "check_every": settings.GENERATION_LIVENESS_SECONDS}


def _ended_early(asked: Awaited[Completion], exc: ReplyTimeout | WorkerGone) -> Exception:
    """The completion failed for a reason of the worker's (silence, or death): marked failed, its
    tokens given back; the caller's error says so."""
    if isinstance(exc, ReplyTimeout):
        _fail(asked.stored.pk, "no token came from the worker in time")
        return GenerationTimeout("The generation worker did not answer in time; nothing was generated for you "
                                 "and the tokens reserved are given back.")
    _fail(asked.stored.pk, "the generation worker stopped while it served this completion")
    return GenerationWorkerLost("The generation worker stopped while it served this request; the tokens "
                                "reserved for what it did not generate are given back. Try again.")


def completion_parts(asked: Awaited[Completion]) -> Iterator[tuple[str, Any]]:
    """The worker's parts as they come ("part": {index, text}), then ("answer", CompletionResult).

    A caller that stops iterating (its client went away) must call `completion_abandon`.
    """
    assert asked.reply_to is not None
    try:
        yield from reply_stream(asked.reply_to, alive=_WorkerWatch(asked.stored.pk), **_waits())
    except (ReplyTimeout, WorkerGone) as exc:
        raise _ended_early(asked, exc) from None


async def acompletion_parts(asked: Awaited[Completion]) -> AsyncIterator[tuple[str, Any]]:
    """`completion_parts` on the event loop (the ASGI web server): waiting holds no thread, and no
    database connection either (the few reads and writes on the way take one and give it back).

    A caller that stops iterating must await `acompletion_abandon`.
    """
    assert asked.reply_to is not None
    alive = in_shared_thread(_WorkerWatch(asked.stored.pk))
    try:
        async for part in areply_stream(asked.reply_to, alive=alive, **_waits()):
            yield part
    except (ReplyTimeout, WorkerGone) as exc:
        raise await in_shared_thread(_ended_early)(asked, exc) from None


class _WorkerWatch:
    """Whether the worker that claimed a completion still beats (portal/platform/workers.WorkerWatch):
    its name is read from the row until the completion is claimed, then only the cache is asked."""

    def __init__(self, completion_id: int) -> None:
        self.completion_id = completion_id
        self.watch: WorkerWatch | None = None

    def __call__(self) -> bool:
        if self.watch is None:
            row = Completion.objects.filter(pk=self.completion_id).values("worker", "status").first()
            if row is None or row["status"] not in (JobStatus.PENDING, JobStatus.RUNNING):
                return True  # finished or failed: its answer or error is on the reply key
            if not row["worker"]:
                return True  # still queued: a queued request waits for a worker (the first timeout bounds it)
            self.watch = WorkerWatch(row["worker"])
        return self.watch.alive()


def completion_abandon(asked: Awaited[Completion]) -> None:
    """The client went away: the worker stops generating at its next token and records what it made."""
    if asked.reply_to is not None:
        reply_cancel(asked.reply_to)


async def acompletion_abandon(asked: Awaited[Completion]) -> None:
    if asked.reply_to is not None:
        await areply_cancel(asked.reply_to)


def _fail(completion_id: int, error: str) -> None:
    try:
        job_fail(COMPLETIONS, completion_id, error=error, public=True)
    except Exception:  # the caller hears of the timeout whatever happens here; an operator reads this
        logger.exception("completion %s: could not be marked failed", completion_id)


def completion_is_open(completion: Completion) -> bool:
    return completion.status in (JobStatus.PENDING, JobStatus.RUNNING)
