"""Thin tasks (STYLE.md C4): take ids, call a service."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task


def _export_failed(self: Task, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
    from audit.exports.services import export_mark_failed

    export_mark_failed(export_id=args[0], error=f"{type(exc).__name__}: {exc}")


@shared_task(bind=True, acks_late=True, ignore_result=True, on_failure=_export_failed)
def export_run_task(self: Task, export_id: int) -> None:
    from audit.exports.services import export_run

    export_run(export_id=export_id)
