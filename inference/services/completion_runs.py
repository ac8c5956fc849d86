"""Completions, the worker side: tokenized, generated in the model's continuous batch, receipted.

The web side (admission, the wait, the stream) is completions.py.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from audit.log.services import audit_record, redacted_for
from inference.exceptions import ContentFiltered, InvalidCompletion
from inference.models import Completion, CompletionKind
from inference.services.completions import COMPLETIONS, Ask, CompletionResult, _actor
from inference.services.energy import footprint
from inference.services.guard_runs import Blocked, Guard, OutputGate, PromptVerdict
from inference.services.usage import token_quota_release, token_usage_record
from portal.jobs import JobStatus, job_beat, job_claim, job_fail, job_finish
from portal.platform.replies import ReplyWriter


def system_fingerprint(weights_sha256: str) -> str:
    """Names the weights and the settings that change outputs (dtype, the greedy scheme, the engine's
    versions): the same fingerprint and the same greedy request give the same text."""
    import torch
    import transformers

    from inference.ml import generation

    settings_that_matter = {"weights": weights_sha256, "dtype": "float32", "greedy": generation.GREEDY_TEMPERATURE,
                            "torch": torch.__version__, "transformers": transformers.__version__}
    digest = hashlib.sha256(json.dumps(settings_that_matter, sort_keys=True).encode()).hexdigest()
    return f"fp_{digest[:12]}"


def completion_run(*, completion_id: int, ask: dict[str, Any], reply_to: str | None,
                   guard: dict[str, Any] | None = None) -> None:
    """Generates a completion on this worker (the task's body); a redelivered task is a no-op.

    `guard`: the guardrail policy the request was admitted under (guard_runs.py), or None.
    """
    if not job_claim(Completion, completion_id):
        return
    from inference.ml.generation import GenerationError, Sampling
    from inference.runtime import loaded_generator

    asked = Ask(**ask)
    completion = Completion.objects.select_related("model_version__model", "created_by").get(pk=completion_id)
    version = completion.model_version
    writer = ReplyWriter(reply_to) if reply_to else None
    checks = Guard((guard or {}).get("policy"), organization_id=completion.organization_id,
                   asked_max_tokens=(guard or {}).get("asked_max_tokens"))
    screening = time.perf_counter()
    try:
        # what the model sees (masked when the policy says so) is what is stored and receipted
        asked = replace(asked, prompt=checks.screen_prompt(asked.kind, asked.prompt))
        refused_early = None
    except Blocked as blocked:
        refused_early = blocked
    checks.waited(time.perf_counter() - screening)  # before a refusal's record is written, which names it
    if refused_early is not None:
        _block(completion, asked, checks, refused_early, writer)
        return
    generator = loaded_generator(version)
    deadline = time.monotonic() + settings.GENERATION_TIMEOUT_SECONDS
    try:
        if asked.kind == CompletionKind.CHAT:
            ids = generator.chat_ids(asked.prompt)
        else:
            ids = generator.text_ids(asked.prompt)
        if asked.echo and not ids:
            raise GenerationError(gettext('The prompt is empty: there is nothing to score.'))
        if asked.max_tokens:
            generator.check_room(len(ids), asked.max_tokens)
    except GenerationError as exc:
        _refuse(completion, str(exc), "messages" if asked.kind == CompletionKind.CHAT else "prompt", writer)
        return
    job_beat(Completion, completion_id, prompt_tokens=len(ids))
    sampling = Sampling(max_tokens=asked.max_tokens, temperature=asked.temperature, top_p=asked.top_p,
                        stop=tuple(asked.stop), seed=asked.seed, logprobs=asked.logprobs,
                        top_logprobs=asked.top_logprobs)
    made = [0] * asked.n  # tokens generated per choice so far, for what a failure charges
    # the prompt's moderation runs while the model reads it; what it writes is held until the verdict
    verdict = PromptVerdict(checks, asked.kind, asked.prompt) if checks.moderates_prompt else None
    lock = threading.Lock()
    first: list[float] = []
    began = time.perf_counter()

    def releaser(index: int) -> Any:
        def release(text: str) -> None:
            if writer is not None and asked.stream:
                with lock:
                    writer.part({"index": index, "text": text})
        return verdict.holding(release) if verdict is not None else release

    # with output checks, a choice's text reaches the caller a checked sentence at a time
    gates = [checks.output_gate(index, releaser(index)) for index in range(asked.n)]

    def on_delta(index: int) -> Any:
        gate, release = gates[index], releaser(index)

        def send(text: str) -> bool:
            if verdict is not None and verdict.refused:
                return False  # the prompt is refused: stop generating
            with lock:
                if not first:
                    first.append(time.perf_counter() - began)
                made[index] += 1
            if gate is None:
                release(text)
            elif not gate.feed(text):
                return False  # the policy stopped this choice
            return writer is None or not writer.cancelled()
        return send

    results: list[Any] = [None] * asked.n
    errors: list[BaseException] = []
    last_check = [0.0] * asked.n  # the check of each choice's last sentence, after the model stopped

    def run(index: int) -> None:
        try:
            if asked.max_tokens == 0:
                results[index] = None
                return
            results[index] = generator.generate(ids, sampling, on_delta(index), deadline=deadline)
            gate = gates[index]
            if gate is not None and results[index].finish_reason != "cancelled":
                finishing = time.perf_counter()
                gate.finish()
                last_check[index] = time.perf_counter() - finishing
        except BaseException as exc:  # handed to the task's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), name=f"completion-{completion_id}-{i}") for i in range(asked.n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    waiting = time.perf_counter()
    refused = verdict.wait() if verdict is not None else None
    checks.waited(time.perf_counter() - waiting + max(last_check))  # the choices' last checks ran side by side
    if refused is not None:
        _block(completion, asked, checks, refused, writer)
        return
    if errors:
        with transaction.atomic():
            Completion.objects.filter(pk=completion_id).update(completion_tokens=sum(made))
        raise errors[0]  # the framework fails it (JobTask.on_failure): tokens not generated are given back
    scored = generator.score(ids, asked.top_logprobs) if asked.echo else None
    result = _finish(completion, asked, ids, results, scored, generator, time.perf_counter() - began,
                     first[0] if first else None, checks, gates)
    if writer is not None:
        writer.answer(result)


def _block(completion: Completion, asked: Ask, checks: Guard, blocked: Blocked, writer: ReplyWriter | None) -> None:
    """A prompt the policy refuses: nothing of an answer is released or kept (a refusal by the moderation
    model stops the answer the model had begun meanwhile), every token reserved is given back, and the
    refusal is kept (the masked prompt, the decisions) and receipted: an auditor asks what was refused."""
    organization_id = completion.organization_id
    record = checks.record()
    param = "messages" if asked.kind == CompletionKind.CHAT else "prompt"
    with transaction.atomic():
        receipt = audit_record(
            action="completion.blocked", actor=_actor(completion), organization_id=organization_id,
            target_type="inference.Completion", target_id=completion.pk, request_id=completion.request_id,
            payload={"model": completion.model_version.model.name, "version": completion.model_version.version,
                     "kind": asked.kind, "prompt": asked.prompt, "guard": record},
        )
        finished = job_finish(
            Completion, completion.pk, prompt=redacted_for(organization_id=organization_id, value=asked.prompt),
            choices=[], guard=record, guard_outcome="blocked", audit_index=receipt.index,
            audit_leaf_hash=receipt.leaf_hash,
        )
        if finished:
            token_quota_release(organization_id=organization_id, tokens=completion.tokens_reserved,
                                day=completion.created_at.date())
    if writer is not None:
        message = (f"The prompt was refused by the organisation's guardrail policy: {blocked.decision['reason']}. "
                   f"No answer is given; the refusal is recorded as completion {completion.pk}.")
        writer.fail(ContentFiltered(message, details={"param": param, "completion": completion.pk,
                                                      "receipt_index": receipt.index, "guard": record}),
                    message=message)


def _refuse(completion: Completion, message: str, param: str, writer: ReplyWriter | None) -> None:
    """A request the model cannot take (bad input): nothing is kept, its tokens are given back."""
    with transaction.atomic():
        deleted, _ = Completion.objects.filter(pk=completion.pk, status=JobStatus.RUNNING).delete()
        if deleted:
            token_quota_release(organization_id=completion.organization_id, tokens=completion.tokens_reserved,
                                day=completion.created_at.date())
    if writer is not None:
        writer.fail(InvalidCompletion(message, param=param), message=message)


def _finish(completion: Completion, asked: Ask, ids: list[int], results: list[Any], scored: Any, generator: Any,
            seconds: float, first_token_s: float | None, checks: Guard,
            gates: list[OutputGate | None]) -> CompletionResult:
    version = completion.model_version
    prompt_text = generator.decode(ids) if asked.echo else ""
    choices = []
    for index, generated in enumerate(results):
        gate = gates[index]
        made = (generated.text if generated else "") if gate is None else gate.text  # what the policy released
        reason = generated.finish_reason if generated else "length"
        if gate is not None and gate.stopped:
            reason = "content_filter"
        choices.append({
            "index": index, "text": (prompt_text if asked.echo else "") + made, "finish_reason": reason,
            "logprobs": _logprobs(asked, scored, generated, released=None if gate is None else len(made)),
        })
    completion_tokens = sum(g.completion_tokens for g in results if g is not None)
    usage = {"prompt_tokens": len(ids), "completion_tokens": completion_tokens,
             "total_tokens": len(ids) + completion_tokens}
    cancelled = any(c["finish_reason"] == "cancelled" for c in choices)
    for choice in choices:  # OpenAI's clients know stop and length; a cut-off stream is recorded as such
        if choice["finish_reason"] == "cancelled":
            choice["finish_reason"] = "length"
    fingerprint = system_fingerprint(version.artifact_sha256)
    guard = checks.record()
    spent = footprint(compute_ms=seconds * 1000, device=generator.device, threads=settings.GENERATION_THREADS)
    raw_prompt = asked.prompt
    raw_answer = [{"index": c["index"], "text": c["text"], "finish_reason": c["finish_reason"]} for c in choices]
    organization_id = completion.organization_id
    with transaction.atomic():
        receipt = audit_record(
            action="completion.completed", actor=_actor(completion), organization_id=organization_id,
            target_type="inference.Completion", target_id=completion.pk, request_id=completion.request_id,
            payload={"model": version.model.name, "version": version.version, "weights_sha256": version.artifact_sha256,
                     "system_fingerprint": fingerprint, "kind": asked.kind, "parameters": asked.parameters(),
                     "prompt": raw_prompt, "choices": raw_answer, "usage": usage, "cut_off": cancelled,
                     "stream": asked.stream, "device": generator.device, **({"guard": guard} if guard else {}),
                     "energy_wh": spent.energy_wh, "energy_estimated": spent.estimated, "carbon_g": spent.carbon_g,
                     **({} if version.is_servable else {"approved": False, "version_status": version.status})},
        )
        finished = job_finish(
            Completion, completion.pk, prompt=redacted_for(organization_id=organization_id, value=raw_prompt),
            choices=redacted_for(organization_id=organization_id, value=raw_answer),
            prompt_tokens=len(ids), completion_tokens=completion_tokens, system_fingerprint=fingerprint,
            device=generator.device, compute_ms=round(seconds * 1000, 3),
            first_token_ms=round(first_token_s * 1000, 3) if first_token_s is not None else None,
            audit_index=receipt.index, audit_leaf_hash=receipt.leaf_hash,
            parameters=redacted_for(organization_id=organization_id, value=asked.parameters()),
            guard=guard, guard_outcome=guard.get("outcome", ""), energy_wh=spent.energy_wh,
            energy_estimated=spent.estimated,
        )
        if not finished:  # failed meanwhile (the caller's wait ran out): the entry rolls back with this
            raise RuntimeError(f"completion {completion.pk} stopped running while it finished")
        token_quota_release(organization_id=organization_id, tokens=completion.tokens_reserved - usage["total_tokens"],
                            day=completion.created_at.date())
        token_usage_record(organization_id=organization_id, token_id=completion.token_id,
                           prompt_tokens=usage["prompt_tokens"], completion_tokens=completion_tokens,
                           compute_ms=round(seconds * 1000, 3), energy=spent)
    return CompletionResult(
        id=completion.pk, kind=asked.kind, model=version.model.name, version=version.version,
        created=int(completion.created_at.timestamp()), system_fingerprint=fingerprint, choices=choices, usage=usage,
        receipt={"index": receipt.index, "leaf_hash": receipt.leaf_hash, "salt": receipt.salt,
                 "weights_sha256": version.artifact_sha256},
        device=generator.device, cancelled=cancelled, guard=guard,
    )


def _logprobs(asked: Ask, scored: Any, generated: Any, *, released: int | None = None) -> list[dict[str, Any]] | None:
    """Per token: {token, logprob, top: [[token, logprob]]}; the echoed prompt's first token has no logprob.
    `released`: the characters of generated text the guardrails let out; tokens past them are not told."""
    if not asked.logprobs:
        return None
    items: list[dict[str, Any]] = []
    if scored is not None:
        items.extend({"token": item.token, "logprob": item.logprob, "top": item.top} for item in scored)
    if generated is not None and generated.logprobs:
        at = 0
        for t in generated.logprobs:
            at += len(t.token)
            if released is not None and at > released:
                break
            items.append({"token": t.token, "logprob": t.logprob, "top": t.top})
    return items


def completion_fail_abandoned(*, older_than_seconds: float | None = None) -> int:
    """Fails completions left pending or running by a web process and a worker that both went away."""
    from datetime import timedelta

    limit = older_than_seconds if older_than_seconds is not None else settings.GENERATION_TIMEOUT_SECONDS * 2
    cutoff = timezone.now() - timedelta(seconds=limit)
    stuck = list(Completion.objects.filter(status__in=[JobStatus.PENDING, JobStatus.RUNNING], created_at__lt=cutoff)
                 .values_list("pk", flat=True))
    for completion_id in stuck:
        job_fail(COMPLETIONS, completion_id, error="abandoned: no worker finished it in time", public=True)
    return len(stuck)
