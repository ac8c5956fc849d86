"""Template filters for what the portal shows in the reader's language: codes kept stable in the API and
the audit log (roles, statuses) read as words."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext_lazy as _

from audit.fairness.metrics import VERDICT_WORDS, metric_said
from portal.accounts.roles import ROLE_LABELS
from portal.platform.said import said

register = template.Library()

TOKEN_STATUSES = {"active": _("active"), "revoked": _("revoked"), "expired": _("expired")}
# a model version's status and a job's (portal/jobs.py JobStatus, inference VersionStatus)
STATUSES = {
    "draft": _("draft"), "submitted": _("submitted"), "approved": _("approved"), "rejected": _("rejected"),
    "retired": _("retired"), "pending": _("pending"), "running": _("running"), "done": _("done"),
    "failed": _("failed"), "cancelled": _("cancelled"),
    "reserved": _("reserved"), "settled": _("settled"),  # a privacy ledger entry (inference LedgerState)
}
SEVERITIES = {"high": _("high"), "medium": _("medium"), "low": _("low")}  # audit/exports SEVERITY_COLOURS
COVERAGE = {"present": _("present"), "partial": _("partial"), "missing": _("missing")}  # audit/exports STATUS_COLOURS
GUARD_ACTIONS = {"off": _("off"), "flag": _("flag for review"), "block": _("block")}
GUARD_OUTCOMES = {"blocked": _("blocked"), "filtered": _("filtered"), "flagged": _("flagged")}
TASKS = {
    "text-classification": _("text classification"), "tabular-classification": _("tabular classification"),
    "text-generation": _("text generation"), "text-embedding": _("text embedding"),
}

# what a job is doing now (its `stage`, stored by the worker as these words): a compression
# (inference/services/compressions.py), a canary audit (inference/ml/canaries.py), a compliance export
# (audit/exports/services.py STAGES)
STAGES = {
    "compressing": _("compressing"), "measuring": _("measuring"), "registering": _("registering"),
    "done": _("done"), "cancelled": _("cancelled"),
    "measuring the base": _("measuring the base"), "private training": _("private training"),
    "measuring the private model": _("measuring the private model"), "non-private training": _("non-private training"),
    "measuring the non-private model": _("measuring the non-private model"),
    "gathering evidence": _("gathering evidence"), "writing JSON and CSV": _("writing JSON and CSV"),
    "typesetting the PDF": _("typesetting the PDF"), "signing and anchoring": _("signing and anchoring"),
    "storing the bundle": _("storing the bundle"),
}


def _words(table: dict[str, Any]) -> Any:
    """A filter reading a code as its word in `table`; a code it does not know, as it is."""

    def word(code: Any) -> Any:
        return table.get(str(code), code)

    return word


# `{{ t.role|role_label }}`: owner -> "owner" / "模型所有者"
FILTERS: dict[str, dict[str, Any]] = {
    "role_label": {role.value: label for role, label in ROLE_LABELS.items()},
    "token_status": TOKEN_STATUSES, "status_label": STATUSES, "task_label": TASKS, "verdict_label": VERDICT_WORDS,
    "guard_outcome": GUARD_OUTCOMES, "guard_action": GUARD_ACTIONS, "severity_label": SEVERITIES,
    "coverage_label": COVERAGE, "stage_label": STAGES,
}
for _name, _table in FILTERS.items():
    register.filter(_name, _words(_table))

@register.filter
def listed(items: Any) -> str:
    """Items joined as the reader's language lists them ("; " in English, "；" in Chinese)."""
    return str(_("; ")).join(str(item) for item in items or [])


# `{{ name|metric_label }}`: a fairness metric's name for the reader (its identifier where it has none)
register.filter("metric_label", metric_said)
# `{{ job.error|said }}`: a sentence a worker stored in English, in the reader's language (portal/platform/said.py)
register.filter("said", said)
