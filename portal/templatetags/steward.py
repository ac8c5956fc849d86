"""Template filters for what the portal shows in the reader's language: codes kept stable in the API and
the audit log (roles, statuses) read as words."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext_lazy as _

from portal.accounts.roles import ROLE_LABELS, Role

register = template.Library()

TOKEN_STATUSES = {"active": _("active"), "revoked": _("revoked"), "expired": _("expired")}
# a model version's status and a job's (portal/jobs.py JobStatus, inference VersionStatus)
STATUSES = {
    "draft": _("draft"), "submitted": _("submitted"), "approved": _("approved"), "rejected": _("rejected"),
    "retired": _("retired"), "pending": _("pending"), "running": _("running"), "done": _("done"),
    "failed": _("failed"), "cancelled": _("cancelled"),
    "reserved": _("reserved"), "settled": _("settled"),  # a privacy ledger entry (inference LedgerState)
}
VERDICTS = {"pass": _("pass"), "warn": _("warn"), "fail": _("fail")}  # audit/fairness/metrics.py VERDICT_ORDER
SEVERITIES = {"high": _("high"), "medium": _("medium"), "low": _("low")}  # audit/exports SEVERITY_COLOURS
COVERAGE = {"present": _("present"), "partial": _("partial"), "missing": _("missing")}  # audit/exports STATUS_COLOURS
GUARD_ACTIONS = {"off": _("off"), "flag": _("flag for review"), "block": _("block")}
GUARD_OUTCOMES = {"blocked": _("blocked"), "filtered": _("filtered"), "flagged": _("flagged")}
TASKS = {
    "text-classification": _("text classification"), "tabular-classification": _("tabular classification"),
    "text-generation": _("text generation"), "text-embedding": _("text embedding"),
}


@register.filter
def role_label(code: Any) -> Any:
    """`owner` -> "owner" / "模型所有者"; an unknown code as it is."""
    try:
        return ROLE_LABELS[Role(str(code))]
    except ValueError:
        return code


@register.filter
def token_status(code: Any) -> Any:
    return TOKEN_STATUSES.get(str(code), code)


@register.filter
def status_label(code: Any) -> Any:
    return STATUSES.get(str(code), code)


@register.filter
def task_label(code: Any) -> Any:
    return TASKS.get(str(code), code)


@register.filter
def verdict_label(code: Any) -> Any:
    return VERDICTS.get(str(code), code)


@register.filter
def guard_outcome(code: Any) -> Any:
    return GUARD_OUTCOMES.get(str(code), code)


@register.filter
def guard_action(code: Any) -> Any:
    return GUARD_ACTIONS.get(str(code), code)


@register.filter
def severity_label(code: Any) -> Any:
    return SEVERITIES.get(str(code), code)


@register.filter
def coverage_label(code: Any) -> Any:
    return COVERAGE.get(str(code), code)
