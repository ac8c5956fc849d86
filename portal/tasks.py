"""The portal's own periodic tasks."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def job_sweeps_task() -> None:
    """Every minute: background jobs whose worker stopped beating are queued again."""
    from portal.jobs import jobs_requeue_stale

    jobs_requeue_stale()
