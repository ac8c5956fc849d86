"""Thin tasks (STYLE.md C4): take ids, call a service; failures are the job framework's (portal/jobs.py)."""

from __future__ import annotations

from celery import Task

from portal.jobs import job_task


@job_task("compliance export")
def export_run_task(self: Task, export_id: int) -> None:
    from audit.exports.services import export_run

    export_run(export_id=export_id)
