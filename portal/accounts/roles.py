"""Roles and what each may do.

A role is a set of capabilities. "No higher than their own" (for tokens a user creates, and for
roles an admin hands out) means: a subset of the capabilities, which also orders roles that are
not above one another (an owner cannot mint an auditor token: owners do not read the audit log).
"""

from __future__ import annotations

from enum import StrEnum

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


class Role(StrEnum):
    ADMIN = "admin"
    OWNER = "owner"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"
    CONSUMER = "consumer"


class Cap(StrEnum):
    ORG_READ = "org.read"  # see the organisation, its members and models
    ORG_MANAGE = "org.manage"  # members, roles, settings, redaction rules
    TOKEN_MANAGE_ANY = "token.manage_any"  # noqa: S105  (revoke other members' tokens)
    MODEL_READ = "model.read"
    MODEL_PREDICT = "model.predict"
    MODEL_REGISTER = "model.register"  # register, submit, move aliases, fine-tune
    MODEL_REVIEW = "model.review"  # approve, reject, retire
    REPORT_READ = "report.read"  # bias reports, explanations, exports
    REPORT_CREATE = "report.create"  # bias reports, global explanations
    AUDIT_READ = "audit.read"  # the log, proofs, checkpoints
    EXPORT_CREATE = "export.create"  # compliance exports (evidence; changes nothing)


_READ = {Cap.ORG_READ, Cap.MODEL_READ}

CAPABILITIES: dict[Role, frozenset[Cap]] = {
    Role.ADMIN: frozenset(Cap),
    Role.OWNER: frozenset(
        _READ
        | {Cap.MODEL_PREDICT, Cap.MODEL_REGISTER, Cap.REPORT_READ, Cap.REPORT_CREATE}
    ),
    Role.REVIEWER: frozenset(
        _READ | {Cap.MODEL_PREDICT, Cap.MODEL_REVIEW, Cap.REPORT_READ, Cap.REPORT_CREATE}
    ),
    Role.AUDITOR: frozenset(_READ | {Cap.REPORT_READ, Cap.AUDIT_READ, Cap.EXPORT_CREATE}),
    Role.CONSUMER: frozenset(_READ | {Cap.MODEL_PREDICT}),
}

ROLE_DESCRIPTIONS: dict[Role, Promise] = {
    Role.ADMIN: _("Everything, including members, roles and the audit log."),
    Role.OWNER: _("Registers and fine-tunes models, runs reports, calls models."),
    Role.REVIEWER: _("Approves or rejects model versions, runs reports, calls models."),
    Role.AUDITOR: _("Reads the audit log and reports, exports evidence; changes nothing."),
    Role.CONSUMER: _("Calls approved models."),
}

# A role's name as people read it (the API and the audit log keep the codes above).
ROLE_LABELS: dict[Role, Promise] = {
    Role.ADMIN: _("admin"),
    Role.OWNER: _("owner"),
    Role.REVIEWER: _("reviewer"),
    Role.AUDITOR: _("auditor"),
    Role.CONSUMER: _("consumer"),
}


def capabilities(role: str) -> frozenset[Cap]:
    return CAPABILITIES[Role(role)]


def role_within(role: str, ceiling: str) -> bool:
    """True when `role` grants nothing that `ceiling` does not."""
    return capabilities(role) <= capabilities(ceiling)
