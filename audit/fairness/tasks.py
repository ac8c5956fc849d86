"""Thin tasks (STYLE.md C4): take ids, call a service; failures are the job framework's (portal/jobs.py)."""

from __future__ import annotations

from celery import Task

from portal.jobs import job_task


@job_task("bias report")
def bias_report_run_task(self: Task, report_id: int) -> None:
    from audit.fairness.services import bias_report_run

    bias_report_run(report_id=report_id)
