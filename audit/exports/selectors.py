from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext

from audit.exports.exceptions import ExportNotFound
from audit.exports.models import ComplianceExport
from inference.models import ModelVersion
from portal.accounts.actor import Actor
from portal.accounts.roles import Cap


def export_list(*, actor: Actor, version: ModelVersion | None = None) -> QuerySet[ComplianceExport]:
    actor.require(Cap.REPORT_READ, "read compliance exports")
    found = ComplianceExport.objects.filter(organization=actor.organization).select_related(
        "model_version__model", "created_by")
    if version is not None:
        found = found.filter(model_version=version)
    return found.order_by("-created_at")


def export_get(*, actor: Actor, pk: int) -> ComplianceExport:
    """An export of the actor's organisation; another organisation's is not found (404)."""
    found = export_list(actor=actor).filter(pk=pk).first()
    if found is None:
        raise ExportNotFound(gettext('No compliance export %(pk)s in %(name)s.') % {"pk": pk, "name": actor.organization.name})
    return found
