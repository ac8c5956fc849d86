"""Metering and the daily row quota, per organisation (and per token for metering)."""

from __future__ import annotations

from datetime import date

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from inference.exceptions import QuotaExceeded
from inference.models import UsageDaily
from portal.accounts.models import Organization


def today() -> date:
    return timezone.now().date()


def _row(organization_id: int, token_id: int | None, day: date) -> None:
    try:
        with transaction.atomic():
            UsageDaily.objects.get_or_create(organization_id=organization_id, token_id=token_id, day=day)
    except IntegrityError:  # created by a concurrent request
        pass


def quota_reserve(*, organization: Organization, rows: int) -> None:
    """Reserves `rows` of today's quota with one conditional UPDATE: never overspends.

    Raises:
        QuotaExceeded: the organisation's daily rows are spent (429).
    """
    day = today()
    counted = UsageDaily.objects.filter(organization=organization, token__isnull=True, day=day)
    updated = counted.filter(rows__lte=organization.daily_row_quota - rows).update(
        rows=F("rows") + rows, requests=F("requests") + 1
    )
    if updated:
        return
    if not counted.exists():
        _row(organization.pk, None, day)
        updated = counted.filter(rows__lte=organization.daily_row_quota - rows).update(
            rows=F("rows") + rows, requests=F("requests") + 1
        )
        if updated:
            return
    used = counted.values_list("rows", flat=True).first() or 0
    raise QuotaExceeded(
        f"The organisation's daily quota of {organization.daily_row_quota} rows is spent "
        f"({used} used; this request needs {rows}). It resets at 00:00 UTC.",
        details={"quota": organization.daily_row_quota, "used": used, "requested": rows},
    )


def quota_release(*, organization_id: int, rows: int) -> None:
    """Gives back rows that were reserved but not served (a failure or a cancelled job)."""
    UsageDaily.objects.filter(organization_id=organization_id, token__isnull=True, day=today()).update(
        rows=F("rows") - rows
    )


def usage_record(
    *, organization_id: int, token_id: int | None, rows: int, compute_ms: float, requests: int = 1
) -> None:
    """Meters served work: per token (or the user's own calls), and compute on the organisation."""
    day = today()
    if token_id is not None:
        per_token = UsageDaily.objects.filter(organization_id=organization_id, token_id=token_id, day=day)
        changes = {"requests": F("requests") + requests, "rows": F("rows") + rows,
                   "compute_ms": F("compute_ms") + compute_ms}
        if not per_token.update(**changes):
            _row(organization_id, token_id, day)
            per_token.update(**changes)
    UsageDaily.objects.filter(organization_id=organization_id, token__isnull=True, day=day).update(
        compute_ms=F("compute_ms") + compute_ms
    )
