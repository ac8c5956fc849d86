"""Metering and the daily row quota, per organisation (and per token for metering)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from inference.exceptions import QuotaExceeded
from inference.models import UsageDaily
from portal.accounts.models import Organization
from portal.platform.prebuilt import Statement


def today() -> date:
    return timezone.now().date()


def _row(organization_id: int, token_id: int | None, day: date) -> None:
    try:
        with transaction.atomic():
            UsageDaily.objects.get_or_create(organization_id=organization_id, token_id=token_id, day=day)
    except IntegrityError:  # created by a concurrent request
        pass


# Every prediction runs these (admission, then metering on the worker): written once, not compiled
# by the ORM each time (portal/platform/prebuilt.py).
_RESERVE = Statement(
    "UPDATE {UsageDaily} SET {UsageDaily.rows} = {UsageDaily.rows} + %s, {UsageDaily.requests} = {UsageDaily.requests} + 1 "
    "WHERE {UsageDaily.organization} = %s AND {UsageDaily.token} IS NULL AND {UsageDaily.day} = %s "
    "AND {UsageDaily.rows} <= %s", names=[UsageDaily])
_METER_TOKEN = Statement(
    "UPDATE {UsageDaily} SET {UsageDaily.requests} = {UsageDaily.requests} + %s, {UsageDaily.rows} = {UsageDaily.rows} + %s, "
    "{UsageDaily.compute_ms} = {UsageDaily.compute_ms} + %s "
    "WHERE {UsageDaily.organization} = %s AND {UsageDaily.token} = %s AND {UsageDaily.day} = %s", names=[UsageDaily])
_METER_ORGANIZATION = Statement(
    "UPDATE {UsageDaily} SET {UsageDaily.compute_ms} = {UsageDaily.compute_ms} + %s "
    "WHERE {UsageDaily.organization} = %s AND {UsageDaily.token} IS NULL AND {UsageDaily.day} = %s", names=[UsageDaily])


def _day(day: date) -> Any:
    return connection.ops.adapt_datefield_value(day)


def quota_reserve(*, organization: Organization, rows: int) -> None:
    """Reserves `rows` of today's quota with one conditional UPDATE: never overspends.

    Raises:
        QuotaExceeded: the organisation's daily rows are spent (429).
    """
    day = today()

    def reserve() -> int:
        return _RESERVE.execute([rows, organization.pk, _day(day), organization.daily_row_quota - rows])

    if reserve():
        return
    # The day's first request, or the quota spent: only now is the ORM's query worth building.
    counted = UsageDaily.objects.filter(organization=organization, token__isnull=True, day=day)
    if not counted.exists():
        _row(organization.pk, None, day)
        if reserve():
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
        meter = [requests, rows, compute_ms, organization_id, token_id, _day(day)]
        if not _METER_TOKEN.execute(meter):
            _row(organization_id, token_id, day)
            _METER_TOKEN.execute(meter)
    _METER_ORGANIZATION.execute([compute_ms, organization_id, _day(day)])
