"""Metering and the daily row quota, per organisation (and per token for metering)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext

from inference.exceptions import QuotaExceeded
from inference.models import UsageDaily
from inference.services.energy import Footprint
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
    "{UsageDaily.compute_ms} = {UsageDaily.compute_ms} + %s, {UsageDaily.energy_wh} = {UsageDaily.energy_wh} + %s, "
    "{UsageDaily.energy_estimated_wh} = {UsageDaily.energy_estimated_wh} + %s, {UsageDaily.carbon_g} = {UsageDaily.carbon_g} + %s "
    "WHERE {UsageDaily.organization} = %s AND {UsageDaily.token} = %s AND {UsageDaily.day} = %s", names=[UsageDaily])
_METER_ORGANIZATION = Statement(
    "UPDATE {UsageDaily} SET {UsageDaily.compute_ms} = {UsageDaily.compute_ms} + %s, "
    "{UsageDaily.energy_wh} = {UsageDaily.energy_wh} + %s, "
    "{UsageDaily.energy_estimated_wh} = {UsageDaily.energy_estimated_wh} + %s, {UsageDaily.carbon_g} = {UsageDaily.carbon_g} + %s "
    "WHERE {UsageDaily.organization} = %s AND {UsageDaily.token} IS NULL AND {UsageDaily.day} = %s", names=[UsageDaily])


def _day(day: date) -> Any:
    return connection.ops.adapt_datefield_value(day)


def _reserve(statement: Statement, *, organization: Organization, amount: int, quota: int, column: str) -> int | None:
    """Reserves `amount` of today's `quota` on the organisation's row with one conditional UPDATE (never
    overspends; the day's first request creates the row). None when reserved, else what is used."""
    day = today()

    def reserve() -> int:
        return statement.execute([amount, organization.pk, _day(day), quota - amount])

    if reserve():
        return None
    # The day's first request, or the quota spent: only now is the ORM's query worth building.
    counted = UsageDaily.objects.filter(organization=organization, token__isnull=True, day=day)
    if not counted.exists():
        _row(organization.pk, None, day)
    # Again whether this request made the row or not: the day's first requests race, and the row
    # missing at the first UPDATE may have been made since by another (64 streams at once were
    # refused as "spent" with 92 tokens used of 2,000,000).
    if reserve():
        return None
    return int(counted.values_list(column, flat=True).first() or 0)


def quota_reserve(*, organization: Organization, rows: int) -> None:
    """Reserves `rows` of today's quota with one conditional UPDATE: never overspends.

    Raises:
        QuotaExceeded: the organisation's daily rows are spent (429).
    """
    used = _reserve(_RESERVE, organization=organization, amount=rows, quota=organization.daily_row_quota, column="rows")
    if used is not None:
        raise QuotaExceeded(
            gettext("The organisation's daily quota of %(daily_row_quota)s rows is spent (%(used)s used; this request needs %(rows)s). It resets at 00:00 UTC.") % {"daily_row_quota": organization.daily_row_quota, "used": used, "rows": rows},
            details={"quota": organization.daily_row_quota, "used": used, "requested": rows},
        )


def quota_release(*, organization_id: int, rows: int) -> None:
    """Gives back rows that were reserved but not served (a failure or a cancelled job)."""
    UsageDaily.objects.filter(organization_id=organization_id, token__isnull=True, day=today()).update(
        rows=F("rows") - rows
    )


def usage_record(
    *, organization_id: int, token_id: int | None, rows: int, compute_ms: float, requests: int = 1,
    energy: Footprint | None = None,
) -> None:
    """Meters served work: per token (or the user's own calls), and compute, energy and carbon on the organisation."""
    day = today()
    spent = [0.0, 0.0, 0.0] if energy is None else [energy.energy_wh, energy.estimated_wh, energy.carbon_g]
    if token_id is not None:
        meter = [requests, rows, compute_ms, *spent, organization_id, token_id, _day(day)]
        if not _METER_TOKEN.execute(meter):
            _row(organization_id, token_id, day)
            _METER_TOKEN.execute(meter)
    _METER_ORGANIZATION.execute([compute_ms, *spent, organization_id, _day(day)])


# --- tokens of generative models ----------------------------------------------------------------

_RESERVE_TOKENS = Statement(
    "UPDATE {UsageDaily} SET {UsageDaily.tokens} = {UsageDaily.tokens} + %s, {UsageDaily.requests} = {UsageDaily.requests} + 1 "
    "WHERE {UsageDaily.organization} = %s AND {UsageDaily.token} IS NULL AND {UsageDaily.day} = %s "
    "AND {UsageDaily.tokens} <= %s", names=[UsageDaily])


def token_quota_reserve(*, organization: Organization, tokens: int) -> None:
    """Reserves `tokens` (an upper bound of what a completion may use) of today's token quota, with one
    conditional UPDATE, as rows are reserved: concurrent requests never overspend.

    Raises:
        QuotaExceeded: the organisation's daily tokens are spent (429).
    """
    used = _reserve(_RESERVE_TOKENS, organization=organization, amount=tokens, quota=organization.daily_token_quota,
                    column="tokens")
    if used is not None:
        raise QuotaExceeded(
            gettext("The organisation's daily quota of %(daily_token_quota)s tokens is spent (%(used)s used or reserved; this request may need %(tokens)s: its prompt and max_tokens for each choice). Ask for fewer tokens, or wait until it resets at 00:00 UTC.") % {"daily_token_quota": f"{organization.daily_token_quota:,}", "used": f"{used:,}", "tokens": f"{tokens:,}"},
            details={"quota": organization.daily_token_quota, "used": used, "requested": tokens},
        )


def token_quota_release(*, organization_id: int, tokens: int, day: date | None = None) -> None:
    """Gives back reserved tokens that were not used (the reservation's day: a completion may end after midnight)."""
    if tokens > 0:
        UsageDaily.objects.filter(organization_id=organization_id, token__isnull=True, day=day or today()).update(
            tokens=F("tokens") - tokens)


def token_usage_record(*, organization_id: int, token_id: int | None, prompt_tokens: int, completion_tokens: int,
                       compute_ms: float, energy: Footprint | None = None) -> None:
    """Meters a completion's tokens: on its API token's row (or the user's own calls) and the organisation's."""
    day = today()
    spent = {} if energy is None else {"energy_wh": F("energy_wh") + energy.energy_wh,
                                       "energy_estimated_wh": F("energy_estimated_wh") + energy.estimated_wh,
                                       "carbon_g": F("carbon_g") + energy.carbon_g}
    rows = UsageDaily.objects.filter(organization_id=organization_id, day=day)
    if token_id is not None:
        if not rows.filter(token_id=token_id).exists():
            _row(organization_id, token_id, day)
        rows.filter(token_id=token_id).update(
            requests=F("requests") + 1, prompt_tokens=F("prompt_tokens") + prompt_tokens,
            completion_tokens=F("completion_tokens") + completion_tokens, compute_ms=F("compute_ms") + compute_ms,
            **spent)
    rows.filter(token__isnull=True).update(
        prompt_tokens=F("prompt_tokens") + prompt_tokens, completion_tokens=F("completion_tokens") + completion_tokens,
        compute_ms=F("compute_ms") + compute_ms, **spent)
