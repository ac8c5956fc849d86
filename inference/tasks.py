"""Thin tasks (STYLE.md C4): take ids, call a service."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from celery.signals import worker_init, worker_shutdown

from portal.jobs import job_task


def _prediction_failed(self: Task, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
    from inference.services.predictions import prediction_mark_failed

    prediction_mark_failed(prediction_id=args[0], error=f"{type(exc).__name__}: {exc}")


@shared_task(bind=True, acks_late=True, ignore_result=True, on_failure=_prediction_failed)
def prediction_run_task(self: Task, prediction_id: int, reply_to: str | None = None) -> None:
    """The answer goes to the caller waiting on `reply_to` (portal/platform/replies.py); without one, it is
    only stored (a prediction nobody waits for any more)."""
    from inference.services.prediction_runs import prediction_run

    if reply_to is None:
        prediction_run(prediction_id=prediction_id)
        return None
    from portal.platform.exceptions import PortalError
    from portal.platform.replies import reply_fail, reply_send

    try:
        answer = prediction_run(prediction_id=prediction_id)
    except Exception as exc:
        from inference.services.predictions import prediction_mark_failed

        # stored as failed before the caller is told so: a caller never hears "failed" of a running prediction
        # (a refused input was deleted by the run: marking it is then a no-op)
        prediction_mark_failed(prediction_id=prediction_id, error=f"{type(exc).__name__}: {exc}")
        reply_fail(reply_to, exc, message=f"The model failed on prediction {prediction_id}; it is recorded as failed.")
        if isinstance(exc, PortalError) and exc.status_code < 500:
            return None  # bad input found on the worker (a text longer than the model reads): not the worker's failure
        raise
    reply_send(reply_to, answer)
    return None


@job_task("batch job")
def batch_job_run_task(self: Task, job_id: int) -> None:
    from inference.services.jobs import batch_job_run

    batch_job_run(job_id=job_id)


@shared_task(acks_late=True, ignore_result=True)
def prediction_fail_stuck_task() -> None:
    from inference.services.predictions import prediction_fail_stuck

    prediction_fail_stuck()


@shared_task(acks_late=True, ignore_result=True)
def prediction_replies_sweep_task() -> None:
    from portal.platform.replies import reply_sweep

    reply_sweep()


@job_task("explanation")
def explanation_run_task(self: Task, explanation_id: int, reply_to: str | None = None) -> None:
    """A waiting caller is told on `reply_to` (portal/platform/replies.py) once the explanation is stored."""
    from inference.services.explanations import explanation_run

    explanation_run(explanation_id=explanation_id)
    if reply_to:
        from portal.platform.replies import reply_send

        reply_send(reply_to, {"explanation": explanation_id})


@job_task("global explanation")
def global_explanation_run_task(self: Task, job_id: int) -> None:
    from inference.services.global_explanations import global_explanation_run

    global_explanation_run(job_id=job_id)


@job_task("fine-tuning")
def finetune_run_task(self: Task, job_id: int) -> None:
    from inference.services.finetuning import finetune_run

    finetune_run(job_id=job_id)


@job_task("model upload")
def model_upload_check_task(self: Task, upload_id: int, reply_to: str | None = None) -> None:
    """Checks an uploaded model in the sandbox; a waiting request is told on `reply_to` when it is settled."""
    from inference.services.uploads import model_upload_check

    model_upload_check(upload_id=upload_id)
    if reply_to:
        from portal.platform.replies import reply_send

        reply_send(reply_to, {"upload": upload_id})


@job_task("compression")
def compression_run_task(self: Task, compression_id: int) -> None:
    from inference.services.compressions import compression_run

    compression_run(compression_id=compression_id)


@job_task("canary audit")
def canary_audit_run_task(self: Task, audit_id: int) -> None:
    from inference.services.canary_audits import canary_audit_run

    canary_audit_run(audit_id=audit_id)


@job_task("evaluation")
def evaluation_run_task(self: Task, evaluation_id: int) -> None:
    from inference.services.evaluations import evaluation_run

    evaluation_run(evaluation_id=evaluation_id)


@job_task("completion")
def completion_run_task(self: Task, completion_id: int, ask: dict[str, Any], reply_to: str | None = None,
                        guard: dict[str, Any] | None = None) -> None:
    from inference.services.completion_runs import completion_run

    completion_run(completion_id=completion_id, ask=ask, reply_to=reply_to, guard=guard)


@job_task("completion explanation")
def completion_explanation_run_task(self: Task, job_id: int) -> None:
    """Runs on the generation pool, beside the model it explains."""
    from inference.services.completion_explanations import completion_explanation_run

    completion_explanation_run(job_id=job_id)


@shared_task(acks_late=True, ignore_result=True)
def completion_fail_abandoned_task() -> None:
    from inference.services.completion_runs import completion_fail_abandoned

    completion_fail_abandoned()


@worker_shutdown.connect
def _stop_generation(**kwargs: Any) -> None:
    from inference.runtime import generators_close

    generators_close()


@worker_init.connect
def _import_libraries(**kwargs: Any) -> None:
    from inference.runtime import worker_libraries_import

    worker_libraries_import()
