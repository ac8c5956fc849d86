"""Attributions for generated text: which words of the caller's message drove a span of a stored answer.

Asked for by the web (the API, the completion's page), checked there against what is stored and the
bounds; computed on the generation worker, which has the model loaded (inference/ml/completion_explain.py:
teacher forcing, SHAP exact or Partition); receipted in the audit log like a classifier's explanation.

What is explained is the stored completion: its prompt and answer as kept (redacted by the
organisation's rules). Where redaction changed the prompt, the values say what drove the answer given
the redacted prompt; `prompt_as_seen` records whether the prompt's tokens are as many as the model saw.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext

from audit.log.services import AuditActor, audit_record
from inference.exceptions import InvalidInput, NotExplainable, WorkerUnavailable
from inference.ml.explain import MAX_EVALS, MIN_EVALS, explanation_seed
from inference.models import Completion, CompletionExplanation, CompletionKind
from portal.accounts.actor import Actor
from portal.jobs import JobKind, JobStatus, job_beat, job_claim, job_fail, job_finish, register
from portal.platform.workers import generation_queue

WORKER = AuditActor.system("generation worker")
PROGRESS_EVERY_S = 0.5


def completion_explanation_create(*, actor: Actor, completion: Completion, choice: int = 0, start: int | None = None,
                                  end: int | None = None, max_evals: int | None = None) -> CompletionExplanation:
    """Checks that the span of the answer can be explained within the bounds, and queues it.

    Raises:
        InvalidInput (400): a choice or span outside the answer, a budget outside [MIN_EVALS, MAX_EVALS],
            a message longer than EXPLAIN_MAX_TOKENS words.
        NotExplainable (409): the completion did not finish with an answer, or scored a given text (echo).
        WorkerUnavailable (503): no generation worker.
    """
    budget = settings.EXPLAIN_DEFAULT_EVALS if max_evals is None else max_evals
    if not MIN_EVALS <= budget <= MAX_EVALS:
        raise InvalidInput(gettext('max_evals must be between %(min_evals)s and %(max_evals)s; got %(budget)s.') % {"min_evals": MIN_EVALS, "max_evals": MAX_EVALS, "budget": budget},
                           details={"max_evals": {"min": MIN_EVALS, "max": MAX_EVALS}})
    if completion.status != JobStatus.DONE or not completion.choices:
        why = "its prompt was refused by the guardrail policy" if completion.guard_outcome == "blocked" else \
            f"it is {completion.status}"
        raise NotExplainable(gettext('Completion %(pk)s has no answer to explain: %(why)s.') % {"pk": completion.pk, "why": why})
    if completion.parameters.get("echo"):
        raise NotExplainable(gettext('Completion %(pk)s scored a given text (echo); there is no generated answer.') % {"pk": completion.pk})
    if not 0 <= choice < len(completion.choices):
        raise InvalidInput(gettext('Completion %(pk)s has choices 0 to %(value)s; there is no choice %(choice)s.') % {"pk": completion.pk, "value": len(completion.choices) - 1, "choice": choice}, details={"choice": ["No such choice."]})
    answer = str(completion.choices[choice].get("text", ""))
    start, end = (0 if start is None else start), (len(answer) if end is None else end)
    if not answer.strip():
        raise NotExplainable(gettext('Choice %(choice)s of completion %(pk)s is empty: there is nothing to explain.') % {"choice": choice, "pk": completion.pk})
    if not 0 <= start < end <= len(answer):
        raise InvalidInput(gettext('The span must be characters [start, end) of the answer, with 0 <= start < end <= %(count)s; got [%(start)s, %(end)s).') % {"count": len(answer), "start": start, "end": end}, details={"start": ["Outside the answer."]})
    message = _message(completion)
    if message is None:
        raise NotExplainable(gettext("The prompt of completion %(pk)s has no message of the caller's to explain.") % {"pk": completion.pk})
    if len(message.split()) > settings.EXPLAIN_MAX_TOKENS:
        raise InvalidInput(gettext('The message is longer than %(explain_max_tokens)s words, the most that is explained.') % {"explain_max_tokens": settings.EXPLAIN_MAX_TOKENS}, details={"completion": ["Message too long."]})
    queue = generation_queue()
    if queue is None:
        raise WorkerUnavailable(gettext('No generation worker is running; try again shortly.'))
    with transaction.atomic():
        job = CompletionExplanation.objects.create(
            organization=actor.organization, completion=completion, model_version=completion.model_version,
            created_by=actor.user, token=actor.token, choice=choice, span_start=start, span_end=end, max_evals=budget,
        )
        audit_record(action="completion_explanation.requested", actor=actor.audit_actor,
                     organization_id=actor.organization.pk, target_type="inference.CompletionExplanation",
                     target_id=job.pk, payload={"completion": completion.pk, "choice": choice, "span": [start, end],
                                                "max_evals": budget})
        COMPLETION_EXPLANATIONS.send_on_commit(job.pk, queue=queue)
    return job


def _message(completion: Completion) -> str | None:
    """The caller's words that are explained: the last user message of a chat, a text completion's prompt."""
    if completion.kind == CompletionKind.CHAT:
        said = [m.get("content", "") for m in (completion.prompt or []) if m.get("role") == "user"]
        return said[-1] if said and said[-1].strip() else None
    return completion.prompt if isinstance(completion.prompt, str) and completion.prompt.strip() else None


def completion_explanation_run(*, job_id: int) -> None:
    """Computes the attributions on this (generation) worker; a redelivered task is a no-op."""
    if not job_claim(CompletionExplanation, job_id):
        return
    from inference.ml.completion_explain import AlignmentError, explain_span, target_of
    from inference.runtime import loaded_generator

    job = CompletionExplanation.objects.select_related("completion", "model_version__model").get(pk=job_id)
    completion = job.completion
    generator = loaded_generator(job.model_version)
    answer = str((completion.choices or [{}])[job.choice].get("text", ""))
    message = _message(completion) or ""
    try:
        target = target_of(generator, kind=completion.kind, prompt=completion.prompt, answer=answer,
                           start=job.span_start, end=job.span_end)
    except AlignmentError as exc:
        job_fail(COMPLETION_EXPLANATIONS, job_id, error=f"This completion cannot be explained: {exc}.", public=True)
        return
    players = target.message_end - target.message_start
    if players > settings.EXPLAIN_MAX_TOKENS:
        job_fail(COMPLETION_EXPLANATIONS, job_id, public=True,
                 error=f"The message has {players} tokens, more than the {settings.EXPLAIN_MAX_TOKENS} explained.")
        return
    total = min(job.max_evals, 2 ** players)  # exact values need every coalition, sampling the budget
    job_beat(CompletionExplanation, job_id, rows_total=total)
    last = [0.0]

    def progress(rows: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            job_beat(CompletionExplanation, job_id, rows_done=min(rows, total))

    began = time.perf_counter()
    seed = explanation_seed("completion", completion.pk, job.choice, job.span_start, job.span_end, job.max_evals)
    explained = explain_span(generator, target, message, max_evals=job.max_evals, seed=seed, on_rows=progress)
    result = explained.as_dict()
    result.update(span_text=target.span_text, span_tokens=[target.span_start, target.span_end],
                  prompt_as_seen=len(target.prompt_ids) == completion.prompt_tokens,
                  quantity="log-probability of the span given the prompt (teacher forcing)")
    compute_ms = round((time.perf_counter() - began) * 1000, 3)
    top = sorted(explained.words, key=lambda w: -w["value"])[:3]
    with transaction.atomic():
        if not job_finish(CompletionExplanation, job_id, method=explained.method, result=result,
                          residual=explained.residual, evaluations=explained.evaluations, compute_ms=compute_ms,
                          device=generator.device, rows_done=explained.model_rows):
            return  # failed meanwhile: settled there
        receipt = audit_record(
            action="completion_explanation.completed", actor=WORKER, organization_id=job.organization_id,
            target_type="inference.CompletionExplanation", target_id=job_id,
            payload={"completion": completion.pk, "choice": job.choice, "span": [job.span_start, job.span_end],
                     "method": explained.method, "max_evals": job.max_evals, "evaluations": explained.evaluations,
                     "residual": explained.residual, "output": explained.output, "base": explained.base_values,
                     "top_words": [w["word"] for w in top]},
        )
        CompletionExplanation.objects.filter(pk=job_id).update(audit_index=receipt.index,
                                                               audit_leaf_hash=receipt.leaf_hash)


COMPLETION_EXPLANATIONS = register(JobKind(
    name="completion explanation", model=CompletionExplanation, target_type="inference.CompletionExplanation",
    task="inference.tasks.completion_explanation_run_task", failed_action="completion_explanation.failed",
    actor=lambda job: WORKER, what="Explanation of a completion",
    public_error=("The explanation could not be computed on the worker. Try again with a smaller budget or a "
                  "shorter span; if it fails again, ask an admin to look at the worker's log."),
))
