"""Thin tasks (STYLE.md C4): take ids, call a service."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task


def _prediction_failed(self: Task, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
    from inference.services.predictions import prediction_mark_failed

    prediction_mark_failed(prediction_id=args[0], error=f"{type(exc).__name__}: {exc}")


@shared_task(bind=True, acks_late=True, ignore_result=True, on_failure=_prediction_failed)
def prediction_run_task(self: Task, prediction_id: int, reply_to: str | None = None) -> None:
    """The answer goes to the caller waiting on `reply_to` (portal/replies.py); without one, it is
    only stored (a prediction nobody waits for any more)."""
    from inference.services.predictions import prediction_run

    if reply_to is None:
        prediction_run(prediction_id=prediction_id)
        return None
    from portal.replies import reply_fail, reply_send

    try:
        answer = prediction_run(prediction_id=prediction_id)
    except Exception as exc:
        from inference.services.predictions import prediction_mark_failed

        # stored as failed before the caller is told so: a caller never hears "failed" of a running prediction
        prediction_mark_failed(prediction_id=prediction_id, error=f"{type(exc).__name__}: {exc}")
        reply_fail(reply_to, exc, message=f"The model failed on prediction {prediction_id}; it is recorded as failed.")
        raise
    reply_send(reply_to, answer)
    return None


def _job_failed(self: Task, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
    from inference.services.jobs import batch_job_mark_failed

    batch_job_mark_failed(job_id=args[0], error=f"{type(exc).__name__}: {exc}")


@shared_task(bind=True, acks_late=True, ignore_result=True, on_failure=_job_failed)
def batch_job_run_task(self: Task, job_id: int) -> None:
    from inference.services.jobs import batch_job_run

    batch_job_run(job_id=job_id)


@shared_task(acks_late=True, ignore_result=True)
def prediction_fail_stuck_task() -> None:
    from inference.services.predictions import prediction_fail_stuck

    prediction_fail_stuck()


@shared_task(acks_late=True, ignore_result=True)
def prediction_replies_sweep_task() -> None:
    from portal.replies import reply_sweep

    reply_sweep()


def _stored_then_told(mark_failed: str, id_name: str, what: str) -> Any:
    """An on_failure handler: the failure is stored (`mark_failed`, a service's import path, given
    `id_name`=the task's first argument), and only then is a waiting caller told, since what the
    waiter reads is the stored failure."""

    def handler(self: Task, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        from django.utils.module_loading import import_string

        import_string(mark_failed)(**{id_name: args[0]}, error=f"{type(exc).__name__}: {exc}")
        if kwargs.get("reply_to"):
            from portal.replies import reply_fail

            reply_fail(kwargs["reply_to"], exc, message=f"{what} {args[0]} failed; it is recorded as failed.")

    return handler


_explanation_failed = _stored_then_told("inference.services.explanations.explanation_mark_failed", "explanation_id",
                                        "Explanation")


@shared_task(bind=True, acks_late=True, ignore_result=True, on_failure=_explanation_failed)
def explanation_run_task(self: Task, explanation_id: int, reply_to: str | None = None) -> None:
    """A waiting caller is told on `reply_to` (portal/replies.py) once the explanation is stored."""
    from inference.services.explanations import explanation_run

    explanation_run(explanation_id=explanation_id)
    if reply_to:
        from portal.replies import reply_send

        reply_send(reply_to, {"explanation": explanation_id})


def _global_failed(self: Task, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
    from inference.services.global_explanations import global_explanation_mark_failed

    global_explanation_mark_failed(job_id=args[0], error=f"{type(exc).__name__}: {exc}")


@shared_task(bind=True, acks_late=True, ignore_result=True, on_failure=_global_failed)
def global_explanation_run_task(self: Task, job_id: int) -> None:
    from inference.services.global_explanations import global_explanation_run

    global_explanation_run(job_id=job_id)


def _finetune_failed(self: Task, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
    from inference.services.finetuning import finetune_mark_failed

    finetune_mark_failed(job_id=args[0], error=f"{type(exc).__name__}: {exc}")


@shared_task(bind=True, acks_late=True, ignore_result=True, on_failure=_finetune_failed)
def finetune_run_task(self: Task, job_id: int) -> None:
    from inference.services.finetuning import finetune_run

    finetune_run(job_id=job_id)


_upload_failed = _stored_then_told("inference.services.uploads.model_upload_mark_failed", "upload_id",
                                   "The check of model upload")


@shared_task(bind=True, acks_late=True, ignore_result=True, on_failure=_upload_failed)
def model_upload_check_task(self: Task, upload_id: int, reply_to: str | None = None) -> None:
    """Checks an uploaded model in the sandbox; a waiting request is told on `reply_to` when it is settled."""
    from inference.services.uploads import model_upload_check

    model_upload_check(upload_id=upload_id)
    if reply_to:
        from portal.replies import reply_send

        reply_send(reply_to, {"upload": upload_id})
