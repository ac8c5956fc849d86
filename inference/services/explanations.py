"""Explanations: asked for by the web process, computed on a worker next to the model, receipted."""

from __future__ import annotations

import contextlib
import time

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext

from audit.log.services import AuditActor, audit_record
from inference.exceptions import InvalidInput, NotExplainable, WorkerUnavailable, classifier_required
from inference.ml.explain import MAX_EVALS, MIN_EVALS, budget_floor, explanation_seed, summary
from inference.models import Explanation, ModelVersion, Prediction
from portal.accounts.actor import Actor
from portal.jobs import JobKind, JobStatus, job_claim, job_finish, register
from portal.platform.replies import Awaited, ReplyTimeout, WorkerFailed, reply_key, reply_wait
from portal.platform.workers import serving_queue

WORKER = AuditActor.system("inference worker")


def budget_check(version: ModelVersion, budget: int) -> int:
    """The budget of an explanation of `version`, checked against the model before anything is queued.

    Raises:
        InvalidInput (400): a budget outside [the model's floor, MAX_EVALS], said with what to ask for.
    """
    features = len(version.input_schema.get("features", [])) if version.task == "tabular-classification" else 0
    floor = budget_floor(version.task, features)
    if not floor <= budget <= MAX_EVALS:
        why = (f" (a model of {features} features is explained by sampling, which needs at least 2 x {features} + 1 "
               "evaluations)") if floor > MIN_EVALS else ""
        raise InvalidInput(gettext('max_evals must be between %(floor)s and %(MAX_EVALS)s%(why)s; got %(budget)s. Ask for %(floor)s or more.') % {"floor": floor, "MAX_EVALS": MAX_EVALS, "why": why, "budget": budget}, details={"max_evals": {"min": floor, "max": MAX_EVALS}})
    return budget


def explanation_create(*, actor: Actor, prediction: Prediction, row: int = 0, max_evals: int | None = None,
                       waited_for: bool = False) -> Awaited[Explanation]:
    """Checks that the row can be explained within the budget and queues it on the prediction's model.

    `waited_for`: the caller will wait for it (`explanation_wait`); the worker then says when it is
    done on a reply key (portal/platform/replies.py). A caller that does not wait (the browser, which polls
    the page) leaves none behind.

    Raises:
        InvalidInput (400): a row that does not exist, a budget outside [MIN_EVALS, MAX_EVALS], text too long.
        NotExplainable (409): the prediction did not finish, or the model lacks what explaining needs.
        WorkerUnavailable (503).
    """
    version = prediction.model_version
    classifier_required(version, "Explanations")  # a vector has no label whose probability SHAP could explain
    budget = budget_check(version, settings.EXPLAIN_DEFAULT_EVALS if max_evals is None else max_evals)
    if prediction.status != JobStatus.DONE:
        raise NotExplainable(gettext('Prediction %(pk)s is %(status)s; only a finished one can be explained.') % {"pk": prediction.pk, "status": prediction.status})
    rows = prediction.inputs.get("rows", [])
    if not rows:
        raise NotExplainable(gettext('The inputs of prediction %(pk)s were erased; it can no longer be explained.') % {"pk": prediction.pk})
    if not 0 <= row < len(rows):
        raise InvalidInput(gettext('Prediction %(pk)s has rows 0 to %(value)s; there is no row %(row)s.') % {"pk": prediction.pk, "value": len(rows) - 1, "row": row})
    if version.task == "tabular-classification" and version.background_rows == 0:
        raise NotExplainable(
            gettext('%(version)s has no background sample (background.jsonl in its archive), which SHAP needs to explain a tabular model; register a version with one.') % {"version": version}
        )
    if version.task == "text-classification" and len(str(rows[row]).split()) > settings.EXPLAIN_MAX_TOKENS:
        raise InvalidInput(gettext('The text is longer than %(EXPLAIN_MAX_TOKENS)s words, the most that is explained.') % {"EXPLAIN_MAX_TOKENS": settings.EXPLAIN_MAX_TOKENS})
    queue = serving_queue()
    if queue is None:
        raise WorkerUnavailable(gettext('No inference worker is running; try again shortly.'))
    with transaction.atomic():
        explanation = Explanation.objects.create(
            organization=actor.organization, prediction=prediction, row=row, model_version=version,
            requested_by=actor.user, token=actor.token, max_evals=budget,
        )
        audit_record(
            action="explanation.requested", actor=actor.audit_actor, organization_id=actor.organization.pk,
            target_type="inference.Explanation", target_id=explanation.pk,
            payload={"prediction": prediction.pk, "row": row, "max_evals": budget, "model": version.model.name,
                     "version": version.version},
        )
        reply_to = reply_key() if waited_for else None
        EXPLANATIONS.send_on_commit(explanation.pk, queue=queue, reply_to=reply_to)
    return Awaited(explanation, reply_to)


EXPLAIN_ON_PREDICT_MAX_ROWS = 8


def explain_on_predict_check(*, version: ModelVersion, rows: int, max_evals: int | None) -> int:
    """The budget of explanations asked for with a prediction (`explain`), checked before the
    prediction is admitted; returns it.

    Raises:
        InvalidInput (400): more rows than are explained with a prediction, or a budget outside the bounds.
    """
    if rows > EXPLAIN_ON_PREDICT_MAX_ROWS:
        raise InvalidInput(gettext('With explain, send at most %(EXPLAIN_ON_PREDICT_MAX_ROWS)s inputs; explain more with POST /predictions/{id}/explain.') % {"EXPLAIN_ON_PREDICT_MAX_ROWS": EXPLAIN_ON_PREDICT_MAX_ROWS})
    return budget_check(version, settings.EXPLAIN_DEFAULT_EVALS if max_evals is None else max_evals)


def explanations_of_prediction(*, actor: Actor, prediction: Prediction, max_evals: int) -> list[Explanation]:
    """Every row of a finished prediction explained, waited for within one EXPLAIN_WAIT_SECONDS for
    them all (not one each); those still running are returned as they are (the client polls)."""
    prediction.refresh_from_db()
    asked = [explanation_create(actor=actor, prediction=prediction, row=row, max_evals=max_evals, waited_for=True)
             for row in range(prediction.rows)]
    until = time.monotonic() + settings.EXPLAIN_WAIT_SECONDS
    return [explanation_wait(one, timeout=max(until - time.monotonic(), 0.0)) for one in asked]


def explanation_wait(asked: Awaited[Explanation], *, timeout: float | None = None) -> Explanation:
    """Waits for the worker up to `timeout` seconds (EXPLAIN_WAIT_SECONDS); returns the explanation as
    it is then: done, failed, or still running (the caller answers 202 and the client polls)."""
    if asked.reply_to is None:
        raise ValueError("explanation_wait needs an explanation created with waited_for=True")
    # still running, or failed and recorded as such: the stored explanation says which
    with contextlib.suppress(ReplyTimeout, WorkerFailed):
        reply_wait(asked.reply_to, timeout=settings.EXPLAIN_WAIT_SECONDS if timeout is None else timeout)
    asked.stored.refresh_from_db()
    return asked.stored


def explanation_run(*, explanation_id: int) -> None:
    """Computes an explanation on this worker (the task's body); a redelivered task is a no-op."""
    if not job_claim(Explanation, explanation_id):
        return
    explanation = Explanation.objects.select_related("prediction", "model_version__model").get(pk=explanation_id)
    from inference.runtime import explainer_for

    began = time.perf_counter()
    explainer, device = explainer_for(explanation.model_version)
    row = explanation.prediction.inputs["rows"][explanation.row]
    seed = explanation_seed(explanation.prediction_id, explanation.row, explanation.max_evals,
                            explanation.model_version_id)
    explained = explainer.explain(row, max_evals=explanation.max_evals, seed=seed)
    result = explained.as_dict()
    result["summary"] = summary(explained)
    compute_ms = round((time.perf_counter() - began) * 1000, 3)
    with transaction.atomic():
        if not job_finish(Explanation, explanation_id, method=explained.method, label=explained.label,
                          result=result, residual=explained.residual, evaluations=explained.evaluations,
                          compute_ms=compute_ms, device=device):
            return  # failed meanwhile: settled there
        receipt = audit_record(
            action="explanation.completed", actor=WORKER, organization_id=explanation.organization_id,
            target_type="inference.Explanation", target_id=explanation_id,
            payload={"prediction": explanation.prediction_id, "row": explanation.row, "method": explained.method,
                     "max_evals": explained.max_evals, "label": explained.label, "residual": explained.residual,
                     "evaluations": explained.evaluations, "summary": result["summary"]},
        )
        Explanation.objects.filter(pk=explanation_id).update(audit_index=receipt.index,
                                                             audit_leaf_hash=receipt.leaf_hash)


# a request someone waits on: never requeued (a worker that dies leaves it to the broker's redelivery)
EXPLANATIONS = register(JobKind(
    name="explanation", model=Explanation, target_type="inference.Explanation",
    task="inference.tasks.explanation_run_task", failed_action="explanation.failed", actor=lambda job: WORKER,
    what="Explanation", stale_after=None,
    # what the explainer raised is for the operators (the worker's log), not a Python error for the user
    public_error=("The explanation could not be computed on the worker. Try again; if it fails again, try a "
                  "smaller budget or a shorter input, or ask an admin to look at the worker's log."),
))
