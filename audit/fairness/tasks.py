"""Thin tasks (STYLE.md C4): take ids, call a service."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task


def _report_failed(self: Task, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
    from audit.fairness.services import bias_report_mark_failed

    bias_report_mark_failed(report_id=args[0], error=f"{type(exc).__name__}: {exc}")


@shared_task(bind=True, acks_late=True, ignore_result=True, on_failure=_report_failed)
def bias_report_run_task(self: Task, report_id: int) -> None:
    from audit.fairness.services import bias_report_run

    bias_report_run(report_id=report_id)
