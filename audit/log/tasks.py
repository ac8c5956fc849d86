from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def checkpoint_create_task() -> None:
    from audit.log.services import checkpoint_create

    checkpoint_create()


@shared_task(acks_late=True, ignore_result=True)
def log_verify_task() -> None:
    from audit.log.services import log_verify

    log_verify()
